"""Run one sample registry on its own: ``python -m registries.<name> --db PATH``.

Every registry binds to 127.0.0.1 by default because none has access control of its
own; only the local gateway node is supposed to reach it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from gateway.net.guard import GuardSettings
from registries.serving import add_guard_flags, limits_from


class Serve(Protocol):
    """A registry's ``serve``: its database, where to listen, the guard's limits."""

    def __call__(
        self, db_path: Path, host: str, port: int, *, limits: GuardSettings | None = None
    ) -> None: ...


def parser_for(prog: str, description: str, default_port: int) -> argparse.ArgumentParser:
    """A parser with the options every registry has: ``--db``, ``--host``, ``--port``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_server_arguments(parser, default_port)
    return parser


def add_server_arguments(parser: argparse.ArgumentParser, default_port: int) -> None:
    """Add ``--db``, ``--host``, ``--port`` and the connection guard's flags (also used by
    ``gateway registry``; see registries/serving.py)."""
    parser.add_argument(
        "--db", type=Path, required=True, help="SQLite file; created (and seeded) if new."
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=default_port, help=f"TCP port (default {default_port})"
    )
    add_guard_flags(parser)


def run(
    serve: Serve,
    *,
    prog: str,
    description: str,
    default_port: int,
    argv: Sequence[str] | None = None,
) -> None:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and serve until interrupted."""
    args = parser_for(prog, description, default_port).parse_args(argv)
    db: Path = args.db
    host: str = args.host
    port: int = args.port
    serve(db, host, port, limits=limits_from(args))
