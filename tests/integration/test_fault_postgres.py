"""The fault harness on PostgreSQL: every node's log in a throwaway cluster the harness
starts itself (``--postgres``), under recorded load while the provider's signing keys
are rotated through the nodes' management API, the leader of ``ss1``'s node cluster
(two workers on its database) is killed with SIGKILL, the signing keys are revoked by the
CA and replaced, then the database server restarted (``pg_ctl restart -m fast``). Every check of
``gateway.sandbox.faults.checker`` must pass, which includes ``gateway audit export``
and ``verify`` of each node's whole log, entries signed with the old and the revoked
keys among them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from gateway.core.jws import cert_ref
from gateway.keys.files import load_certificate
from gateway.messagelog import Kind, Role, read_entries, read_tree_heads
from gateway.sandbox.faults.history import History
from gateway.sandbox.faults.leader import TAKEOVER_S, children
from gateway.sandbox.faults.run import (
    CLUSTER_WORKERS,
    CONSUMER,
    POSTGRES,
    PROVIDERS,
    FaultCost,
    Harness,
    RunReport,
)
from gateway.trust.ca_store import ISSUED_DIR_NAME
from gateway.trust.revocation import load_revocations

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REVOKED = "server.serverproxy.ocsp_unavailable"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Harness, RunReport, Path]]:
    root = tmp_path_factory.mktemp("faults-pg")
    harness = Harness(root / "net", postgres=True)
    try:
        harness.start()
        report = harness.run(POSTGRES, root / "out")
        yield harness, report, root / "out"
    finally:
        harness.close()


def _fault(report: RunReport, name: str) -> FaultCost:
    return next(f for f in report.faults if f.name == name)


def test_the_postgresql_lane_passes_every_check_with_the_logs_in_the_database(
    run: tuple[Harness, RunReport, Path],
) -> None:
    harness, report, _ = run
    assert report.findings.problems == []
    assert [f.name for f in report.faults] == [s.name for s in POSTGRES.faults]
    assert [f.error for f in report.faults] == [None] * len(POSTGRES.faults)
    assert report.skipped == []
    for key, files in harness.net.nodes.items():
        assert isinstance(files.log_location, str)
        assert files.log_location.startswith("postgresql://")
        assert report.findings.audited[key] > 0
    # The database came back by itself: exchanges succeeded after its restart.
    restart = _fault(report, "postgres-restart")
    assert restart.first_ok_after_heal_s is not None


def test_a_rotation_costs_nothing_and_a_revocation_is_refused_with_its_code(
    run: tuple[Harness, RunReport, Path],
) -> None:
    harness, report, out = run
    history = History.read(out / "history.jsonl").outcomes
    rotate, revoke = _fault(report, "rotate-signing-key"), _fault(report, "revoke-signing-cert")
    kill = _fault(report, "kill-leader")
    # Nothing was refused before the revocation began (the rotation cost nothing),
    # except an exchange the killed leader had in hand: kill -9 fails what it held.
    kill_end = kill.started + kill.hold + kill.recovery_s
    before = [o for o in history if o.ended < revoke.started]
    assert [o for o in before if not o.ok and not kill.started <= o.ended <= kill_end] == []
    assert any(o.ok and o.ended > rotate.started for o in before)
    # Once the nodes knew their certificates revoked, exchanges were refused with the
    # documented code, each with its request id, and none answered so before the
    # revocation or begun after the nodes were healed and ready.
    refused = [o for o in history if o.code == REVOKED]
    assert refused and all(o.request_id for o in refused)
    end = revoke.started + revoke.hold + revoke.recovery_s
    assert all(o.ended >= revoke.started and o.started <= end for o in refused)
    assert revoke.first_ok_after_heal_s is not None

    # Each provider node signed with three certificates in turn: the first, the
    # rotated one (revoked later) and the replacement; what it logged under each still
    # passed the audit above.
    ca_dir = harness.net.trust.ca_dir
    revoked = {
        cert_ref(load_certificate(ca_dir / ISSUED_DIR_NAME / f"{serial:x}.pem"))
        for serial in load_revocations(ca_dir)
    }
    assert len(revoked) == len(PROVIDERS)
    signed: set[str] = set()
    for key in PROVIDERS:
        files = harness.net.nodes[key]
        current = cert_ref(load_certificate(files.sign_cert))
        assert current not in revoked
        signed |= {
            e.cert_ref
            for e in read_entries(files.log_location)
            if e.role == Role.PROVIDER and e.kind == Kind.RESPONSE
        }
    assert signed & revoked, "no entry signed with a later revoked certificate was audited"
    assert report.findings.audited[CONSUMER] > 0


def test_the_leader_killed_under_load_is_taken_over_and_timestamping_resumes(
    run: tuple[Harness, RunReport, Path],
) -> None:
    harness, report, _ = run
    cluster = PROVIDERS[0]
    fault = _fault(report, "kill-leader")
    assert fault.error is None
    (kill,) = report.leader_kills
    assert kill.node == cluster
    # Another worker took the lock over, within the bound; the parent started a worker
    # in place of the dead one, which is gone.
    assert kill.new_leader_pid is not None and kill.new_leader_pid != kill.killed_pid
    assert kill.takeover_s is not None and kill.takeover_s <= TAKEOVER_S
    assert kill.workers_after == CLUSTER_WORKERS
    workers = children(harness.injectors().parent(cluster))
    assert kill.killed_pid not in workers and len(workers) == CLUSTER_WORKERS
    # The cluster went on logging and timestamping after the kill: the checks above
    # (no finding) held the first tree head after it to the bound; here, that entries
    # came after the kill and a tree head covers them.
    location = harness.net.nodes[cluster].log_location
    killed_at = datetime.fromisoformat(kill.killed_at)
    after = [e for e in read_entries(location) if datetime.fromisoformat(e.logged_at) > killed_at]
    assert after
    heads = read_tree_heads(location)
    assert datetime.fromisoformat(heads[-1].stored_at) > killed_at
    assert heads[-1].tree_size > max(e.leaf_index or 0 for e in after)
    assert fault.first_ok_after_heal_s is not None
