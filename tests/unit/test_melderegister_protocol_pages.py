"""A lookup's commit writes one page: the protocol table has no index beside its key
(docs/adr/0074-one-page-per-registry-lookup.md), and the read and the write of a lookup
are one transaction."""

from __future__ import annotations

import sqlite3
import warnings
from contextlib import closing
from pathlib import Path

from registries.melderegister.app import create_app

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning
    )
    from fastapi.testclient import TestClient

ANNA = "/personen?familienname=Schmidt&vornamen=Anna&geburtsdatum=1988-03-14"


def test_ten_lookups_append_ten_pages_to_the_wal(tmp_path: Path) -> None:
    db = tmp_path / "melde.db"
    with TestClient(create_app(db)) as client, closing(sqlite3.connect(db)) as other:
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for _ in range(10):
            assert client.get(ANNA).status_code == 200
        busy, frames, _ = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        indexes = other.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'abrufprotokoll'"
        ).fetchall()
        rows = other.execute("SELECT count(*) FROM abrufprotokoll").fetchone()[0]
    assert indexes == []
    assert rows == 10
    assert (busy, frames) == (0, 10)  # one WAL frame, one page, per lookup's commit
