"""The harness's command line: ``--scenario short|full|clock|disk|postgres`` or
``--soak-minutes N``; ``--postgres`` puts every node's log in a throwaway PostgreSQL
cluster the harness starts (and stops).

Writes the history, the report (and for a soak its samples and plot) under ``--out``
and exits 1 if any check failed, so ``make faults`` and ``make soak`` fail with it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from gateway.sandbox.faults.run import CLOCK, DISK, FULL, POSTGRES, SHORT, Harness


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="fault harness over a loopback federation")
    parser.add_argument(
        "--scenario", choices=("short", "full", "disk", "clock", "postgres"), default="full"
    )
    parser.add_argument("--soak-minutes", type=float, default=None)
    parser.add_argument("--out", type=Path, default=Path("bench/results/faults"))
    parser.add_argument("--keep", action="store_true", help="keep the federation's files")
    parser.add_argument(
        "--no-disk-full",
        action="store_true",
        help="do not mount a tmpfs under a provider node (mounting needs root)",
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="every node's log in a throwaway PostgreSQL cluster (adds postgres-restart)",
    )
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    with tempfile.TemporaryDirectory(prefix="gw-faults-") as tmp:
        root = out / "federation" if args.keep else Path(tmp)
        # The soak's 1 MiB bodies would fill the small disk by themselves: no tmpfs there.
        small_disk = args.soak_minutes is None and not args.no_disk_full
        harness = Harness(root, small_disk=small_disk, postgres=args.postgres)
        try:
            harness.start()
            if args.soak_minutes is not None:
                from gateway.sandbox.faults.soak import soak

                result = soak(harness, args.soak_minutes, out)
                passed = bool(result["passed"])
                print(json.dumps(result["summary"], indent=2))
            else:
                scenarios = {"short": SHORT, "full": FULL, "disk": DISK, "clock": CLOCK}
                scenario = {**scenarios, "postgres": POSTGRES}[args.scenario]
                report = harness.run(scenario, out)
                passed = report.findings.passed
                print(json.dumps(report.to_json(), indent=2))
        finally:
            harness.close()
    print(f"{'PASS' if passed else 'FAIL'}: report in {out}", file=sys.stderr)
    sys.exit(0 if passed else 1)
