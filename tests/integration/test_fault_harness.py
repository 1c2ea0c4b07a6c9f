"""The fault harness's short lane: a loopback federation (Soest; Lippstadt on two
nodes, the second behind the harness's TCP proxy; a registry process that misbehaves on
request) under recorded load while one provider node is killed with SIGKILL and
restarted, the proxy drops the second node's connections, and the registry answers with
garbage and then not at all. Every check of ``gateway.sandbox.faults.checker`` must
pass; then the checks are shown to catch what they claim to, on the run's real logs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.messagelog import Role, StoredEntry, read_entries
from gateway.sandbox.faults.checker import Findings, check_history, check_leaves
from gateway.sandbox.faults.history import History, Outcome
from gateway.sandbox.faults.run import CONSUMER, PROVIDERS, SHORT, Harness, RunReport

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Harness, RunReport, Path]]:
    root = tmp_path_factory.mktemp("faults")
    harness = Harness(root / "net")
    try:
        harness.start()
        report = harness.run(SHORT, root / "out")
        yield harness, report, root / "out"
    finally:
        harness.close()


def test_short_lane_passes_every_check(run: tuple[Harness, RunReport, Path]) -> None:
    _, report, out = run
    assert report.findings.problems == []
    assert [f.name for f in report.faults] == [s.name for s in SHORT.faults]
    assert [f.error for f in report.faults] == [None] * len(SHORT.faults)
    assert report.findings.ok > 0
    # Every node's whole log was exported and verified, the proxied node's included:
    # the consumer reached it only through the proxy the directory names.
    assert set(report.findings.audited) == {CONSUMER, *PROVIDERS}
    assert all(n > 0 for n in report.findings.audited.values())
    # The registry faults did refuse exchanges, each with a documented code that the
    # provider's log explains.
    bad_registry = [f for f in report.faults if f.name.startswith("registry-")]
    assert sum(sum(f.refused.values()) for f in bad_registry) > 0
    assert report.findings.explained_by_provider > 0
    assert History.read(out / "history.jsonl").outcomes
    assert (out / "report.json").is_file()


def _logs(
    run: tuple[Harness, RunReport, Path],
) -> tuple[list[Outcome], dict[str, list[StoredEntry]]]:
    harness, _, out = run
    history = History.read(out / "history.jsonl").outcomes
    logs = {k: read_entries(f.log_location) for k, f in harness.net.nodes.items()}
    return history, logs


def test_the_checks_catch_a_lost_2xx_an_undocumented_code_and_a_missing_provider_entry(
    run: tuple[Harness, RunReport, Path],
) -> None:
    history, logs = _logs(run)
    providers = {k: logs[k] for k in PROVIDERS}
    clean = Findings()
    check_history(history, logs[CONSUMER], providers, [], clean)
    assert clean.problems == []

    lost_id = str(uuid.uuid4())
    lost = Outcome(10**6, 0, 10, 0.0, 0.1, 200, None, lost_id)
    made_up = Outcome(10**6 + 1, 0, 10, 0.0, 0.1, 500, "server.clientproxy.made_up", None)
    findings = Findings()
    check_history([*history, lost, made_up], logs[CONSUMER], providers, [], findings)
    assert any(lost_id in p and "not logged whole by consumer" in p for p in findings.problems)
    assert any("undocumented code 'server.clientproxy.made_up'" in p for p in findings.problems)

    answered = next(o for o in history if o.ok)
    holder = next(k for k in PROVIDERS if any(e.message_id == answered.request_id for e in logs[k]))
    without = {
        k: [e for e in v if k != holder or e.message_id != answered.request_id]
        for k, v in providers.items()
    }
    findings = Findings()
    check_history(history, logs[CONSUMER], without, [], findings)
    assert findings.problems == [
        f"request {answered.seq}: 2xx {answered.request_id} logged whole by 0 provider nodes"
    ]


def test_the_checks_catch_no_answer_outside_a_consumer_fault_and_a_leaf_gap(
    run: tuple[Harness, RunReport, Path],
) -> None:
    history, logs = _logs(run)
    silent = Outcome(10**6, 0, 10, 1.0, 2.0, None, None, None, "ReadTimeout")
    findings = Findings()
    check_history([*history, silent], logs[CONSUMER], {k: logs[k] for k in PROVIDERS}, [], findings)
    assert findings.problems == [
        f"request {silent.seq}: no answer outside a consumer fault (ReadTimeout)"
    ]

    entries = logs[CONSUMER]
    exchange = [e for e in entries if e.role == Role.CONSUMER]
    gap = [e for e in entries if e is not exchange[len(exchange) // 2]]
    findings = Findings()
    check_leaves(CONSUMER, gap, findings)
    assert len(findings.problems) == 1 and "leaf indexes not" in findings.problems[0]
    last = exchange[-1]
    twice = [*entries, replace(last, leaf_index=len(entries))]
    findings = Findings()
    check_leaves(CONSUMER, twice, findings)
    assert len(findings.problems) == 1
    assert "1 log entries twice" in findings.problems[0]
    assert last.message_id in findings.problems[0]
