"""The cluster leader's lock in PostgreSQL: a session advisory lock on its own connection.

The processes of a node cluster share one database; one of them runs the timestamper
and the witness (docs/adr/0042). Holding the lock is holding the connection: when the
leader process dies, the server ends its session and releases the lock, and the next
process that tries takes it over. The connection has TCP keepalives as short as the
poll interval, so a leader on a host that vanished without closing its socket is
noticed within a few intervals too.

The connection's ``application_name`` names the node and the process id, so an
operator (and :func:`leader_pid`) can see which process leads.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import Any

import psycopg

from gateway.messagelog.postgres_schema import redacted
from gateway.messagelog.records import LogStoreError

__all__ = ["PostgresLeaderLock", "leader_pid"]

_PREFIX = "gateway-leader"
_CONNECT_TIMEOUT_S = 5


def _lock_key(node_id: str) -> int:
    """The advisory lock's 64-bit key: one per node id, so a database shared by two
    node ids (never advised, but possible) still has one leader each."""
    digest = hashlib.sha256(f"{_PREFIX}:{node_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _application_name(node_id: str, pid: int) -> str:
    # PostgreSQL keeps 63 bytes of it; the pid comes first so it is never cut off.
    return f"{_PREFIX}:{pid}:{node_id}"[:63]


class PostgresLeaderLock:
    """The lock of one process. Every method blocks (call it from a thread) and never
    raises on a lost server: it reports not holding the lock instead."""

    def __init__(self, url: str, node_id: str, *, keepalive_seconds: float) -> None:
        self._url = url
        self._node_id = node_id
        self._key = _lock_key(node_id)
        self._keepalive = max(1, round(keepalive_seconds))
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._held = False

    @property
    def location(self) -> str:
        return redacted(self._url)

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(
            self._url,
            autocommit=True,
            connect_timeout=_CONNECT_TIMEOUT_S,
            application_name=_application_name(self._node_id, os.getpid()),
            keepalives=1,
            keepalives_idle=self._keepalive,
            keepalives_interval=self._keepalive,
            keepalives_count=3,
        )

    def poll(self) -> bool:
        """Whether this process holds the lock now: checks a held lock's connection,
        or tries to take the lock. A broken connection loses the lock at once (the
        server drops a dead session's locks), so no stale leader keeps stamping."""
        try:
            if self._conn is None or self._conn.closed:
                self._held = False
                self._conn = self._connect()
            if self._held:
                self._conn.execute("SELECT 1")
                return True
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
            self._held = bool(row is not None and row[0])
        except psycopg.Error:
            self._drop()
        return self._held

    def _drop(self) -> None:
        self._held = False
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def release(self) -> None:
        """Give the lock up (closing the session releases it), e.g. at a clean stop, so
        another process takes over at its next poll."""
        self._drop()


def leader_pid(url: str, node_id: str) -> int | None:
    """The process id of the process that holds ``node_id``'s leader lock in ``url``'s
    database, or None while nobody does (as the leader's connection names it)."""
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        raise LogStoreError(f"cannot connect to {redacted(url)}: {exc}") from None
    key = _lock_key(node_id)
    with conn:
        row = conn.execute(
            "SELECT a.application_name FROM pg_locks l"
            " JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid AND l.objsubid = 1",
            ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF),
        ).fetchone()
    if row is None:
        return None
    parts = str(row[0]).split(":")
    return int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else None
