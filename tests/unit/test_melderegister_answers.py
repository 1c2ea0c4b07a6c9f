"""The Melderegister answers byte for byte what it answered before its lookup was made cheap.

``tests/unit/data/melderegister-answers.json`` holds, for a set of § 38 and § 34 queries
(hits, a minor with a Vertreterin, a former name, a block, a blocked Vertreterin, an
ambiguous name, misses and refused parameters), the status, the headers a caller or the
gateway node reads and the exact body, and the protocol of retrievals those queries
left, all recorded from the register before its hot path was rewritten. A change to the
query, the projection or the rendering that alters one byte of an answer fails here.

After a deliberate change of the answers, regenerate with
``python -m tests.unit.test_melderegister_answers`` and review the diff.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from registries.melderegister.app import create_app

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning
    )
    from fastapi.testclient import TestClient

GOLDEN = Path(__file__).parent / "data" / "melderegister-answers.json"
TOKEN = "operator-token-for-tests-0123456789"
MOMENT = datetime(2026, 12, 7, 10, 0, 0, 123456, tzinfo=UTC)
HEADERS = ("content-type", "cache-control", "x-data-subject", "content-length")
XROAD = {
    "X-Road-Client": "DE/GOV/05974000/gewerbeamt",
    "X-Road-Issue": "AZ-2026-17",
    "X-Road-UserId": "DE-sachbearbeiter-7",
    "X-Road-Id": "0f5b6f0e-3c1c-4d55-9b7e-7d1f1b0e6c11",
    "X-Road-Request-Id": "8a0c2d4e-6f80-4a1b-8c3d-5e7f9a1b3c5d",
}
UEBERMITTLUNG = "/datenuebermittlung/personen"
QUERIES: tuple[tuple[str, str], ...] = (
    ("/personen", "familienname=Schmidt&vornamen=Anna&geburtsdatum=1988-03-14"),
    (UEBERMITTLUNG, "familienname=Schmidt&vornamen=Anna&geburtsdatum=1988-03-14"),
    (UEBERMITTLUNG, "familienname=Schmidt&vornamen=Mia&geburtsdatum=2015-06-20"),
    ("/personen", "familienname=Schulte&vornamen=maria&geburtsdatum=1954-05-30"),
    ("/personen", "familienname=Hoffmann&vornamen=Thomas%20Johannes&geburtsdatum=1962-11-23"),
    ("/personen", "familienname=Y%C4%B1lmaz&vornamen=Leyla&geburtsdatum=1993-01-27"),
    (UEBERMITTLUNG, "familienname=Brandt&vornamen=Lukas&geburtsdatum=1990-04-18"),
    (
        "/datenuebermittlung/personen",
        "familienname=Lange&vornamen=Heinrich&geburtsdatum=1931-02-11",
    ),
    ("/personen", "familienname=Kr%C3%BCger&vornamen=Bernd&geburtsdatum=1975-07-02"),
    ("/personen", "familienname=Winter&vornamen=Paul&geburtsdatum=2017-02-02"),
    ("/personen", "familienname=M%C3%BCller&vornamen=Peter&geburtsdatum=1970-01-01"),
    ("/personen", "familienname=Niemand&vornamen=Norbert&geburtsdatum=1975-07-02"),
    ("/personen", "familienname=Schmidt&vornamen=Anna&geburtsdatum=1988-03-14&wohnort=Soest"),
    ("/personen", "familienname=Schmidt&vornamen=Anna&geburtsdatum=1988-03-14&idnr=1"),
    ("/personen", "familienname=Schmidt&vornamen=Anna&geburtsdatum=14.03.1988"),
    ("/personen", "familienname=Schmidt&geburtsdatum=1988-03-14"),
)


def record(db_path: Path) -> dict[str, Any]:
    """Every query's answer, then the protocol they left, from a fresh register."""
    app = create_app(db_path, operator_token=TOKEN, clock=lambda: MOMENT)
    answers: list[dict[str, Any]] = []
    with TestClient(app) as client:
        for path, query in QUERIES:
            resp = client.get(f"{path}?{query}", headers=XROAD)
            answers.append(
                {
                    "request": f"{path}?{query}",
                    "status": resp.status_code,
                    "headers": {h: resp.headers.get(h) for h in HEADERS},
                    "body": resp.content.decode("utf-8"),
                }
            )
        protocol = client.get("/protokoll", headers={"Authorization": f"Bearer {TOKEN}"})
    return {"answers": answers, "protokoll": protocol.content.decode("utf-8")}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    yield record(tmp_path_factory.mktemp("answers") / "melderegister.db")


@pytest.mark.parametrize("index", range(len(QUERIES)), ids=[q for _, q in QUERIES])
def test_each_answer_is_byte_identical(recorded: dict[str, Any], index: int) -> None:
    golden = json.loads(GOLDEN.read_text("utf-8"))
    assert recorded["answers"][index] == golden["answers"][index]


def test_the_protocol_of_retrievals_is_byte_identical(recorded: dict[str, Any]) -> None:
    golden = json.loads(GOLDEN.read_text("utf-8"))
    assert recorded["protokoll"] == golden["protokoll"]
    assert len(json.loads(recorded["protokoll"])["eintraege"]) == 13


def test_the_golden_file_covers_every_kind_of_answer() -> None:
    statuses = {a["status"] for a in json.loads(GOLDEN.read_text("utf-8"))["answers"]}
    assert statuses == {200, 404, 409, 422}


if __name__ == "__main__":  # pragma: no cover - regenerates the golden file by hand
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        document = record(Path(scratch) / "melderegister.db")
    GOLDEN.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", "utf-8")
    sys.stdout.write(f"wrote {GOLDEN}\n")
