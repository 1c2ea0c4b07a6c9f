"""The IHK's short way to a notification (registries/ihk/receipt.py): taken for a plainly
valid one, never for one FastAPI would refuse, and answering and storing exactly as the
route does; and the row its plain INSERT writes is the row the ORM wrote before it.
"""

from __future__ import annotations

import json
import sqlite3
import warnings
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from registries.common import sqlite_engine
from registries.ihk.app import create_app
from registries.ihk.receipt import IhkApp, plainly_valid
from registries.ihk.storage import Notification, create_tables
from tests.shortway import answer, count_routed
from tests.unit.test_ihk import MELDUNG

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning
    )
    from fastapi.testclient import TestClient

MOMENT = datetime(2026, 12, 7, 10, 0, 0, 123456, tzinfo=UTC)
JSON = {"Content-Type": "application/json"}


def _rows(db: Path) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT * FROM benachrichtigung ORDER BY id").fetchall()


class _Pair:
    """Two IHK endpoints on their own files, the second with the short way off; each
    request goes to both."""

    def __init__(self, root: Path) -> None:
        self.dbs = (root / "short.db", root / "routed.db")
        self.routed: tuple[list[str], list[str]] = ([], [])
        apps = [create_app(db, clock=lambda: MOMENT) for db in self.dbs]
        for app, routed in zip(apps, self.routed, strict=True):
            assert isinstance(app, IhkApp)
            count_routed(app, routed)

        routed_app = apps[1]
        assert isinstance(routed_app, IhkApp)
        routed_app.receipt = None
        self.clients = [TestClient(app) for app in apps]

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[Any, ...]:
        answers = [
            answer(client.post("/benachrichtigungen", content=body, headers=headers))
            for client in self.clients
        ]
        assert answers[0] == answers[1]
        return answers[0]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Pair]:
    both = _Pair(tmp_path_factory.mktemp("ihk-pair"))
    with both.clients[0], both.clients[1]:
        yield both


def test_both_ways_answer_and_store_alike(pair: _Pair) -> None:
    body = json.dumps(MELDUNG).encode()
    before = len(pair.routed[0])
    first = pair.post(body, JSON)
    again = pair.post(json.dumps(dict(reversed(list(MELDUNG.items())))).encode(), JSON)
    changed = pair.post(json.dumps({**MELDUNG, "anzahlVollzeitBeschaeftigte": 3}).encode(), JSON)
    refused = pair.post(json.dumps({**MELDUNG, "geburtsort": "Soest"}).encode(), JSON)
    broken = pair.post(body[:-1], JSON)
    as_text = pair.post(body, {"Content-Type": "text/plain"})

    assert [a[0] for a in (first, again, changed, refused, broken, as_text)] == [
        201, 200, 409, 422, 422, 422,
    ]  # fmt: skip
    assert json.loads(first[2])["empfangenAm"] == "2026-12-07T10:00:00.123456Z"
    # the plain notifications took the short way, the refusals FastAPI's
    assert len(pair.routed[0]) - before == 3
    assert _rows(pair.dbs[0]) == _rows(pair.dbs[1])


_values: st.SearchStrategy[Any] = (
    st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.just({})
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from([*sorted(MELDUNG), "extra"]),
    value=_values,
    nummer=st.integers(min_value=0, max_value=999),
    content_type=st.sampled_from(["application/json", "application/json; charset=utf-8", ""]),
)
def test_mutated_notifications_are_answered_alike(
    pair: _Pair, field: str, value: Any, nummer: int, content_type: str
) -> None:
    meldung = {**MELDUNG, "aktenzeichen": f"GEW-2026-{nummer}", field: value}
    body = json.dumps(meldung).encode()
    status, _, _ = pair.post(body, {"Content-Type": content_type} if content_type else {})
    assert status in {200, 201, 409, 422}
    assert (plainly_valid([(b"content-type", content_type.encode())], body) is None) == (
        content_type != "application/json" or status == 422
    )
    assert _rows(pair.dbs[0]) == _rows(pair.dbs[1])


def test_a_stored_notification_is_the_row_the_orm_writes(tmp_path: Path) -> None:
    """The plain INSERT converts the time and the JSON as SQLAlchemy does, so ``GET
    /benachrichtigungen`` and the files written before read alike."""
    with TestClient(create_app(tmp_path / "plain.db", clock=lambda: MOMENT)) as client:
        assert client.post("/benachrichtigungen", json=MELDUNG).status_code == 201
    engine = sqlite_engine(tmp_path / "orm.db")
    create_tables(engine)
    with Session(engine) as session:
        session.add(
            Notification(
                aktenzeichen=MELDUNG["aktenzeichen"],
                anzeigeart=MELDUNG["anzeigeart"],
                gewerbebetrieb_id=MELDUNG["gewerbebetriebID"],
                empfangen_am=MOMENT,
                inhalt=MELDUNG,
            )
        )
        session.commit()
    engine.dispose()
    assert _rows(tmp_path / "plain.db") == _rows(tmp_path / "orm.db")
