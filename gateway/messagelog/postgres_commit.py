"""The PostgreSQL side of the message log's writer: what one transaction writes and checks.

The counterpart of ``gateway.messagelog.sqlite_commit`` for a log in a PostgreSQL
database. ``gateway.messagelog.writer.MessageLog`` runs the same group commit on it (the
thread, the queue, the futures, the published tree); :class:`PostgresWriterDb` is what
that thread does to the database.

Several writers may share one database (the processes of a node cluster). The database,
not a process lock, puts their batches in one order: every batch and every tree head
first locks the tree's frontier row (``SELECT ... FOR UPDATE`` on ``log_tree_state``),
then extends the tree from the frontier stored there, not from the one this process
remembers, and saves the new frontier in the same transaction. So leaf indexes stay one
gap-free sequence across processes, a replay key claimed by one process is seen by the
next, and the tree never disagrees with the entries (docs/adr/0035-postgresql-backend.md).

Durability: the connection runs with ``synchronous_commit = on`` and refuses a server
with ``fsync`` off, so ``COMMIT`` returns only once the batch is flushed to the WAL on
disk; only then does the writer answer its callers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final

import psycopg

import gateway.messagelog.leaves as leaves
import gateway.messagelog.postgres_admin as admin
import gateway.messagelog.postgres_writes as side
from gateway.core.encoding import format_time
from gateway.core.merkle import CompactTree, MerkleError
from gateway.messagelog.admission import Append
from gateway.messagelog.postgres_schema import check_schema, connect, redacted
from gateway.messagelog.records import (
    LogRecord,
    LogStoreError,
    MessageLogError,
    OpRecord,
    ReplayError,
    SignedHeadRecord,
    TreeHeadRecord,
)
from gateway.messagelog.sealing import Sealer
from gateway.messagelog.sqlite_commit import BatchResult, Outcome, TreeState, parse_time

__all__ = ["PostgresWriterDb"]

_log = logging.getLogger(__name__)

_LOCK_FRONTIER: Final = (
    "SELECT tree_size, last_entry_id, frontier FROM log_tree_state WHERE id = 1 FOR UPDATE"
)
_SAVE_TREE: Final = (
    "UPDATE log_tree_state SET tree_size = %s, last_entry_id = %s, frontier = %s WHERE id = 1"
)
_INSERT_ENTRY: Final = (
    "INSERT INTO message_log (logged_at, role, kind, message_id, xroad_id, client, service,"
    " created, header, body, signature, cert_ref, ocsp_ref, leaf_index, leaf_hash,"
    " body_sha256, body_omitted, sealed, subjects_salt, subjects_sha256)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " RETURNING id"
)
_INSERT_SEEN: Final = (
    "INSERT INTO seen_request (client, message_id, created) VALUES (%s, %s, %s)"
    " ON CONFLICT DO NOTHING"
)
SEEN_SINCE: Final = "SELECT client, message_id, created FROM seen_request WHERE created > %s"
"""The replay guard's rebuild: a range of ``seen_request``'s index on ``created``."""
_INSERT_SUBJECT: Final = (
    "INSERT INTO data_subject (entry_id, subject, sealed) VALUES (%s, %s, %s)"
    " ON CONFLICT DO NOTHING"
)
_INSERT_SUBTREE: Final = (
    "INSERT INTO merkle_subtree (node, level, position, hash) VALUES (%s, %s, %s, %s)"
)
_FIRST_AFTER: Final = "SELECT logged_at FROM message_log WHERE id > %s ORDER BY id LIMIT 1"
_LATEST_HEAD: Final = (
    "SELECT tree_size, last_entry_id, gen_time FROM tree_head ORDER BY tree_size DESC LIMIT 1"
)


class PostgresWriterDb:
    """The writer thread's connection to a PostgreSQL log, and its transactions.

    Every method runs on the writer thread alone. Methods that write commit before they
    return, or raise with the transaction open; the writer then calls :meth:`rollback`.
    """

    side = side
    """The side writes (``MessageLog.write`` units) of this backend."""

    def __init__(self, url: str, sealer: Sealer) -> None:
        self._url = url
        self._sealer = sealer
        self._conn: psycopg.Connection[tuple[Any, ...]] = connect(url)
        try:
            check_schema(self._conn, url)
            self._durability()
            # The frontier row exists from the first start on: every batch locks it.
            empty = CompactTree().to_bytes()
            self._conn.execute(
                "INSERT INTO log_tree_state (id, tree_size, last_entry_id, frontier)"
                " VALUES (1, 0, 0, %s) ON CONFLICT (id) DO NOTHING",
                (empty,),
            )
            self._conn.commit()
        except BaseException:
            self._conn.close()
            raise

    def _durability(self) -> None:
        """``synchronous_commit = on`` for this session, and a server that fsyncs: the
        promise of ``append`` depends on both, so the log refuses to run without them."""
        self._conn.execute("SET synchronous_commit = on")
        for setting, wanted in (("synchronous_commit", "on"), ("fsync", "on")):
            row = self._conn.execute(f"SHOW {setting}").fetchone()
            if row is None or str(row[0]) != wanted:
                raise MessageLogError(
                    f"PostgreSQL runs with {setting} = {None if row is None else row[0]!r};"
                    f" the message log needs {setting} = {wanted}"
                )
        self._conn.commit()

    @property
    def durability(self) -> tuple[str, int]:
        """What ``MessageLog.journal_mode`` and ``.synchronous`` report on this backend:
        PostgreSQL's WAL, flushed at every commit (2, as SQLite's FULL)."""
        return "wal", 2

    @property
    def location(self) -> str:
        return redacted(self._url)

    def idle(self) -> None:
        """Nothing to do: PostgreSQL checkpoints on its own."""

    def rollback(self) -> None:
        try:
            self._conn.rollback()
        except psycopg.Error:  # the connection is gone; the batch is failed either way
            _log.warning("message log: rollback failed on a broken connection")
            self._reconnect()

    def _reconnect(self) -> None:
        """After the server went away, the next batch runs on a new connection.

        Never raises: it runs in the writer thread's error path, and a writer thread
        that died would leave every later append waiting. While the server refuses, the
        connection stays closed and the next batch tries again (``_live``).
        """
        self._conn.close()
        try:
            conn = connect(self._url)
        except LogStoreError as exc:
            _log.warning("message log: cannot reconnect to PostgreSQL yet: %s", exc)
            return
        old, self._conn = self._conn, conn
        try:
            self._durability()
        except Exception as exc:  # refused settings: the next batch fails again, loudly
            _log.warning("message log: reconnected connection refused: %s", exc)
            self._conn.close()
            self._conn = old

    def _live(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The connection, opened again first if a failed batch left it closed: the
        batch after an outage runs as soon as the server accepts connections."""
        if self._conn.closed:
            self._reconnect()
            if self._conn.closed:
                raise MessageLogError("PostgreSQL does not accept connections")
        return self._conn

    def close(self) -> None:
        self._conn.close()

    def run(self, work: Callable[[Any], object]) -> object:
        """One side write (``MessageLog.write``) in its own transaction."""
        conn = self._live()
        result = work(conn)
        conn.commit()
        return result

    def probe_work(self) -> Callable[[Any], object]:
        return side.probe

    # -- start-up ---------------------------------------------------------------------

    def seen_since(self, created_after: str) -> list[tuple[str, str, str]]:
        rows = self._conn.execute(SEEN_SINCE, (created_after,)).fetchall()
        self._conn.commit()
        return [(str(c), str(m), str(t)) for c, m, t in rows]

    def open_tree(self) -> TreeState:
        """The stored frontier, checked against the last entry, and the timestamping state.

        Every batch saves the frontier in its own transaction, so a mismatch is not an
        interrupted write: the tables were changed behind the log's back. The log refuses
        to extend a tree it cannot vouch for (a SQLite log from before the tree existed
        is rebuilt instead; a PostgreSQL log never had one).
        """
        conn = self._conn
        size, last_id, frontier = _locked_frontier(conn)
        last = conn.execute(
            "SELECT id, leaf_index FROM message_log ORDER BY id DESC LIMIT 1"
        ).fetchone()
        try:
            tree = CompactTree.from_bytes(frontier)
        except MerkleError as exc:
            raise MessageLogError(f"the saved Merkle frontier is unreadable: {exc}") from None
        expected = (last_id, size - 1) if last is not None else None
        if tree.size != size or (None if last is None else tuple(last)) != expected:
            conn.rollback()
            raise MessageLogError(
                f"the saved Merkle frontier (size {size}, last entry {last_id}) does not match"
                f" the log's last entry {None if last is None else tuple(last)}: the log was"
                " altered outside the node"
            )
        if size and not _has_subtrees(conn, size):
            _store_subtrees(conn, tree)  # under the frontier's lock: no writer appends
        stamped_size = stamped_last_id = 0
        last_stamp: datetime | None = None
        head = conn.execute(_LATEST_HEAD).fetchone()
        if head is not None:
            stamped_size, stamped_last_id = int(head[0]), int(head[1])
            last_stamp = parse_time(str(head[2]))
        oldest = self._first_logged_after(stamped_last_id)
        conn.commit()
        return TreeState(tree, last_id, stamped_size, stamped_last_id, last_stamp, oldest)

    def _first_logged_after(self, entry_id: int) -> datetime | None:
        row = self._conn.execute(_FIRST_AFTER, (entry_id,)).fetchone()
        return None if row is None else parse_time(str(row[0]))

    # -- the group commit ---------------------------------------------------------------

    def insert_batch(
        self,
        appends: Sequence[Append],
        *,
        tree: CompactTree,
        last_id: int,
        logged_at: str,
        stored_certs: set[str],
        stored_ocsp: set[str],
        body_policy: Callable[[LogRecord], str] | None,
        salts: Callable[[], bytes],
    ) -> BatchResult:
        """Write a batch of appends in one transaction, after every other writer's.

        ``tree`` and ``last_id`` are what this process saw last; the frontier locked in
        the database wins when another writer committed since. The result's ``tree`` is
        the tree after this batch.
        """
        conn = self._live()
        size, stored_last, frontier = _locked_frontier(conn)
        if size != tree.size or stored_last != last_id:
            tree = CompactTree.from_bytes(frontier)  # another writer appended meanwhile
            last_id = stored_last
        size_before = tree.size
        new_certs: set[str] = set()
        new_ocsp: set[str] = set()
        outcomes: list[Outcome] = []
        # Written once at the batch's end, in the order the entries produced them: one
        # round trip each instead of one per entry and per exchange.
        subtrees: list[tuple[int, int, bytes]] = []
        operational: list[OpRecord] = []
        for unit in appends:
            if unit.replay_key is not None:
                client, message_id, created = unit.replay_key
                if conn.execute(_INSERT_SEEN, (client, message_id, created)).rowcount == 0:
                    outcomes.append(
                        ReplayError(f"request {message_id!r} from {client!r} was already received")
                    )
                    continue
            if (stale := admin.settings_conflict(conn, unit.settings_base)) is not None:
                outcomes.append(stale)  # changed on an old version: another process won
                continue
            for ref, der, jws_header in unit.certs:
                if ref not in stored_certs and ref not in new_certs:
                    conn.execute(side.INSERT_CERT, (ref, der, jws_header))
                    new_certs.add(ref)
            for ref, der in unit.ocsp:
                if ref not in stored_ocsp and ref not in new_ocsp:
                    conn.execute(side.INSERT_OCSP, (ref, der))
                    new_ocsp.add(ref)
            ids: list[int] = []
            for r in unit.records:
                if unit.admin and not r.ocsp_ref:
                    r = dataclasses.replace(r, ocsp_ref=admin.kept_ocsp_ref(conn, r.cert_ref))
                policy = None if unit.admin else body_policy
                last_id, leaf = _insert_entry(
                    conn, r, tree.size, logged_at, policy, salts, self._sealer, unit.admin
                )
                # The subtrees this leaf completes, in the entry's transaction.
                subtrees += tree.append(leaf)
                ids.append(last_id)
            if unit.admin:  # [entry id, leaf index(, settings version)]
                ids.append(tree.size - 1)
                if unit.settings is not None:
                    ids.append(admin.insert_settings(conn, unit.settings, logged_at, ids[0]))
            operational += unit.operational
            outcomes.append(ids)
        if subtrees:
            with conn.cursor() as cur:
                cur.executemany(_INSERT_SUBTREE, leaves.subtree_rows(subtrees))
        if operational:
            side.insert_operational(conn, operational)
        if tree.size != size_before:
            conn.execute(_SAVE_TREE, (tree.size, last_id, tree.to_bytes()))
        conn.commit()
        return BatchResult(outcomes, new_certs, new_ocsp, last_id, tree)

    def insert_tree_head(
        self, head: TreeHeadRecord, *, stored_at: str, tree_size: int
    ) -> tuple[int, datetime | None]:
        """Store a timestamped tree head (and its signature) in one transaction, refusing
        one that does not extend the latest head any writer stored."""
        conn = self._live()
        size, _, _ = _locked_frontier(conn)
        latest = conn.execute(_LATEST_HEAD).fetchone()
        if latest is not None and int(latest[0]) >= head.tree_size:
            raise MessageLogError(
                f"a tree head of size {head.tree_size} does not extend the stored one of "
                f"size {latest[0]}"
            )
        cert_ref = hashlib.sha256(head.tsa_cert_der).hexdigest()
        conn.execute(
            "INSERT INTO tsa_certificate (cert_ref, der) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (cert_ref, head.tsa_cert_der),
        )
        row = conn.execute(
            "INSERT INTO tree_head (tree_size, root_hash, last_entry_id, document, gen_time,"
            " token, tsa_name, tsa_cert_ref, stored_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
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
        ).fetchone()
        assert row is not None
        if head.signed is not None:
            _store_signed_head(conn, head.tree_size, head.signed)
        oldest = (
            self._first_logged_after(head.last_entry_id)
            if max(size, tree_size) > head.tree_size
            else None
        )
        conn.commit()
        return int(row[0]), oldest


