"""The Gewerberegister's ``--ihk-*`` command-line options.

Apart from :mod:`registries.gewerberegister.outbox` (which needs SQLAlchemy and httpx) so
that ``gateway``'s parser, built by every ``gateway`` process, adds these options without
loading them, as ``registries.edgetls`` is kept apart from the web framework.
"""

from __future__ import annotations

import argparse
from typing import Final

from registries.edgetls import EdgeTls

__all__ = ["DEFAULT_IHK_SERVICE", "add_arguments"]

DEFAULT_IHK_SERVICE: Final = "DE-NRW/GOV/IHK-ARNSBERG/kammer/gewerbemeldungen"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--ihk-*`` options: without ``--ihk-consumer-url`` the IHK is not notified."""
    parser.add_argument(
        "--ihk-consumer-url",
        default=None,
        help="the trade office's gateway node (consumer edge); enables IHK notifications",
    )
    parser.add_argument("--ihk-client", default="DE-NRW/GOV/05974040/gewerbeamt")
    parser.add_argument("--ihk-service", default=DEFAULT_IHK_SERVICE)
    parser.add_argument("--ihk-retry-seconds", type=float, default=2.0, help="first retry delay")
    parser.add_argument(
        "--ihk-retry-max-seconds", type=float, default=600.0, help="longest retry delay"
    )
    EdgeTls.add_arguments(parser, "ihk-")
