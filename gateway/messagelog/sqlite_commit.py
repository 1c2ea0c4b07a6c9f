"""The SQLite side of the message log's writer: what one transaction writes and checks.

``gateway.messagelog.writer`` owns the writer thread, its queue and the callers' futures;
this module owns what that thread does to the database, so the SQL of the write path is
read in one place: a batch of entries with their leaves, replay keys, certificates and
data subjects (``insert_batch``), a timestamped tree head (``insert_tree_head``), the
connection's durability settings (``configure``) and, at start-up, the upgrade of an
older file and the check or rebuild of the Merkle tree against the stored entries
(``open_tree``). What reaches it was checked before it was queued
(``gateway.messagelog.admission``).

The functions take the connection and the tree state as arguments and return what
changed; the writer decides when to publish it, so a rolled-back transaction never
leaves state behind. Together with ``sqlite.py`` (reads) and ``sqlite_writes.py`` (side
writes) this is the SQLite backend (docs/adr/0018).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

import gateway.messagelog.leaves as leaves
import gateway.messagelog.sqlite_admin as admin
import gateway.messagelog.sqlite_ddl as sqlite_ddl
import gateway.messagelog.sqlite_layout as layout
import gateway.messagelog.sqlite_writes as side
from gateway.core.encoding import format_time
from gateway.core.logtree import LoggedEntry, entry_leaf
from gateway.core.merkle import CompactTree, MerkleError, leaf_hash
from gateway.messagelog.admission import Append
from gateway.messagelog.records import (
    LogRecord,
    LogStoreError,
    MessageLogError,
    OpRecord,
    ReplayError,
    SignedHeadRecord,
    TreeHeadRecord,
)
from gateway.messagelog.schema_names import INDEX_NAMES, TABLE_NAMES
from gateway.messagelog.sealing import Sealer
from gateway.messagelog.sqlite_bodies import BodyFiles, BodyReader

_log = logging.getLogger(__name__)

Outcome = list[int] | BaseException
"""One append's result: its entry ids, or the error its caller gets."""