def _has_subtrees(conn: psycopg.Connection[tuple[Any, ...]], size: int) -> bool:
    """Whether the log's subtrees are stored (the last leaf's row stands for the rest, as
    in ``sqlite_writes.has_subtrees``)."""
    found = conn.execute(
        "SELECT 1 FROM merkle_subtree WHERE node = %s", (leaves.subtree_key(0, size - 1),)
    ).fetchone()
    return found is not None


def _store_subtrees(conn: psycopg.Connection[tuple[Any, ...]], tree: CompactTree) -> None:
    """Write every subtree of a log from before ``merkle_subtree`` existed, once, in the
    transaction that holds the frontier's lock, checked against the frontier."""
    _log.warning("message log: storing the Merkle subtrees of %d entries, once", tree.size)
    check = CompactTree()
    subtrees: list[tuple[int, int, bytes]] = []
    for index, leaf in conn.execute(
        "SELECT leaf_index, leaf_hash FROM message_log WHERE leaf_index IS NOT NULL ORDER BY id"
    ):
        if index != check.size or not isinstance(leaf, bytes):
            raise MessageLogError(f"leaf {check.size} is missing or out of order")
        subtrees.extend(check.append(leaf))
    if check != tree:
        raise MessageLogError("the stored leaves do not match the saved frontier")
    conn.execute("DELETE FROM merkle_subtree")
    with conn.cursor() as cur:
        cur.executemany(_INSERT_SUBTREE, leaves.subtree_rows(subtrees))


