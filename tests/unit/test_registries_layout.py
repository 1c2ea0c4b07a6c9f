"""The sample registries' layout: seed data as package data, small modules, no sandbox imports.

Each registry is ``models.py``, ``storage.py``, ``data/`` and ``app.py`` with the shared
scaffolding in ``registries/common.py`` (registries/__init__.py). These tests pin what that
promises a reader and an operator: the seeded rows are exactly the data files, a broken
seed file stops the start instead of seeding something else, an installed package ships
the files, and no module grows back into a monolith.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import sqlite3
import tomllib
import warnings
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import registries
from registries.gewerberegister.app import create_app as create_gewerberegister
from registries.melderegister.app import CITIES
from registries.melderegister.app import create_app as create_melderegister
from registries.melderegister.storage import residents_from

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning
    )
    from fastapi.testclient import TestClient

ROOT = Path(registries.__file__).resolve().parent
PYPROJECT = ROOT.parent / "pyproject.toml"
MAX_MODULE_LINES = 600
SANDBOX = ("gateway.sandbox",)
SANDBOX_ALLOWED: frozenset[Path] = frozenset()
"""None: the demo cities' start-up lives in the sandbox (gateway/sandbox/federation.py)."""

ANNA_ROW: dict[str, Any] = {
    "idnr": "52693074139",
    "familienname": "Schmidt",
    "vornamen": "Anna",
    "geburtsdatum": "1988-03-14",
    "geburtsort": "Soest",
    "geschlecht": "w",
    "strasse": "Lange Straße",
    "hausnummer": "12",
    "postleitzahl": "59555",
    "wohnort": "Lippstadt",
    "einzugsdatum": "2016-08-01",
}
MIA_IDNR = "85917400620"


def _load(package_dir: str, name: str) -> Any:
    return json.loads((ROOT / package_dir / "data" / name).read_text(encoding="utf-8"))


def test_every_seed_file_is_package_data() -> None:
    """An installed wheel holds exactly what ``pyproject.toml`` lists as package data."""
    package_data: dict[str, list[str]] = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"][
        "package-data"
    ]
    found = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("*/data/*") if p.is_file())
    assert {
        "melderegister/data/lippstadt.json",
        "melderegister/data/iserlohn.json",
        "gewerberegister/data/anzeigen.json",
    } <= set(found)
    for name in found:
        package_dir, relative = name.split("/", 1)
        patterns = package_data.get(f"registries.{package_dir}", [])
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), (name, patterns)


@pytest.mark.parametrize("city", sorted(CITIES))
def test_the_seeded_melderegister_is_its_data_file(tmp_path: Path, city: str) -> None:
    db = tmp_path / f"{city}.db"
    with TestClient(create_melderegister(db, city=city)):
        pass
    seed = _load("melderegister", CITIES[city].seed_file)
    with closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        rows = {r["idnr"]: dict(r) for r in conn.execute("SELECT * FROM person")}
        links = {
            tuple(link)
            for link in conn.execute(
                "SELECT p.idnr, v.idnr FROM gesetzliche_vertretung g "
                "JOIN person p ON p.id = g.person_id JOIN person v ON v.id = g.vertreter_id"
            )
        }
    assert sorted(rows) == sorted(e["idnr"] for e in seed["einwohner"])
    for einwohner in seed["einwohner"]:
        row = rows[einwohner["idnr"]]
        for column, value in einwohner.items():
            stored = row[column]
            if isinstance(value, list | dict):
                stored = json.loads(stored)
            elif isinstance(value, bool):
                stored = bool(stored)
            assert stored == value, (einwohner["idnr"], column)
    expected = {(v["person"], v["vertreter"]) for v in seed.get("gesetzliche_vertretung", [])}
    assert links == expected
    if city == "lippstadt":
        assert ("85917400620", ANNA_ROW["idnr"]) in links  # Mia's Vertreterin is Anna


def test_the_seeded_gewerberegister_is_its_data_file(tmp_path: Path) -> None:
    seed = _load("gewerberegister", "anzeigen.json")
    now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    saetze: list[dict[str, Any]] = []
    with TestClient(create_gewerberegister(tmp_path / "gr.db", clock=lambda: now)) as client:
        for number, entry in enumerate(seed, start=1):
            year = datetime.fromisoformat(entry["eingang"]).year
            answer = client.get(f"/gewerbeanzeigen/GEW-{year:04d}-{number:06d}")
            assert answer.status_code == 200, answer.text
            saetze.append(answer.json())
        assert client.get(f"/gewerbeanzeigen/GEW-2026-{len(seed) + 1:06d}").status_code == 404
    for entry, satz in zip(seed, saetze, strict=True):
        assert datetime.fromisoformat(satz["satzErstellung"]) == datetime.fromisoformat(
            entry["eingang"]
        )
        for key, value in entry["anzeige"].items():
            if key == "gewerbebetriebID":  # "#n": the Betrieb of the n-th entry
                value = saetze[int(value[1:])]["gewerbebetriebID"]
            assert _contains(satz["anzeige"][key], value), (satz["aktenzeichen"], key)


def _contains(stored: Any, given: Any) -> bool:
    """``given`` as filed is part of ``stored`` (which adds the models' defaults)."""
    if isinstance(given, dict):
        return isinstance(stored, dict) and all(
            k in stored and _contains(stored[k], v) for k, v in given.items()
        )
    return bool(stored == given)


def _seed(**changes: Any) -> dict[str, Any]:
    mia = {**ANNA_ROW, "idnr": MIA_IDNR, "vornamen": "Mia", "geburtsdatum": "2015-06-20"}
    return {
        "einwohner": [ANNA_ROW, mia],
        "gesetzliche_vertretung": [{"person": MIA_IDNR, "vertreter": ANNA_ROW["idnr"]}],
        **changes,
    }


def test_a_valid_seed_document_becomes_rows_and_links() -> None:
    residents = residents_from(_seed(), "test.json")
    assert [p.idnr for p in residents.persons] == [ANNA_ROW["idnr"], MIA_IDNR]
    assert residents.persons[0].gemeindeschluessel == "05974028"  # column default applies
    assert residents.vertretung == [(MIA_IDNR, ANNA_ROW["idnr"])]


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        # A misspelt column would otherwise be dropped: here a blocked person published.
        (_seed(einwohner=[{**ANNA_ROW, "auskunfssperre": True}]), "auskunfssperre"),
        (_seed(einwohner=[{**ANNA_ROW, "idnr": "52693074138"}]), "IDNr 52693074138"),
        (_seed(einwohner=[{**ANNA_ROW, "geburtsdatum": "1988-13-14"}]), "geburtsdatum"),
        (_seed(gesetzliche_vertretung=[{"person": MIA_IDNR, "vertreter": "0"}]), "non-resident"),
        (_seed(bewohner=[]), "bewohner"),
    ],
)
def test_a_broken_seed_document_is_refused(document: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        residents_from(document, "test.json")


def test_no_registry_module_is_over_600_lines() -> None:
    sizes = {
        p.relative_to(ROOT).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
        for p in ROOT.rglob("*.py")
    }
    assert {n: s for n, s in sizes.items() if s > MAX_MODULE_LINES} == {}


def test_registries_do_not_import_the_gateway_sandbox() -> None:
    """Demo, local network, compose set-up and benchmark stay out of the sample apps."""
    offenders: list[str] = []
    for path in ROOT.rglob("*.py"):
        if path.relative_to(ROOT) in SANDBOX_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            for name in names:
                if any(name == s or name.startswith(f"{s}.") for s in SANDBOX):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert offenders == []
