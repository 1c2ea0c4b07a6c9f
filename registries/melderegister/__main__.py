"""Run a Melderegister on its own: ``python -m registries.melderegister --db PATH [--city C]``."""

from collections.abc import Sequence
from pathlib import Path

from registries.melderegister.app import CITIES, serve
from registries.serving import limits_from
from registries.standalone import parser_for


def main(argv: Sequence[str] | None = None) -> None:
    parser = parser_for(
        "python -m registries.melderegister",
        "Melderegister (einfache Behördenauskunft nach § 38 BMG, Datenübermittlung nach § 34).",
        8001,
    )
    parser.add_argument(
        "--city",
        choices=sorted(CITIES),
        default="lippstadt",
        help="whose register, i.e. which residents a new database is seeded with",
    )
    parser.add_argument(
        "--operator-token-file",
        type=Path,
        default=None,
        help="file holding the bearer token for GET /protokoll (without it: closed)",
    )
    args = parser.parse_args(argv)
    serve(
        args.db,
        args.host,
        args.port,
        args.city,
        args.operator_token_file,
        limits=limits_from(args),
    )


if __name__ == "__main__":
    main()
