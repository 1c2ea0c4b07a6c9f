"""Run the sample e-Business Register on its own: ``python -m registries.ariregister --db PATH``."""

from collections.abc import Sequence

from registries.ariregister.app import serve
from registries.standalone import run


def main(argv: Sequence[str] | None = None) -> None:
    run(
        serve,
        prog="python -m registries.ariregister",
        description="Äriregister: ettevõtete andmed (EE-TEST näidisregister).",
        default_port=8004,
        argv=argv,
    )


if __name__ == "__main__":
    main()
