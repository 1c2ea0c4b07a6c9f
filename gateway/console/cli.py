"""``gateway console serve``: the web console over the management APIs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.net.guard import GuardSettings, add_guard_arguments

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
    AddFn = Callable[
        [Subparsers, str, Callable[[argparse.Namespace], None], str], argparse.ArgumentParser
    ]


def cmd_console_serve(args: argparse.Namespace) -> None:
    import ssl

    from gateway.console.app import serve_console
    from gateway.console.frame import ConsoleConfig
    from gateway.net.guard import settings_from_args
    from gateway.net.loop import run

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--listen {args.listen!r}: give HOST:PORT, e.g. 127.0.0.1:8400")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    config = ConsoleConfig(
        central_url=args.central_url,
        node_url=args.node_url,
        max_upload_bytes=args.max_upload_bytes,
    )

    def ready(url: str) -> None:
        print(f"console serving {url}", flush=True)

    try:
        run(
            serve_console(
                config, host.strip("[]"), int(port), tls=tls, limits=settings_from_args(args),
                ready=ready,
            )
        )  # fmt: skip
    except OSError as exc:
        raise ValueError(f"cannot serve on {args.listen}: {exc.strerror or exc}") from None


def add_commands(sub: Subparsers, add: AddFn) -> None:
    """Register ``gateway console ...``."""
    console = sub.add_parser("console", help="the web console").add_subparsers(
        dest="console_command", required=True, metavar="CONSOLE_COMMAND"
    )
    p = add(
        console,
        "serve",
        cmd_console_serve,
        "serve the web console over the central's and a node's admin APIs, and the auditor page",
    )
    p.add_argument("--central-url", default=None, help="the central authority's base URL")
    p.add_argument(
        "--node-url",
        default=None,
        help="a node's admin listener (where /api/v1 is), e.g. http://127.0.0.1:9090",
    )
    p.add_argument("--listen", default="127.0.0.1:8400", help="HOST:PORT (default %(default)s)")
    p.add_argument("--tls-cert", default=None, help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", default=None, help="the certificate's key (PEM)")
    p.add_argument(
        "--max-upload-bytes",
        type=int,
        default=64 * 1024 * 1024,
        help="largest request body: the auditor's bundle and anchor (default %(default)s)",
    )
    add_guard_arguments(p, GuardSettings())
