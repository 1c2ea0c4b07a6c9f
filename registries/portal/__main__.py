"""Run the portal on its own: ``python -m registries.portal --db PATH --consumer-url ...``."""

from registries.portal.cli import main

if __name__ == "__main__":
    main()
