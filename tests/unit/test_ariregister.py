"""The sample e-Business Register: the seeded companies, the registry card, the search."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from registries.ariregister.app import create_app
from registries.common import load_seed

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning
    )
    from fastapi.testclient import TestClient


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return TestClient(create_app(tmp_path / "ariregister.sqlite"))


def test_the_registry_card_is_the_seeded_entry(client: TestClient) -> None:
    seeded = {
        c["ariregistri_kood"]: c for c in load_seed("registries.ariregister", "ettevotted.json")
    }
    for code, entry in seeded.items():
        got = client.get(f"/ettevotted/{code}")
        assert got.status_code == 200
        assert got.headers["cache-control"] == "no-store"
        body = got.json()
        assert body["nimi"] == entry["nimi"]
        assert body["aadress"]["linn"] == entry["aadress"]["linn"]
        assert [p["nimi"] for p in body["kaardile_kantud_isikud"]] == [
            p["nimi"] for p in entry["kaardile_kantud_isikud"]
        ]


def test_an_unregistered_or_malformed_code_is_refused(client: TestClient) -> None:
    missing = client.get("/ettevotted/10000000")
    assert missing.status_code == 404 and missing.json()["fehler"] == "ei_leitud"
    assert client.get("/ettevotted/1234").status_code == 422
    assert client.get("/ettevotted/abcdefgh").status_code == 422


def test_search_by_name_finds_the_code(client: TestClient) -> None:
    found = client.get("/ettevotted", params={"nimi": "nordlicht"}).json()
    assert found["leitud"] == 1
    assert found["ettevotted"][0]["ariregistri_kood"] == "16543210"
    assert client.get("/ettevotted", params={"nimi": "zzz"}).json() == {
        "leitud": 0,
        "ettevotted": [],
    }


def test_a_restart_keeps_the_register_and_does_not_seed_twice(tmp_path: Path) -> None:
    db = tmp_path / "ariregister.sqlite"
    TestClient(create_app(db)).get("/health")
    again = TestClient(create_app(db))
    assert again.get("/ettevotted", params={"nimi": "OÜ"}).json()["leitud"] == 2
