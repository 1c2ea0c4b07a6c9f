"""Command-line options of the portal, shared by ``gateway registry portal`` and
``python -m registries.portal``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.core.ids import ServiceId, SubsystemId
from registries.edgetls import EdgeTls
from registries.serving import add_guard_flags

if TYPE_CHECKING:
    from registries.portal.app import PortalSettings

DEFAULT_CLIENT = "DE-NRW/GOV/05974040/gewerbeamt"
DEFAULT_MELDEREGISTER = "DE-NRW/GOV/05974028/melderegister/einfacheAuskunft"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The portal's options: its database, where it listens, whom it calls and as whom."""
    parser.add_argument("--db", required=True, help="SQLite file (created if new)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8004)
    add_guard_flags(parser)
    parser.add_argument(
        "--consumer-url", required=True, help="Soest's node, consumer edge (X-Road REST r1)"
    )
    parser.add_argument(
        "--client", default=DEFAULT_CLIENT, help=f"client subsystem (default {DEFAULT_CLIENT})"
    )
    parser.add_argument(
        "--melderegister-service",
        default=DEFAULT_MELDEREGISTER,
        help=f"the § 38 BMG service (default {DEFAULT_MELDEREGISTER})",
    )
    parser.add_argument(
        "--gewerberegister-url", required=True, help="the trade office's own register (HTTP)"
    )
    parser.add_argument(
        "--tracker-service",
        action="append",
        default=[],
        metavar="SERVICE_ID",
        help="a provider node's data tracker service; repeat for every provider",
    )
    parser.add_argument("--user-id", default="portal-gewerbeamt-soest", help="X-Road-UserId")
    EdgeTls.add_arguments(parser)


def settings_from(args: argparse.Namespace) -> PortalSettings:
    """Parse the identifiers now, so a typo fails at start-up rather than per request."""
    # Imported here, not at the top: ``gateway --help`` adds these options without
    # loading the web application.
    from registries.portal.app import PortalSettings

    return PortalSettings(
        db_path=Path(args.db),
        consumer_url=args.consumer_url,
        client=SubsystemId.parse(args.client),
        melderegister_service=ServiceId.parse(args.melderegister_service),
        gewerberegister_url=args.gewerberegister_url,
        tracker_services=tuple(ServiceId.parse(s) for s in args.tracker_service),
        user_id=args.user_id,
        tls=EdgeTls.from_args(args),
    )


def run(args: argparse.Namespace) -> None:
    from registries.portal.app import serve
    from registries.serving import limits_from

    serve(settings_from(args), args.host, args.port, limits=limits_from(args))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m registries.portal", description="Digitales Gewerbeamt Soest"
    )
    add_arguments(parser)
    run(parser.parse_args(argv))
