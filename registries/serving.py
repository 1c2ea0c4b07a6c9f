"""How every sample registry and the portal serve: uvicorn under the connection guard.

Each app's ``serve`` ends in :func:`serve_app`, so the slow-client timeouts and connection
caps of gateway/net/guard.py apply to the registries as to every other port. The limits
come from the command line: :func:`add_guard_flags` adds ``--header-timeout``,
``--body-timeout``, ``--max-connections`` and ``--max-connections-per-ip`` to a
registry's parser, and a flag given there sets the limit for this process as it is
parsed (the apps' ``serve(db, host, port, ...)`` signatures stay as they are).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any

from gateway.net.guard import GuardSettings, run_asgi

DEFAULT_LIMITS = GuardSettings(max_connections=256, max_connections_per_ip=256)
"""A registry is reached by its own node (and a browser, for the portal) only."""

_limits = DEFAULT_LIMITS


def limits() -> GuardSettings:
    """The limits :func:`serve_app` applies in this process."""
    return _limits


def configure(settings: GuardSettings) -> None:
    """Set the limits of every app this process serves from now on."""
    global _limits
    _limits = settings


class _Limit(argparse.Action):
    """Store one guard flag into the process's limits as it is parsed."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        change: dict[str, Any] = {self.dest: values}
        try:
            configure(dataclasses.replace(_limits, **change))
        except ValueError as exc:
            parser.error(f"{option_string}: {exc}")


def add_guard_flags(parser: argparse.ArgumentParser) -> None:
    """The four guard flags of docs/deployment.md, with the registries' defaults."""
    d = DEFAULT_LIMITS
    parser.add_argument(
        "--header-timeout",
        dest="header_timeout",
        type=float,
        action=_Limit,
        default=d.header_timeout,
        help=f"seconds a client has to send a request head (default {d.header_timeout:g})",
    )
    parser.add_argument(
        "--body-timeout",
        dest="body_timeout",
        type=float,
        action=_Limit,
        default=d.body_timeout,
        help=f"longest pause within a request body, seconds (default {d.body_timeout:g})",
    )
    parser.add_argument(
        "--max-connections",
        dest="max_connections",
        type=int,
        action=_Limit,
        default=d.max_connections,
        help=f"open connections accepted (default {d.max_connections})",
    )
    parser.add_argument(
        "--max-connections-per-ip",
        dest="max_connections_per_ip",
        type=int,
        action=_Limit,
        default=d.max_connections_per_ip,
        help=f"open connections accepted from one address (default {d.max_connections_per_ip})",
    )


def serve_app(app: Any, host: str, port: int) -> None:
    """Serve ``app`` with uvicorn until interrupted, every connection under the guard."""
    run_asgi(app, host, port, _limits, name=f"registry on {host}:{port}")
