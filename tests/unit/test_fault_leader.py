"""The fault harness's check of a cluster leader's kill: timestamping resumed within the
take-over bound, measured from the kill or, when nothing waited then, from the first
entry logged after it; and the finding of a cluster's workers."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from gateway.messagelog import Kind, Role, StoredEntry, StoredTreeHead
from gateway.sandbox.faults.checker import Findings
from gateway.sandbox.faults.leader import TAKEOVER_S, LeaderKill, check_takeover, children

KILLED = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (KILLED + timedelta(seconds=seconds)).isoformat()


def entry(leaf: int, logged: float) -> StoredEntry:
    return StoredEntry(
        id=leaf + 1,
        logged_at=at(logged),
        role=Role.PROVIDER,
        kind=Kind.REQUEST,
        message_id=f"m{leaf}",
        xroad_id=f"x{leaf}",
        client="c",
        service="s",
        created=at(logged),
        header=b"{}",
        body=b"",
        signature="sig",
        cert_ref="cert",
        leaf_index=leaf,
    )


def head(size: int, stored: float) -> StoredTreeHead:
    return StoredTreeHead(
        id=size,
        tree_size=size,
        root_hash=b"r",
        last_entry_id=size,
        document=b"d",
        gen_time=at(stored),
        token=b"t",
        tsa_name="tsa",
        tsa_cert_ref="ref",
        stored_at=at(stored),
    )


KILL = LeaderKill("ss1", 4242, KILLED.isoformat(), 4343, 1.2, 2)
BEFORE = [entry(i, -5 + i) for i in range(5)]
"""Five entries before the kill, the first three under a tree head then."""


def check(entries: list[StoredEntry], heads: list[StoredTreeHead]) -> list[str]:
    findings = Findings()
    check_takeover(KILL, entries, heads, findings)
    return findings.problems


def test_a_tree_head_within_the_bound_after_the_kill_passes() -> None:
    heads = [head(3, -1), head(6, TAKEOVER_S - 1)]
    assert check([*BEFORE, entry(5, 1)], heads) == []


def test_a_tree_head_later_than_the_bound_after_the_kill_is_a_finding() -> None:
    heads = [head(3, -1), head(6, TAKEOVER_S + 5)]
    (problem,) = check([*BEFORE, entry(5, 1)], heads)
    assert "ss1" in problem and "4242" in problem and "take-over bound" in problem


def test_no_tree_head_after_the_kill_is_a_finding() -> None:
    (problem,) = check([*BEFORE, entry(5, 1)], [head(3, -1)])
    assert "no tree head after the leader 4242" in problem


def test_when_nothing_waited_the_bound_runs_from_the_next_entry() -> None:
    # Everything was stamped at the kill; the next entry came 30 s later and was
    # stamped 2 s after it: the new leader was there, it had nothing to stamp before.
    stamped = [head(5, -0.5)]
    assert check([*BEFORE, entry(5, 30)], [*stamped, head(6, 32)]) == []
    (problem,) = check([*BEFORE, entry(5, 30)], [*stamped, head(6, 30 + TAKEOVER_S + 1)])
    assert "take-over bound" in problem


def test_no_entry_after_the_kill_shows_nothing_and_is_a_finding() -> None:
    (problem,) = check(BEFORE, [head(5, -0.5)])
    assert "no entry logged after the leader 4242" in problem


def test_children_are_the_live_processes_a_parent_started() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in children(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert child.pid not in children(os.getpid())
