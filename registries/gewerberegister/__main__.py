"""Run the Gewerberegister Soest on its own: ``python -m registries.gewerberegister --db PATH``.

It binds to 127.0.0.1 by default because the registry has no access control of its own;
only the local gateway node is supposed to reach it.
"""

import argparse
from collections.abc import Sequence
from pathlib import Path

from registries.gewerberegister.app import serve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m registries.gewerberegister",
        description="Gewerberegister Soest (Gewerbeanzeigen nach § 14 GewO).",
    )
    parser.add_argument(
        "--db", type=Path, required=True, help="SQLite file; created and seeded if new."
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8002, help="TCP port (default 8002)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and serve until interrupted."""
    args = _parser().parse_args(argv)
    db: Path = args.db
    host: str = args.host
    port: int = args.port
    serve(db, host, port)


if __name__ == "__main__":
    main()
