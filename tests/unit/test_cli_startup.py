"""Every ``gateway`` process builds the whole command-line parser before it runs its one
command: building it must not load the libraries only some commands need.

The loopback federation, the demo and the tests start hundreds of ``gateway`` processes
(trust services, nodes, one-shot commands); a parser that pulled in SQLAlchemy or httpx
cost each of them about half a CPU second before doing anything (ADR 0056).
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("sqlalchemy", "sqlmodel", "httpx", "aiohttp", "fastapi", "uvicorn", "psycopg")
"""Libraries a command loads when it runs, never the parser for every command."""

_PROBE = """
import json, sys
from gateway.cli import build_parser
build_parser()
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {heavy})))
"""


def test_building_the_parser_loads_none_of_the_heavy_libraries() -> None:
    # A fresh interpreter: the test process itself has imported everything already.
    probe = _PROBE.format(heavy=repr(set(HEAVY)))
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(result.stdout) == []


def test_the_parser_still_offers_the_gewerberegister_ihk_options() -> None:
    from gateway.cli import build_parser

    args = build_parser().parse_args(
        [
            "registry",
            "gewerberegister",
            "--db",
            "g.sqlite",
            "--ihk-consumer-url",
            "http://127.0.0.1:1",
        ]
    )
    assert args.ihk_consumer_url == "http://127.0.0.1:1"
    assert args.ihk_service == "DE-NRW/GOV/IHK-ARNSBERG/kammer/gewerbemeldungen"
