"""The cluster leader as a fault: kill -9 the process holding the leader lock, and the
check that another process took the timestamping over in time.

With ``--postgres`` the harness runs one provider node as a node cluster (``gateway
node serve --workers 2`` on one database, ADR 0042). ``kill_leader`` finds the process
holding the lock the way an operator does (``cluster_leader_pid``: the lock's
connection names its process), kills it with SIGKILL under load, waits for another
process to hold the lock and for the parent to have started a worker in place of the
dead one. What it saw is a :class:`LeaderKill`; ``check_takeover`` then holds the
node's log against it: the first tree head stored after the kill covers the entries
that waited at the kill (or logged after it), and was stored within ``TAKEOVER_S``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from gateway.messagelog import StoredEntry, StoredTreeHead
from gateway.messagelog.leader import cluster_leader_pid
from gateway.sandbox.faults.checker import Findings

LEADER_POLL_S = 1.0
"""``leader_poll_seconds`` of the harness's nodes: a dead leader's lock is free as soon
as PostgreSQL sees its connection end, and another process tries for it this often."""
TAKEOVER_S = 10 * LEADER_POLL_S + 5
"""The bound the check holds a takeover to, from the kill to the first tree head
stored after it: a poll interval and a timestamping interval, with room for a loaded
2-core machine (the new leader first takes up what the cluster committed)."""


@dataclass(frozen=True)
class LeaderKill:
    """One kill of a cluster's leader, as the fault saw it."""

    node: str
    """The node's key in the federation."""
    killed_pid: int
    killed_at: str
    """RFC 3339, the wall clock just after the SIGKILL."""
    new_leader_pid: int | None
    """The process holding the lock afterwards (None: nobody took it in time)."""
    takeover_s: float | None
    """From the kill to another process holding the lock."""
    workers_after: int
    """The parent's live workers once the fault ended: the dead one started again."""


def children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (from /proc): a cluster's workers."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.add(int(entry.name))
    return found


T = TypeVar("T")


def _until(probe: Callable[[], T | None], timeout: float) -> T | None:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def kill_leader(
    node: str, database_url: str, node_id: str, parent: int, workers: int, timeout: float
) -> LeaderKill:
    """SIGKILL the leader of the cluster under ``parent``; wait (up to ``timeout``) for a
    new leader and for ``workers`` live workers again. Raises when the leader is not one
    of the parent's workers, or when nobody leads or the parent does not restart the
    worker within ``timeout``."""
    old = _until(lambda: cluster_leader_pid(database_url, node_id), timeout)
    if old is None:
        raise RuntimeError(f"{node}: no process holds the leader lock")
    if old not in children(parent):
        raise RuntimeError(f"{node}: leader {old} is not a worker of {parent}")
    os.kill(old, signal.SIGKILL)
    killed = time.monotonic()
    killed_at = datetime.now(UTC)

    def other() -> int | None:
        pid = cluster_leader_pid(database_url, node_id)
        return pid if pid not in (None, old) else None

    new = _until(other, timeout)
    takeover = round(time.monotonic() - killed, 2) if new is not None else None
    _until(lambda: True if len(children(parent)) >= workers else None, timeout)
    kill = LeaderKill(node, old, killed_at.isoformat(), new, takeover, len(children(parent)))
    if new is None:
        raise RuntimeError(f"{node}: no process took the leader lock {timeout} s after the kill")
    if kill.workers_after < workers:
        raise RuntimeError(f"{node}: {kill.workers_after} of {workers} workers after the kill")
    return kill


def check_takeover(
    kill: LeaderKill,
    entries: Sequence[StoredEntry],
    heads: Sequence[StoredTreeHead],
    findings: Findings,
    bound: float = TAKEOVER_S,
) -> None:
    """Timestamping resumed after ``kill`` within ``bound``: the entries that waited for a
    tree head at the kill (or, if none did, the first logged after it) are under a tree
    head stored no later than ``bound`` after the kill (or that entry)."""
    killed_at = datetime.fromisoformat(kill.killed_at)
    covered = max(
        (h.tree_size for h in heads if datetime.fromisoformat(h.stored_at) <= killed_at),
        default=0,
    )
    waiting = sorted(
        datetime.fromisoformat(e.logged_at)
        for e in entries
        if e.leaf_index is not None and e.leaf_index >= covered
    )
    if not waiting:
        findings.problems.append(
            f"{kill.node}: no entry logged after the leader {kill.killed_pid} was killed: "
            "timestamping's resumption not shown"
        )
        return
    since = max(killed_at, waiting[0])
    after = [h for h in heads if h.tree_size > covered]
    if not after:
        findings.problems.append(
            f"{kill.node}: no tree head after the leader {kill.killed_pid} was killed"
        )
        return
    stored = datetime.fromisoformat(min(after, key=lambda h: h.tree_size).stored_at)
    if stored > since + timedelta(seconds=bound):
        late = (stored - since).total_seconds()
        findings.problems.append(
            f"{kill.node}: first tree head after the leader {kill.killed_pid} was killed "
            f"stored {late:.1f} s later, over the {bound:.0f} s take-over bound"
        )
