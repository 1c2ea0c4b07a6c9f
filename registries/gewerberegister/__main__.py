"""Run the Gewerberegister Soest on its own: ``python -m registries.gewerberegister --db PATH``."""

from collections.abc import Sequence

from registries.gewerberegister import outbox
from registries.gewerberegister.app import serve
from registries.serving import limits_from
from registries.standalone import parser_for


def main(argv: Sequence[str] | None = None) -> None:
    parser = parser_for(
        "python -m registries.gewerberegister",
        "Gewerberegister Soest (Gewerbeanzeigen nach § 14 GewO).",
        8002,
    )
    outbox.add_arguments(parser)
    args = parser.parse_args(argv)
    serve(args.db, args.host, args.port, outbox.target_from(args), limits=limits_from(args))


if __name__ == "__main__":
    main()