def _locked_frontier(conn: psycopg.Connection[tuple[Any, ...]]) -> tuple[int, int, bytes]:
    """Lock the frontier row for this transaction: the one order of all writers."""
    row = conn.execute(_LOCK_FRONTIER).fetchone()
    if row is None:
        raise MessageLogError("the log's frontier row is missing: run `gateway db upgrade`")
    return int(row[0]), int(row[1]), bytes(row[2])


def _store_signed_head(
    conn: psycopg.Connection[tuple[Any, ...]], size: int, signed: SignedHeadRecord
) -> None:
    conn.execute(side.INSERT_CERT, (signed.cert_ref, signed.cert_der, signed.jws_header))
    if signed.ocsp_ref:
        conn.execute(side.INSERT_OCSP, (signed.ocsp_ref, signed.ocsp_der))
    conn.execute(
        "INSERT INTO signed_tree_head (tree_size, document, signature, cert_ref, ocsp_ref)"
        " VALUES (%s, %s, %s, %s, %s)",
        (size, signed.document, signed.signature, signed.cert_ref, signed.ocsp_ref),
    )


def _insert_entry(
    conn: psycopg.Connection[tuple[Any, ...]],
    r: LogRecord,
    leaf_index: int,
    logged_at: str,
    body_policy: Callable[[LogRecord], str] | None,
    salts: Callable[[], bytes],
    sealer: Sealer,
    is_admin: bool,
) -> tuple[int, bytes]:
    """Insert one entry with its leaf and data subjects; return its id and leaf hash,
    which the caller appends to the tree at ``leaf_index`` (the leaf as
    ``sqlite_commit._insert_entry`` computes it, over the plaintext, before ``sealer``
    seals what the row stores)."""
    omitted = body_policy(r) if body_policy is not None else ""
    digest = r.body_sha256 or hashlib.sha256(r.body).hexdigest()
    salt = salts()
    subjects_sha256 = leaves.commitment(salt, r.subjects)
    leaf = leaves.new_leaf(r, logged_at, digest, subjects_sha256)
    header, body, sealed = sealer.seal_entry(r.header, b"" if omitted else r.body, admin=is_admin)
    row = conn.execute(
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
            body,
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
    ).fetchone()
    assert row is not None
    entry_id = int(row[0])
    if r.subjects:
        rows = sealer.subject_rows(r.subjects)
        with conn.cursor() as cur:
            cur.executemany(_INSERT_SUBJECT, [(entry_id, tag, value) for tag, value in rows])
        if r.read is None:
            side.record_read(conn, entry_id, sealer)
        else:
            side.store_read(conn, entry_id, sealer.seal_read(r.read) if sealed else r.read)
    return entry_id, leaf
