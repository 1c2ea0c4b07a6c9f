"""The lookups' short way past FastAPI (registries/melderegister/fastpath.py): taken for
plain queries, never for one FastAPI would refuse, and answering exactly as the routes.

Every search the short way builds must be the one FastAPI's dependency builds from the
same query, and every query FastAPI refuses must go to FastAPI (so its 422 body stays
its own). The answers and the protocol rows of both ways are compared byte for byte on
two registers, one with the short way switched off.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI

from registries.melderegister.app import create_app
from registries.melderegister.fastpath import LookupApp, suche_or_none
from registries.melderegister.search import Suche, suche_aus_query
from tests.shortway import answer, count_routed

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning
    )
    from fastapi.testclient import TestClient

ANNA = "familienname=Schmidt&vornamen=Anna&geburtsdatum=1988-03-14"
QUERIES = (
    ANNA,
    ANNA + "&geschlecht=w&geburtsort=Soest&postleitzahl=59555&wohnort=Lippstadt",
    ANNA + "&strasse=Lange%20Stra%C3%9Fe&hausnummer=12",
    "familienname=Y%C4%B1lmaz&vornamen=Leyla&geburtsdatum=1993-01-27",
    "familienname=Schmidt&vornamen=Mia&geburtsdatum=2015-06-20",
    "geburtsdatum=1988-03-14&vornamen=Anna&familienname=Schmidt",
    "familienname=" + "a" * 100 + "&vornamen=Anna&geburtsdatum=1988-03-14",
    # refused by FastAPI: each must go its way
    "familienname=" + "a" * 101 + "&vornamen=Anna&geburtsdatum=1988-03-14",
    ANNA + "&hausnummer=" + "1" * 21,
    ANNA + "&familienname=Schmidt",
    ANNA + "&idnr=1",
    ANNA + "&geschlecht=q",
    ANNA + "&geschlecht=",
    ANNA + "&postleitzahl=5955",
    ANNA + "&postleitzahl=59555%0A",
    ANNA + "&wohnort=%20%20",
    ANNA + "&wohnort=",
    "familienname=Schmidt&vornamen=Anna&geburtsdatum=1988-02-30",
    "familienname=Schmidt&vornamen=Anna&geburtsdatum=14.03.1988",
    "familienname=Schmidt&vornamen=Anna&geburtsdatum=%EF%BC%91988-03-14",
    "familienname=Schmidt&vornamen=Anna&geburtsdatum=0000-01-01",
    "familienname=Schmidt&geburtsdatum=1988-03-14",
    "familienname=&vornamen=Anna&geburtsdatum=1988-03-14",
    "",
)
MOMENT = datetime(2026, 12, 7, 10, 0, 0, 123456, tzinfo=UTC)
TOKEN = "operator-token-for-tests-0123456789"
XROAD = {
    "X-Road-Client": "DE/GOV/05974000/gewerbeamt",
    "X-Road-Issue": "AZ-2026-17",
    "X-Road-UserId": "DE-sachbearbeiter-7",
    "X-Road-Represented-Party": "DE/COM/12345678",
    "X-Road-Id": "0f5b6f0e-3c1c-4d55-9b7e-7d1f1b0e6c11",
    "X-Road-Request-Id": "8a0c2d4e-6f80-4a1b-8c3d-5e7f9a1b3c5d",
}


@pytest.fixture(scope="module")
def fastapi_suche() -> Iterator[TestClient]:
    """FastAPI's own reading of a query: the dependency the routes use, echoed."""
    app = FastAPI()

    @app.get("/suche")
    def suche(s: Annotated[Suche, Depends(suche_aus_query)]) -> dict[str, Any]:
        return s.model_dump(mode="json")

    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize("query", QUERIES)
def test_the_short_way_reads_a_query_as_fastapi_or_leaves_it(
    fastapi_suche: TestClient, query: str
) -> None:
    theirs = fastapi_suche.get(f"/suche?{query}")
    ours = suche_or_none(query.encode("latin-1"))
    if theirs.status_code != 200:
        assert theirs.status_code == 422
        assert ours is None  # FastAPI refuses it, with its own body
    else:
        assert ours is not None, "a plain query should take the short way"
        assert ours.model_dump(mode="json") == theirs.json()


def _run(db: Path, *, short_way: bool) -> tuple[list[tuple[int, dict[str, str], bytes]], Any]:
    app = create_app(db, operator_token=TOKEN, clock=lambda: MOMENT)
    assert isinstance(app, LookupApp)
    routed: list[str] = []
    count_routed(app, routed)

    if not short_way:
        app.lookups.clear()
    answers = []
    with TestClient(app) as client:
        for path in ("/personen", "/datenuebermittlung/personen"):
            for query in QUERIES:
                answers.append(answer(client.get(f"{path}?{query}", headers=XROAD)))
        protokoll = client.get("/protokoll", headers={"Authorization": f"Bearer {TOKEN}"})
    plain = sum(1 for q in QUERIES if suche_or_none(q.encode("latin-1")) is not None)
    lookups = [p for p in routed if p != "/protokoll"]
    assert len(lookups) == (2 * (len(QUERIES) - plain) if short_way else 2 * len(QUERIES))
    return answers, json.loads(protokoll.content)


def test_both_ways_answer_and_protocol_byte_for_byte_alike(tmp_path: Path) -> None:
    short, short_protocol = _run(tmp_path / "short.db", short_way=True)
    routed, routed_protocol = _run(tmp_path / "routed.db", short_way=False)
    assert short == routed
    assert short_protocol == routed_protocol
    statuses = {status for status, _, _ in short}
    assert statuses == {200, 404, 422}
    rows = short_protocol["eintraege"]
    assert rows and all(r["abrufendeStelle"] == XROAD["X-Road-Client"] for r in rows)
    assert {r["vertreteneStelle"] for r in rows} == {XROAD["X-Road-Represented-Party"]}
