"""``python -m gateway.sandbox.faults``: one harness run (``make faults``, ``make soak``)."""

from __future__ import annotations

from gateway.sandbox.faults.cli import main

if __name__ == "__main__":
    main()
