"""Run the Gewerberegister Soest on its own: ``python -m registries.gewerberegister --db PATH``."""

from collections.abc import Sequence

from registries.gewerberegister.app import serve
from registries.standalone import run


def main(argv: Sequence[str] | None = None) -> None:
    run(
        serve,
        prog="python -m registries.gewerberegister",
        description="Gewerberegister Soest (Gewerbeanzeigen nach § 14 GewO).",
        default_port=8002,
        argv=argv,
    )


if __name__ == "__main__":
    main()