_INSERT_ENTRY: Final = (
    "INSERT INTO message_log (logged_at, role, kind, message_id, xroad_id, client, service,"
    " created, header, body, signature, cert_ref, ocsp_ref, leaf_index, leaf_hash,"
    " body_sha256, body_omitted, sealed, subjects_salt, subjects_sha256)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SAVE_TREE: Final = (
    "UPDATE log_tree_state SET tree_size = ?, last_entry_id = ?, frontier = ? WHERE id = 1"
)
_INSERT_TREE_HEAD: Final = (
    "INSERT INTO tree_head (tree_size, root_hash, last_entry_id, document, gen_time, token,"
    " tsa_name, tsa_cert_ref, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_TSA_CERT: Final = "INSERT OR IGNORE INTO tsa_certificate (cert_ref, der) VALUES (?, ?)"
_FIRST_AFTER: Final = "SELECT logged_at FROM message_log WHERE id > ? ORDER BY id LIMIT 1"
_UPGRADE_COLUMNS: Final = (
    # Columns added after the first release, so an older log file can still be opened;
    # leaf_index and leaf_hash are then filled in by the tree rebuild at start-up.
    ("ocsp_ref", "TEXT NOT NULL DEFAULT ''"),
    ("leaf_index", "INTEGER"),
    ("leaf_hash", "BLOB"),
    ("body_sha256", "TEXT"),
    ("body_omitted", "TEXT NOT NULL DEFAULT ''"),
    # NULL in entries logged before subject commitments: their leaves stay version 1.
    ("subjects_salt", "TEXT"),
    ("subjects_sha256", "TEXT"),
)
_INSERT_OCSP: Final = "INSERT OR IGNORE INTO ocsp_response (ocsp_ref, der) VALUES (?, ?)"
_INSERT_CERT: Final = (
    "INSERT OR IGNORE INTO signer_certificate (cert_ref, der, jws_header) VALUES (?, ?, ?)"
)
_INSERT_SEEN: Final = (
    "INSERT OR IGNORE INTO seen_request (client, message_id, created) VALUES (?, ?, ?)"
)
SEEN_SINCE: Final = "SELECT client, message_id, created FROM seen_request WHERE created > ?"
"""The replay guard's rebuild: a range of ``seen_request``'s index on ``created``."""
_INSERT_SUBJECT: Final = (
    "INSERT OR IGNORE INTO data_subject (entry_id, subject, sealed) VALUES (?, ?, ?)"
)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def upgrade_columns(conn: sqlite3.Connection) -> bool:
    """Add columns an older log file lacks; True if any was added (the tree is rebuilt)."""
    present = {str(row[1]) for row in conn.execute("PRAGMA table_info(message_log)")}
    missing = [(name, ddl) for name, ddl in _UPGRADE_COLUMNS if name not in present]
    for name, ddl in missing:
        _log.warning("message log: adding column %s to an older log file", name)
        conn.execute(f"ALTER TABLE message_log ADD COLUMN {name} {ddl}")
    return bool(missing)


_SELECT_ENTRIES: Final = (
    "SELECT id, logged_at, role, kind, message_id, xroad_id, client, service, created, header,"
    " body, signature, cert_ref, ocsp_ref, leaf_index, leaf_hash, body_sha256, body_omitted,"
    " subjects_sha256, sealed FROM message_log"
)


def logged_entry(row: Sequence[object], sealer: Sealer) -> LoggedEntry:
    """The leaf-relevant fields of a ``_SELECT_ENTRIES`` row (the id is row[0]), for the
    start-up rebuild, sealed rows opened; readers use ``StoredEntry.leaf_entry``."""
    header, body = row[9], row[10]
    if not isinstance(header, bytes) or not isinstance(body, bytes):
        raise MessageLogError(f"entry {row[0]}: header and body must be stored as BLOBs")
    try:
        header = sealer.open_blob(row[0], header, row[19], "header")
        body = sealer.open_blob(row[0], body, row[19], "body")
    except LogStoreError as exc:
        raise MessageLogError(str(exc)) from None
    return LoggedEntry(
        role=str(row[2]),
        kind=str(row[3]),
        message_id=str(row[4]),
        xroad_id=str(row[5]),
        client=str(row[6]),
        service=str(row[7]),
        created=str(row[8]),
        logged_at=str(row[1]),
        header=header,
        body=body,
        signature=str(row[11]),
        cert_ref=str(row[12]),
        ocsp_ref=str(row[13]),
        # Digest-only entries (docs/message-log.md section 1.1) commit to the stored digest.
        body_digest=str(row[16]) if row[17] else None,
        subjects_sha256=None if row[18] is None else str(row[18]),
    )


def rebuild_tree(conn: sqlite3.Connection, path: Path, sealer: Sealer) -> tuple[CompactTree, int]:
    """Rehash every entry into a new tree, fill in missing leaves, save the frontier.

    Refuses (``MessageLogError``) when an entry no longer matches the leaf hash stored
    for it or a timestamped tree head no longer matches the entries: the log was altered
    after it was written, and extending it would hide that.
    """
    rows = conn.execute("SELECT tree_size, root_hash FROM tree_head").fetchall()
    heads = {int(size): bytes(root) for size, root in rows}
    tree = CompactTree()
    last_id = 0
    fill: list[tuple[int, bytes, int]] = []
    subtrees: list[tuple[int, int, bytes]] = []
    for row in BodyReader(conn, path).rows(conn.execute(_SELECT_ENTRIES + " ORDER BY id")):
        entry_id, stored_index, stored_leaf = int(row[0]), row[14], row[15]
        if row[17] in ("archived", "deleted") and stored_leaf is not None:
            # Its header, body and signature live in an archive bundle now
            # (gateway/audit/archive.py); the stored leaf still chains to the heads.
            if row[9] or row[10] or row[11]:
                raise MessageLogError(
                    f"{path}: entry {entry_id} is marked {row[17]} but still holds content; "
                    "the log was altered after it was written"
                )
            leaf = bytes(stored_leaf)
        else:
            leaf = leaf_hash(entry_leaf(logged_entry(row, sealer)))
        if stored_leaf is not None and bytes(stored_leaf) != leaf:
            raise MessageLogError(
                f"{path}: entry {entry_id} no longer matches its leaf hash; the log was "
                "altered after it was written"
            )
        if stored_index is not None and stored_index != tree.size:
            raise MessageLogError(
                f"{path}: entry {entry_id} has leaf index {stored_index}, expected "
                f"{tree.size}; entries were removed or reordered"
            )
        if stored_leaf is None or stored_index is None:
            fill.append((tree.size, leaf, entry_id))
        subtrees.extend(tree.append(leaf))
        last_id = entry_id
        expected = heads.get(tree.size)
        if expected is not None and expected != tree.root():
            raise MessageLogError(
                f"{path}: the entries no longer match the timestamped tree head of size "
                f"{tree.size}; the log was altered after it was timestamped"
            )
    beyond = [size for size in heads if size > tree.size]
    if beyond:
        raise MessageLogError(
            f"{path}: tree heads of size {max(beyond)} cover entries that are not in the log"
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany("UPDATE message_log SET leaf_index = ?, leaf_hash = ? WHERE id = ?", fill)
        conn.execute("DELETE FROM merkle_subtree")
        conn.executemany(side.INSERT_SUBTREE, leaves.subtree_rows(subtrees))
        conn.execute(
            "INSERT OR REPLACE INTO log_tree_state (id, tree_size, last_entry_id, frontier)"
            " VALUES (1, ?, ?, ?)",
            (tree.size, last_id, tree.to_bytes()),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    _log.info("%s: Merkle tree rebuilt over %d entries", path, tree.size)
    return tree, last_id


def store_signed_head(conn: sqlite3.Connection, size: int, signed: SignedHeadRecord) -> None:
    """Insert a tree head's signature and its evidence (inside the head's transaction)."""
    conn.execute(_INSERT_CERT, (signed.cert_ref, signed.cert_der, signed.jws_header))
    if signed.ocsp_ref:
        conn.execute(_INSERT_OCSP, (signed.ocsp_ref, signed.ocsp_der))
    conn.execute(
        "INSERT INTO signed_tree_head (tree_size, document, signature, cert_ref, ocsp_ref)"
        " VALUES (?, ?, ?, ?, ?)",
        (size, signed.document, signed.signature, signed.cert_ref, signed.ocsp_ref),
    )


def configure(conn: sqlite3.Connection) -> tuple[str, int]:
    """Put the writer's connection in WAL mode with ``synchronous=FULL``, or refuse.

    WAL lets readers (CLI, other processes) read while the writer commits, and with
    synchronous=FULL every commit is fsynced before it is reported: the durability
    promise of ``append`` depends on both, so the log refuses to run without them.
    """
    (journal_mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
    if str(journal_mode).lower() != "wal":
        raise MessageLogError(f"could not enable WAL journal mode (got {journal_mode!r})")
    conn.execute("PRAGMA synchronous=FULL")
    (synchronous,) = conn.execute("PRAGMA synchronous").fetchone()
    if synchronous != 2:
        raise MessageLogError(f"could not set synchronous=FULL (got {synchronous!r})")
    return "wal", 2


def create_tables(path: Path) -> bool:
    """Create the log's tables that a file lacks; True if it predates ``data_subject_read``
    (its reads then get their rows once, ``record_older_reads``).

    A file that has every table and index is left as it is without loading SQLAlchemy (a
    node's restart, mostly); a file with none gets the head schema's DDL as text
    (``sqlite_ddl``, a node's first start); only an older file loads SQLAlchemy, which
    creates the rest from ``gateway.messagelog.schema``."""
    present = admin.schema_object_names(path)
    if present >= TABLE_NAMES | INDEX_NAMES:
        return False
    if not present and sqlite_ddl.create_new(path):
        return False
    from sqlalchemy import inspect
    from sqlmodel import SQLModel, create_engine

    from gateway.messagelog.schema import schema_tables

    engine = create_engine(f"sqlite:///{path}")
    try:
        older_reads = not inspect(engine).has_table("data_subject_read")
        SQLModel.metadata.create_all(engine, tables=schema_tables())
        # create_all skips the indexes of a table that exists: a file from before
        # seen_request's index (migration 0005) gets it here, once.
        for table in schema_tables():
            if table.name == "seen_request":
                for index in table.indexes:
                    index.create(engine, checkfirst=True)
    finally:
        engine.dispose()
    return older_reads


def record_older_reads(conn: sqlite3.Connection, path: Path, sealer: Sealer) -> None:
    """Give every entry logged before ``data_subject_read`` existed its row, once.

    Entries archived before then have no headers left to take them from: the tracker
    shows those reads without the details (docs/data-tracker.md, section 3).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        missing = side.record_missing_reads(conn, sealer)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if missing:
        _log.warning(
            "%s: %d read(s) with data subjects have no headers left to record their"
            " details from (archived earlier)",
            path,
            len(missing),
        )


def rewrite_user_version(conn: sqlite3.Connection) -> None:
    """The readiness probe's write (``MessageLog.probe``): a real page write through the
    writer's transaction and fsync, with no change to any entry, tree or side table."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    conn.execute(f"PRAGMA user_version = {int(version)}")


def seen_since(conn: sqlite3.Connection, created_after: str) -> list[tuple[str, str, str]]:
    """Replay keys (client, message id, created) of requests created after a time."""
    rows = conn.execute(SEEN_SINCE, (created_after,)).fetchall()
    return [(str(c), str(m), str(t)) for c, m, t in rows]


def first_logged_after(conn: sqlite3.Connection, entry_id: int) -> datetime | None:
    """When the first entry after ``entry_id`` was logged (the oldest awaiting a stamp)."""
    row = conn.execute(_FIRST_AFTER, (entry_id,)).fetchone()
    return None if row is None else parse_time(str(row[0]))


@dataclass(frozen=True, slots=True)
class TreeState:
    """The Merkle tree and timestamping state the writer starts from."""

    tree: CompactTree
    last_id: int
    stamped_size: int
    stamped_last_id: int
    last_stamp: datetime | None
    oldest_pending: datetime | None


def open_tree(conn: sqlite3.Connection, path: Path, sealer: Sealer) -> TreeState:
    """Load the tree's frontier and the timestamping state; rebuild the tree if needed.

    The frontier is saved in every batch's transaction, so normally it matches the
    last entry exactly (checked in O(log n)). A log from before the tree existed, or
    one whose saved state is missing or does not match, is rehashed from its entries.
    """
    upgraded = upgrade_columns(conn)
    side.add_sealing_columns(conn)  # new rows are flagged; old ones read as they are
    admin.widen_checks(conn, path)
    layout.take_up(conn, path)  # revision 0006's pages per commit (docs/adr/0072)
    state = conn.execute(
        "SELECT tree_size, last_entry_id, frontier FROM log_tree_state WHERE id = 1"
    ).fetchone()
    last = conn.execute(
        "SELECT id, leaf_index FROM message_log ORDER BY id DESC LIMIT 1"
    ).fetchone()
    tree: CompactTree | None = None
    last_id = 0
    if state is not None and not upgraded:
        size, last_id, frontier = state
        try:
            tree = CompactTree.from_bytes(frontier)
        except MerkleError as exc:
            _log.warning("%s: saved Merkle frontier unreadable (%s)", path, exc)
        matches = (
            tree is not None
            and tree.size == size
            and (
                (last is None and size == 0 and last_id == 0)
                or (last is not None and tuple(last) == (last_id, size - 1))
            )
        )
        if not matches:
            _log.warning(
                "%s: saved Merkle frontier (size %s, last entry %s) does not match the "
                "log's last entry %s; rebuilding the tree from the entries",
                path,
                size,
                last_id,
                None if last is None else tuple(last),
            )
            tree = None
    if tree is None:
        tree, last_id = rebuild_tree(conn, path, sealer)
    elif not side.has_subtrees(conn, tree.size):
        side.store_subtrees(conn, path, tree)

    stamped_size = stamped_last_id = 0
    last_stamp: datetime | None = None
    head = conn.execute(
        "SELECT tree_size, last_entry_id, gen_time FROM tree_head ORDER BY tree_size DESC LIMIT 1"
    ).fetchone()
    if head is not None:
        stamped_size, stamped_last_id = int(head[0]), int(head[1])
        last_stamp = parse_time(str(head[2]))
    return TreeState(
        tree,
        last_id,
        stamped_size,
        stamped_last_id,
        last_stamp,
        first_logged_after(conn, stamped_last_id),
    )


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one committed batch changed: each append's outcome, the references it
    stored for the first time, the id of the last entry it wrote and the tree after it
    (another object than the one passed in when a backend shared by several writers
    extended the frontier stored by another)."""

    outcomes: list[Outcome]
    new_certs: set[str]
    new_ocsp: set[str]
    last_id: int
    tree: CompactTree


def insert_batch(
    conn: sqlite3.Connection,
    appends: Sequence[Append],
    *,
    tree: CompactTree,
    last_id: int,
    logged_at: str,
    stored_certs: set[str],
    stored_ocsp: set[str],
    body_policy: Callable[[LogRecord], str] | None,
    salts: Callable[[], bytes],
    sealer: Sealer,
    begun: bool = False,
    bodies: BodyFiles | None = None,
) -> BatchResult:
    """Write a batch of appends in one transaction and extend ``tree`` with their leaves.

    A replayed request writes nothing and gets a ``ReplayError`` as its outcome. On any
    other failure this raises with the transaction open; the caller rolls it back and
    restores the tree it passed in (which this function has extended in place).
    """
    new_certs: set[str] = set()
    new_ocsp: set[str] = set()
    outcomes: list[Outcome] = []
    size_before = tree.size
    # Rows no statement of the batch reads back, inserted once at its end, in the order
    # the entries produced them (the same rows and rowids as one insert per entry).
    subtrees: list[tuple[int, int, bytes]] = []
    operational: list[OpRecord] = []
    # IMMEDIATE takes the write lock up front, so a competing writer shows up as a
    # bounded wait here rather than as a failure halfway through the batch. ``begun``:
    # the caller took it already (``SqliteWriterDb.try_insert_batch``).
    if not begun:
        conn.execute("BEGIN IMMEDIATE")
    for unit in appends:
        if unit.replay_key is not None:
            client, message_id, created = unit.replay_key
            cur = conn.execute(_INSERT_SEEN, (client, message_id, created))
            if cur.rowcount == 0:
                # Seen before, possibly earlier in this very batch (the transaction
                # sees its own inserts). Checked first, so a replay writes nothing.
                outcomes.append(
                    ReplayError(f"request {message_id!r} from {client!r} was already received")
                )
                continue
        if (stale := admin.settings_conflict(conn, unit.settings_base)) is not None:
            outcomes.append(stale)  # a settings change on an old version writes nothing
            continue
        for ref, der, jws_header in unit.certs:
            if ref not in stored_certs and ref not in new_certs:
                conn.execute(_INSERT_CERT, (ref, der, jws_header))
                new_certs.add(ref)
        for ref, der in unit.ocsp:
            if ref not in stored_ocsp and ref not in new_ocsp:
                conn.execute(_INSERT_OCSP, (ref, der))
                new_ocsp.add(ref)
        ids: list[int] = []
        for r in unit.records:
            if unit.admin and not r.ocsp_ref:
                r = dataclasses.replace(r, ocsp_ref=admin.kept_ocsp_ref(conn, r.cert_ref))
            policy = None if unit.admin else body_policy
            entry_id, leaf = _insert_entry(
                conn, r, tree.size, logged_at, policy, salts, sealer, unit.admin, bodies
            )
            # The subtrees this leaf completes, in the entry's transaction: proofs read them.
            subtrees += tree.append(leaf)
            ids.append(entry_id)
            last_id = entry_id
        if unit.admin:  # [entry id, leaf index(, settings version)]
            ids.append(tree.size - 1)
            if unit.settings is not None:
                ids.append(admin.insert_settings(conn, unit.settings, logged_at, ids[0]))
        if unit.operational:  # the exchange's monitoring record, with its entries
            operational += unit.operational
        outcomes.append(ids)
    if subtrees:
        conn.executemany(side.INSERT_SUBTREE, leaves.subtree_rows(subtrees))
    if operational:
        side.insert_operational(conn, operational)
    if tree.size != size_before:
        conn.execute(_SAVE_TREE, (tree.size, last_id, tree.to_bytes()))
    if bodies is not None:
        bodies.sync()  # large bodies' segments: no committed row names bytes not durable
    conn.execute("COMMIT")
    return BatchResult(outcomes, new_certs, new_ocsp, last_id, tree)


def _insert_entry(
    conn: sqlite3.Connection,
    r: LogRecord,
    leaf_index: int,
    logged_at: str,
    body_policy: Callable[[LogRecord], str] | None,
    salts: Callable[[], bytes],
    sealer: Sealer,
    is_admin: bool,
    bodies: BodyFiles | None = None,
) -> tuple[int, bytes]:
    """Insert one entry with its leaf and data subjects; return its id and leaf hash,
    which the caller appends to the tree at ``leaf_index``.
    The leaf is over the plaintext; ``sealer`` seals what the row stores after it."""
    omitted = body_policy(r) if body_policy is not None else ""
    digest = r.body_sha256 or hashlib.sha256(r.body).hexdigest()
    # Every new entry gets a salt, with subjects or without, so the leaf
    # does not tell an auditor which entries disclosed a person.
    salt = salts()
    subjects_sha256 = leaves.commitment(salt, r.subjects)
    # The entry's Merkle leaf, from the same bytes the row stores: one
    # SHA-256 over header and body each, then O(log n) to extend the tree.
    leaf = leaves.new_leaf(r, logged_at, digest, subjects_sha256)
    header, body, sealed = sealer.seal_entry(r.header, b"" if omitted else r.body, admin=is_admin)
    in_file = bodies is not None and bodies.put(body, digest if body is r.body else None)
    cur = conn.execute(
        _INSERT_ENTRY,
        (
            logged_at,
            str(r.role),
            str(r.kind),
            r.message_id,
            r.xroad_id,
            r.client,
            r.service,
            r.created,
            header,
            b"" if in_file else body,
            r.signature,
            r.cert_ref,
            r.ocsp_ref,
            leaf_index,
            leaf,
            digest,
            omitted,
            sealed,
            salt.hex(),
            subjects_sha256,
        ),
    )
    assert cur.lastrowid is not None
    if in_file and bodies is not None:  # named in the entry's transaction
        bodies.link(conn, cur.lastrowid)
    if r.subjects:  # data tracker index (keyed hash and sealed value), with the entry
        rows = sealer.subject_rows(r.subjects)
        conn.executemany(_INSERT_SUBJECT, [(cur.lastrowid, tag, value) for tag, value in rows])
        # What the tracker must still show once the headers are archived.
        if r.read is None:
            side.record_read(conn, cur.lastrowid, sealer)
        else:
            side.store_read(conn, cur.lastrowid, sealer.seal_read(r.read) if sealed else r.read)
    return cur.lastrowid, leaf


def insert_tree_head(
    conn: sqlite3.Connection, head: TreeHeadRecord, *, stored_at: str, tree_size: int
) -> tuple[int, datetime | None]:
    """Store a timestamped tree head (and its signature) in one transaction.

    Returns the head's id and when the oldest entry it does not cover was logged (None
    if the tree, of ``tree_size`` leaves, has none). Raises with the transaction open on
    failure; the caller rolls it back.
    """
    cert_ref = hashlib.sha256(head.tsa_cert_der).hexdigest()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(_INSERT_TSA_CERT, (cert_ref, head.tsa_cert_der))
    cur = conn.execute(
        _INSERT_TREE_HEAD,
        (
            head.tree_size,
            head.root_hash,
            head.last_entry_id,
            head.document,
            format_time(head.gen_time, "auto"),
            head.token,
            head.tsa_name,
            cert_ref,
            stored_at,
        ),
    )
    assert cur.lastrowid is not None
    head_id = cur.lastrowid
    if head.signed is not None:
        store_signed_head(conn, head.tree_size, head.signed)
    oldest = first_logged_after(conn, head.last_entry_id) if tree_size > head.tree_size else None
    conn.execute("COMMIT")
    return head_id, oldest
