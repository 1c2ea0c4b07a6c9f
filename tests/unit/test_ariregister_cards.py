"""The e-Business Register's short way to a registry card (registries/ariregister/cards.py):
taken for a code FastAPI's pattern accepts, never for another path, and answering as the
route does and as the ORM's reading of the row did."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from registries.ariregister.app import create_app
from registries.ariregister.cards import AriregisterApp
from registries.ariregister.storage import Company, ettevote
from registries.common import json_response, load_seed, sqlite_engine
from tests.shortway import answer, count_routed

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning
    )
    from fastapi.testclient import TestClient

CODES = [c["ariregistri_kood"] for c in load_seed("registries.ariregister", "ettevotted.json")]
PATHS = [
    *(f"/ettevotted/{code}" for code in CODES),
    "/ettevotted/99999999",  # not registered: 404
    "/ettevotted/1654321",
    "/ettevotted/165432100",
    "/ettevotted/1654321a",
    "/ettevotted/16543210/",
    "/ettevotted/%EF%BC%916543210",  # a fullwidth digit
    "/ettevotted/16543210?nimi=x",
    "/ettevotted?nimi=o%C3%BC",
]


class _Pair:
    def __init__(self, root: Path) -> None:
        self.routed: tuple[list[str], list[str]] = ([], [])
        apps = [create_app(root / f"{name}.sqlite") for name in ("short", "routed")]
        for app, routed in zip(apps, self.routed, strict=True):
            assert isinstance(app, AriregisterApp)
            count_routed(app, routed)

        routed_app = apps[1]
        assert isinstance(routed_app, AriregisterApp)
        routed_app.cards = None
        self.clients = [TestClient(app, follow_redirects=False) for app in apps]

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        answers = [answer(client.get(path)) for client in self.clients]
        assert answers[0] == answers[1], path
        return answers[0]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Pair]:
    both = _Pair(tmp_path_factory.mktemp("ariregister-pair"))
    with both.clients[0], both.clients[1]:
        yield both


def test_both_ways_answer_alike(pair: _Pair) -> None:
    before = len(pair.routed[0])
    statuses = [pair.get(path)[0] for path in PATHS]
    assert statuses == [200] * len(CODES) + [404, 422, 422, 422, 307, 422, 200, 200]
    # the cards with a plain code (registered or not, with a query or not) took the
    # short way, everything else FastAPI's
    assert len(pair.routed[0]) - before == len(PATHS) - len(CODES) - 2
    assert len(pair.routed[1]) - before == len(PATHS)


@settings(max_examples=100, deadline=None)
@given(code=st.text(alphabet="0123456789a/%. ", max_size=10))
def test_any_code_is_answered_alike(pair: _Pair, code: str) -> None:
    pair.get(f"/ettevotted/{code}")


def test_a_card_is_what_the_orm_read(tmp_path: Path) -> None:
    db = tmp_path / "ariregister.sqlite"
    with TestClient(create_app(db)) as client:
        answers = {code: client.get(f"/ettevotted/{code}").content for code in CODES}
    engine = sqlite_engine(db)
    with Session(engine) as session:
        for code in CODES:
            row = session.get(Company, code)
            assert row is not None
            assert answers[code] == json_response(ettevote(row), 200).body
    engine.dispose()
