"""The SQLite DDL of the log's head schema, as text, for a brand-new log file.

A node's first start on a new SQLite log used to import SQLAlchemy and SQLModel only to
run ``create_all`` from ``schema.py`` (about a third of a CPU second per fresh node; the
test suite and the loopback federation start hundreds). ``create_new`` runs the same
statements from :data:`STATEMENTS` with plain ``sqlite3`` instead
(docs/adr/0062-sqlite-ddl-as-text.md). ``schema.py`` stays the one declaration of the
layout: :data:`STATEMENTS` is generated from it, and ``tests/unit/test_sqlite_ddl.py``
fails, naming the command below, as soon as the two differ::

    .venv/bin/python -m gateway.messagelog.sqlite_ddl --write

Older files, PostgreSQL and ``gateway db upgrade`` keep the SQLAlchemy and Alembic path.
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path
from typing import Final

REGENERATE: Final = ".venv/bin/python -m gateway.messagelog.sqlite_ddl --write"
"""The command that rewrites :data:`STATEMENTS` from ``schema.py``."""

# BEGIN GENERATED (python -m gateway.messagelog.sqlite_ddl --write)
STATEMENTS: Final[tuple[str, ...]] = (
    (
        "CREATE TABLE message_log (\n"
        "\tid INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, \n"
        "\tlogged_at VARCHAR NOT NULL, \n"
        "\trole VARCHAR NOT NULL, \n"
        "\tkind VARCHAR NOT NULL, \n"
        "\tmessage_id VARCHAR NOT NULL, \n"
        "\txroad_id VARCHAR NOT NULL, \n"
        "\tclient VARCHAR NOT NULL, \n"
        "\tservice VARCHAR NOT NULL, \n"
        "\tcreated VARCHAR NOT NULL, \n"
        "\theader BLOB NOT NULL, \n"
        "\tbody BLOB NOT NULL, \n"
        "\tsignature VARCHAR NOT NULL, \n"
        "\tcert_ref VARCHAR NOT NULL, \n"
        "\tocsp_ref VARCHAR NOT NULL, \n"
        "\tleaf_index INTEGER, \n"
        "\tleaf_hash BLOB, \n"
        "\tbody_sha256 VARCHAR, \n"
        "\tbody_omitted VARCHAR NOT NULL, \n"
        "\tsubjects_salt VARCHAR, \n"
        "\tsubjects_sha256 VARCHAR, \n"
        "\tsealed INTEGER DEFAULT '0' NOT NULL, \n"
        "\tCONSTRAINT ck_message_log_role CHECK (role IN ('consumer', 'provider', "
        "'node')), \n"
        "\tCONSTRAINT ck_message_log_kind CHECK (kind IN ('request', 'response', '"
        "admin'))\n"
        ")"
    ),
    "CREATE INDEX ix_message_log_message_id ON message_log (message_id)",
    (
        "CREATE TABLE signer_certificate (\n"
        "\tcert_ref VARCHAR NOT NULL, \n"
        "\tder BLOB NOT NULL, \n"
        "\tjws_header VARCHAR NOT NULL, \n"
        "\tPRIMARY KEY (cert_ref)\n"
        ")"
    ),
    (
        "CREATE TABLE ocsp_response (\n"
        "\tocsp_ref VARCHAR NOT NULL, \n"
        "\tder BLOB NOT NULL, \n"
        "\tPRIMARY KEY (ocsp_ref)\n"
        ")"
    ),
    (
        "CREATE TABLE seen_request (\n"
        "\tclient VARCHAR NOT NULL, \n"
        "\tmessage_id VARCHAR NOT NULL, \n"
        "\tcreated VARCHAR NOT NULL, \n"
        "\tPRIMARY KEY (client, message_id)\n"
        ")\n"
        " WITHOUT ROWID\n"
        "\n"
    ),
    "CREATE INDEX ix_seen_request_created ON seen_request (created)",
    (
        "CREATE TABLE log_tree_state (\n"
        "\tid INTEGER NOT NULL, \n"
        "\ttree_size INTEGER NOT NULL, \n"
        "\tlast_entry_id INTEGER NOT NULL, \n"
        "\tfrontier BLOB NOT NULL, \n"
        "\tPRIMARY KEY (id)\n"
        ")"
    ),
    (
        "CREATE TABLE merkle_subtree (\n"
        "\tnode INTEGER NOT NULL, \n"
        "\tlevel INTEGER NOT NULL, \n"
        "\tposition INTEGER NOT NULL, \n"
        "\thash BLOB NOT NULL, \n"
        "\tPRIMARY KEY (node)\n"
        ")"
    ),
    (
        "CREATE TABLE tree_head (\n"
        "\tid INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, \n"
        "\ttree_size INTEGER NOT NULL, \n"
        "\troot_hash BLOB NOT NULL, \n"
        "\tlast_entry_id INTEGER NOT NULL, \n"
        "\tdocument BLOB NOT NULL, \n"
        "\tgen_time VARCHAR NOT NULL, \n"
        "\ttoken BLOB NOT NULL, \n"
        "\ttsa_name VARCHAR NOT NULL, \n"
        "\ttsa_cert_ref VARCHAR NOT NULL, \n"
        "\tstored_at VARCHAR NOT NULL, \n"
        "\tUNIQUE (tree_size)\n"
        ")"
    ),
    (
        "CREATE TABLE tsa_certificate (\n"
        "\tcert_ref VARCHAR NOT NULL, \n"
        "\tder BLOB NOT NULL, \n"
        "\tPRIMARY KEY (cert_ref)\n"
        ")"
    ),
    (
        "CREATE TABLE signed_tree_head (\n"
        "\ttree_size INTEGER NOT NULL, \n"
        "\tdocument BLOB NOT NULL, \n"
        "\tsignature VARCHAR NOT NULL, \n"
        "\tcert_ref VARCHAR NOT NULL, \n"
        "\tocsp_ref VARCHAR NOT NULL, \n"
        "\tPRIMARY KEY (tree_size)\n"
        ")"
    ),
    (
        "CREATE TABLE cosignature (\n"
        "\tlog_node VARCHAR NOT NULL, \n"
        "\twitness VARCHAR NOT NULL, \n"
        "\ttree_size INTEGER NOT NULL, \n"
        "\tdocument BLOB NOT NULL, \n"
        "\tsignature VARCHAR NOT NULL, \n"
        "\tcosignature VARCHAR NOT NULL, \n"
        "\tcert_ref VARCHAR NOT NULL, \n"
        "\tocsp_ref VARCHAR NOT NULL, \n"
        "\tstored_at VARCHAR NOT NULL, \n"
        "\tPRIMARY KEY (log_node, witness, tree_size)\n"
        ")"
    ),
    (
        "CREATE TABLE witness_alert (\n"
        "\tid INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, \n"
        "\tpeer VARCHAR NOT NULL, \n"
        "\tcode VARCHAR NOT NULL, \n"
        "\tdetail VARCHAR NOT NULL, \n"
        "\tevidence VARCHAR NOT NULL, \n"
        "\tdetected_at VARCHAR NOT NULL\n"
        ")"
    ),
    "CREATE INDEX ix_witness_alert_peer ON witness_alert (peer)",
    (
        "CREATE TABLE data_subject (\n"
        "\tentry_id INTEGER NOT NULL, \n"
        "\tsubject VARCHAR NOT NULL, \n"
        "\tsealed BLOB, \n"
        "\tPRIMARY KEY (entry_id, subject), \n"
        "\tFOREIGN KEY(entry_id) REFERENCES message_log (id)\n"
        ")"
    ),
    "CREATE INDEX ix_data_subject_subject ON data_subject (subject)",
    (
        "CREATE TABLE data_subject_read (\n"
        "\tentry_id INTEGER NOT NULL, \n"
        "\tmethod VARCHAR NOT NULL, \n"
        "\tpath VARCHAR NOT NULL, \n"
        "\tstatus INTEGER NOT NULL, \n"
        "\tuser_id VARCHAR, \n"
        "\tissue VARCHAR, \n"
        "\tPRIMARY KEY (entry_id), \n"
        "\tFOREIGN KEY(entry_id) REFERENCES message_log (id)\n"
        ")"
    ),
    (
        "CREATE TABLE configuration_version (\n"
        "\tid INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, \n"
        "\tserial INTEGER NOT NULL, \n"
        "\tapplied_at VARCHAR NOT NULL, \n"
        "\tdocument_sha256 VARCHAR NOT NULL, \n"
        "\troot BLOB NOT NULL, \n"
        "\ttimestamp BLOB NOT NULL, \n"
        "\tsnapshot BLOB NOT NULL, \n"
        "\ttargets BLOB NOT NULL, \n"
        "\tdocument BLOB NOT NULL\n"
        ")"
    ),
    (
        "CREATE INDEX ix_configuration_version_document_sha256 ON configuration_v"
        "ersion (document_sha256)"
    ),
    (
        "CREATE TABLE foreign_configuration_version (\n"
        "\tid INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, \n"
        "\tinstance VARCHAR NOT NULL, \n"
        "\tserial INTEGER NOT NULL, \n"
        "\tapplied_at VARCHAR NOT NULL, \n"
        "\texpires VARCHAR NOT NULL, \n"
        "\troot_sha256 VARCHAR NOT NULL, \n"
        "\tdocument_sha256 VARCHAR NOT NULL, \n"
        "\troot BLOB NOT NULL, \n"
        "\ttimestamp BLOB NOT NULL, \n"
        "\tsnapshot BLOB NOT NULL, \n"
        "\ttargets BLOB NOT NULL, \n"
        "\tdocument BLOB NOT NULL\n"
        ")"
    ),
    (
        "CREATE INDEX ix_foreign_configuration_version_instance ON foreign_config"
        "uration_version (instance)"
    ),
    (
        "CREATE TABLE own_ocsp_status (\n"
        "\tcert_ref VARCHAR NOT NULL, \n"
        "\tocsp_ref VARCHAR NOT NULL, \n"
        "\tfetched_at VARCHAR NOT NULL, \n"
        "\tfetched_from VARCHAR NOT NULL, \n"
        "\tPRIMARY KEY (cert_ref)\n"
        ")"
    ),
    (
        "CREATE TABLE operational_data (\n"
        "\tid INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, \n"
        "\tside VARCHAR NOT NULL, \n"
        "\tnode VARCHAR NOT NULL, \n"
        "\tpeer_node VARCHAR NOT NULL, \n"
        "\tclient VARCHAR NOT NULL, \n"
        "\tservice VARCHAR NOT NULL, \n"
        "\tmessage_id VARCHAR NOT NULL, \n"
        "\txroad_id VARCHAR NOT NULL, \n"
        "\trequest_in VARCHAR NOT NULL, \n"
        "\tresponse_out VARCHAR NOT NULL, \n"
        "\trequest_size INTEGER NOT NULL, \n"
        "\tresponse_size INTEGER NOT NULL, \n"
        "\tstatus INTEGER NOT NULL, \n"
        "\tsucceeded BOOLEAN NOT NULL, \n"
        "\terror_code VARCHAR NOT NULL\n"
        ")"
    ),
    "CREATE INDEX ix_operational_data_request_in ON operational_data (request_in)",
    (
        "CREATE TABLE node_settings (\n"
        "\tversion INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, \n"
        "\tdocument BLOB NOT NULL, \n"
        "\tchanged_at VARCHAR NOT NULL, \n"
        "\tentry_id INTEGER NOT NULL, \n"
        "\tFOREIGN KEY(entry_id) REFERENCES message_log (id)\n"
        ")"
    ),
)
# END GENERATED


def create_new(path: Path) -> bool:
    """Create every table and index of the head schema in ``path`` if it holds none yet;
    True if it did, False if the file already had tables (the caller's upgrade path).

    One ``BEGIN IMMEDIATE`` transaction, with the emptiness checked inside it: another
    process creating the same file at the same moment makes this one see its tables and
    step aside, and a crash leaves either nothing or the whole schema. A new SQLite file
    records no revision (``user_version`` stays 0, no ``alembic_version`` table), as
    ``create_all`` left it."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            (count,) = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'index')"
            ).fetchone()
            if count:
                conn.execute("ROLLBACK")
                return False
            for statement in STATEMENTS:
                conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
    return True


