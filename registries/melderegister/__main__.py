"""Run the Melderegister Lippstadt on its own: ``python -m registries.melderegister --db PATH``."""

from collections.abc import Sequence

from registries.melderegister.app import serve
from registries.standalone import run


def main(argv: Sequence[str] | None = None) -> None:
    run(
        serve,
        prog="python -m registries.melderegister",
        description="Melderegister Lippstadt (einfache Behördenauskunft nach § 38 BMG).",
        default_port=8001,
        argv=argv,
    )


if __name__ == "__main__":
    main()
