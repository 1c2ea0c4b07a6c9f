"""How every sample registry and the portal serve: uvicorn under the connection guard.

Each app's ``serve`` ends in :func:`serve_app`, so the slow-client timeouts and connection
caps of gateway/net/guard.py apply to the registries as to every other port. The limits
come from the command line: :func:`add_guard_flags` adds ``--header-timeout``,
``--body-timeout``, ``--max-connections`` and ``--max-connections-per-ip`` to a
registry's parser, :func:`limits_from` reads them, and each app's ``serve`` passes them
on (``limits=``).
"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.net.guard import GuardSettings, add_guard_arguments, run_asgi, settings_from_args

DEFAULT_LIMITS = GuardSettings(max_connections=256, max_connections_per_ip=256)
"""A registry is reached by its own node (and a browser, for the portal) only."""


def add_guard_flags(parser: argparse.ArgumentParser) -> None:
    """The four guard flags of docs/deployment.md, with the registries' defaults;
    :func:`limits_from` reads them back."""
    add_guard_arguments(parser, DEFAULT_LIMITS)


def limits_from(args: argparse.Namespace) -> GuardSettings:
    """The limits given on the command line (:func:`add_guard_flags`)."""
    return settings_from_args(args)


def serve_app(app: Any, host: str, port: int, limits: GuardSettings = DEFAULT_LIMITS) -> None:
    """Serve ``app`` with uvicorn until interrupted, every connection under the guard, on
    uvicorn's protocol writing each answer to the socket in one call (registries/coalesce.py)."""
    from registries.coalesce import CoalescingHttpProtocol

    name = f"registry on {host}:{port}"
    run_asgi(app, host, port, limits, name=name, http=CoalescingHttpProtocol)
