"""A new SQLite log created from ``sqlite_ddl``'s text is the file ``create_all`` makes.

A node's first start creates its log from the DDL text without loading SQLAlchemy
(docs/adr/0062-sqlite-ddl-as-text.md). The text is only right while it is what SQLAlchemy
would create from ``schema.py``: this compares the two files object by object, so a
change to the schema that is not regenerated fails here with the command to run.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from sqlmodel import SQLModel, create_engine

from gateway.messagelog import sqlite_ddl
from gateway.messagelog.schema import schema_tables
from gateway.messagelog.sqlite_commit import create_tables

STALE = f"sqlite_ddl.STATEMENTS differ from schema.py; regenerate: {sqlite_ddl.REGENERATE}"


def _with_sqlalchemy(path: Path) -> None:
    # What create_tables did for a new file before the text existed.
    engine = create_engine(f"sqlite:///{path}")
    try:
        SQLModel.metadata.create_all(engine, tables=schema_tables())
    finally:
        engine.dispose()


def _rows(conn: sqlite3.Connection, sql: str) -> list[tuple[object, ...]]:
    return [tuple(row) for row in conn.execute(sql).fetchall()]


def describe(path: Path) -> dict[str, object]:
    """Everything SQLite says of a file's schema, independent of creation order."""
    with closing(sqlite3.connect(path)) as conn:
        master = sorted(
            (str(kind), str(name), str(table), " ".join(str(sql).split()) if sql else "")
            for kind, name, table, sql in conn.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master"
            )
        )
        tables = sorted(name for kind, name, _, _ in master if kind == "table")
        described: dict[str, object] = {
            "sqlite_master": master,
            "user_version": _rows(conn, "PRAGMA user_version"),
            "application_id": _rows(conn, "PRAGMA application_id"),
        }
        for table in tables:
            indexes = sorted(_rows(conn, f"PRAGMA index_list({table})"))
            described[f"table_info {table}"] = _rows(conn, f"PRAGMA table_info({table})")
            described[f"foreign_key_list {table}"] = _rows(
                conn, f"PRAGMA foreign_key_list({table})"
            )
            # The seq column of index_list is creation order; the rest is the index.
            described[f"index_list {table}"] = sorted(row[1:] for row in indexes)
            for index in indexes:
                described[f"index_info {index[1]}"] = _rows(conn, f"PRAGMA index_info({index[1]})")
        return described


def test_the_text_is_what_sqlalchemy_creates(tmp_path: Path) -> None:
    assert sqlite_ddl.generated() == sqlite_ddl.STATEMENTS, STALE


def test_a_new_file_from_the_text_is_the_file_sqlalchemy_makes(tmp_path: Path) -> None:
    by_sqlalchemy = tmp_path / "sqlalchemy.sqlite"
    by_text = tmp_path / "text.sqlite"
    _with_sqlalchemy(by_sqlalchemy)
    # A new file: nothing predates data_subject_read, so no reads are to be recorded.
    assert create_tables(by_text) is False

    expected, actual = describe(by_sqlalchemy), describe(by_text)
    assert actual.keys() == expected.keys(), STALE
    for key in expected:
        assert actual[key] == expected[key], f"{key}: {STALE}"
    # The comparison has something to compare: every table, an AUTOINCREMENT, a foreign
    # key, the partial migrations' index; a SQLite log records no Alembic revision.
    rows = expected["sqlite_master"]
    assert isinstance(rows, list)
    master = {row[1] for row in rows}
    assert {t.name for t in schema_tables()} | {"sqlite_sequence"} <= master
    assert "ix_seen_request_created" in master and "alembic_version" not in master
    assert expected["foreign_key_list data_subject"]
    assert expected["user_version"] == [(0,)]


def test_a_file_that_has_tables_is_not_created_again(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    assert sqlite_ddl.create_new(path) is True
    before = describe(path)
    assert sqlite_ddl.create_new(path) is False
    assert describe(path) == before


def test_an_older_file_still_gets_what_it_lacks(tmp_path: Path) -> None:
    # A file from before seen_request's index (migration 0005) takes the SQLAlchemy path.
    path = tmp_path / "older.sqlite"
    sqlite_ddl.create_new(path)
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("DROP INDEX ix_seen_request_created")
        conn.commit()
    create_tables(path)
    expected = tmp_path / "sqlalchemy.sqlite"
    _with_sqlalchemy(expected)
    assert describe(path)["sqlite_master"] == describe(expected)["sqlite_master"]
