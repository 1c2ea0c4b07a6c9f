"""``gateway setup``: the subcommand, hooked into gateway.cli (logic in gateway.sandbox.setup).

Kept apart from :mod:`gateway.sandbox.setup` so building the parser imports nothing heavy.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
    AddFn = Callable[
        [Subparsers, str, Callable[[argparse.Namespace], None], str], argparse.ArgumentParser
    ]


def cmd_setup(args: argparse.Namespace) -> None:
    from gateway.sandbox.setup import compose_addresses, loopback_addresses, prepare

    state = Path(args.state)
    addresses = compose_addresses() if args.hosts == "compose" else loopback_addresses(state)
    lines: list[str] = []

    def report(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    prepare(
        state,
        addresses,
        datetime.now(UTC),
        refresh_seconds=args.refresh_seconds,
        report=report,
    )
    created = sum(1 for line in lines if line.startswith("created"))
    print(
        f"state in {state} is complete ({args.hosts} hosts): "
        f"{created} step(s) done now, {len(lines) - created} already in place"
    )


def add_commands(sub: Subparsers, add: AddFn) -> None:
    """Register ``setup`` under the top-level ``gateway`` parser."""
    p = add(
        sub,
        "setup",
        cmd_setup,
        "prepare the docker-compose federation's state (PKI, central, nodes); idempotent",
    )
    p.add_argument(
        "--state",
        required=True,
        help="directory holding one subdirectory per named volume (see docker-compose.yml)",
    )
    p.add_argument(
        "--hosts",
        choices=["compose", "loopback"],
        default="compose",
        help="compose: service names and docker-compose.yml's ports; loopback: 127.0.0.1 "
        "with free ports, to run the same state as local processes",
    )
    p.add_argument(
        "--refresh-seconds",
        type=float,
        default=60.0,
        help="how often the nodes refresh global configuration (default: X-Road's 60)",
    )