def generated() -> tuple[str, ...]:
    """The statements SQLite stores for ``create_all`` of the schema (loads SQLAlchemy:
    for the generator and the test only).

    Each table in ``schema_tables()`` order, followed by its indexes by name:
    ``create_all``'s own order varies from one process to the next, and a fixed one keeps
    the generated text stable."""
    from sqlmodel import SQLModel, create_engine

    from gateway.messagelog.schema import schema_tables

    tables = schema_tables()
    position = {table.name: i for i, table in enumerate(tables)}
    engine = create_engine("sqlite://")
    try:
        SQLModel.metadata.create_all(engine, tables=tables)
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT type, name, tbl_name, sql FROM sqlite_master"
                " WHERE sql IS NOT NULL AND name != 'sqlite_sequence'"
            ).fetchall()
    finally:
        engine.dispose()
    ordered = sorted(rows, key=lambda r: (position[str(r[2])], r[0] != "table", str(r[1])))
    return tuple(str(row[3]) for row in ordered)


def _block(statements: tuple[str, ...]) -> str:
    """:data:`STATEMENTS` as ``ruff format`` leaves it: one double-quoted literal per line
    of a statement, long lines cut, so the module stays within the line limit."""
    lines = ["STATEMENTS: Final[tuple[str, ...]] = ("]
    for statement in statements:
        parts = [
            line[start : start + 72]
            for line in statement.splitlines(keepends=True)
            for start in range(0, len(line), 72)
        ]
        if len(parts) == 1 or len(json.dumps(statement)) <= 94:
            lines.append(f"    {json.dumps(statement)},")
            continue
        lines.append("    (")
        lines.extend(f"        {json.dumps(part)}" for part in parts)
        lines.append("    ),")
    lines.append(")")
    return "\n".join(lines)


_GENERATED = re.compile(r"(# BEGIN GENERATED[^\n]*\n).*?(\n# END GENERATED)", flags=re.DOTALL)


def main(argv: list[str]) -> int:
    """Print the generated block, or with ``--write`` put it into this file."""
    block = _block(generated())
    if "--write" not in argv:
        sys.stdout.write(block + "\n")
        return 0
    source = Path(__file__)
    text = source.read_text("utf-8")
    source.write_text(_GENERATED.sub(lambda m: m.group(1) + block + m.group(2), text), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
