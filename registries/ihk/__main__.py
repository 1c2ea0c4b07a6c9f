"""Run the IHK notification endpoint on its own: ``python -m registries.ihk --db PATH``."""

from collections.abc import Sequence

from registries.ihk.app import serve
from registries.standalone import run


def main(argv: Sequence[str] | None = None) -> None:
    run(
        serve,
        prog="python -m registries.ihk",
        description="IHK: Empfang von Gewerbeanzeigen (§ 14 Abs. 8 GewO).",
        default_port=8003,
        argv=argv,
    )


if __name__ == "__main__":
    main()
