"""The clock faults of the harness: Soest's node (the consumer's) runs under libfaketime
and its wall clock jumps 2 min forward, then 2 min back, under recorded load. The harness's
message window is 60 s, so while it is off the node's exchanges are outside the window:
they must be refused with protocol.md 5.4's codes, nothing answered 2xx without being
logged whole, and every node's log (tree heads, TSA tokens) must still verify.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.sandbox.faults.history import History
from gateway.sandbox.faults.run import CLOCK, CONSUMER, PROVIDERS, Harness, RunReport

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

WINDOW_CODES = {
    "server.serverproxy.message_expired",
    "server.clientproxy.inconsistent_response",
    "server.clientproxy.cert_validation",
    "server.clientproxy.clock_skew",
}
"""A message outside the window; or, in flight at the jump, the provider's certificate
and OCSP evidence checked at the jumped time; or, once a time stamp has shown the jump,
the node's own refusal of its skewed clock."""
BEHIND_CODES = {*WINDOW_CODES, "server.clientproxy.ocsp_unavailable"}
"""A clock behind also sees its own OCSP evidence as issued in the future: unusable."""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Harness, RunReport, Path]]:
    root = tmp_path_factory.mktemp("faults-clock")
    harness = Harness(root / "net")
    try:
        assert harness.clock is not None, "libfaketime is missing: make system-packages"
        harness.start()
        report = harness.run(CLOCK, root / "out")
        yield harness, report, root / "out"
    finally:
        harness.close()


def test_a_jumped_clock_is_refused_with_the_window_codes_and_every_check_passes(
    run: tuple[Harness, RunReport, Path],
) -> None:
    _, report, out = run
    # The one finding the clock allows, open in docs/reliability.md ("What the harness
    # found"): an exchange the consumer's node checked just before its clock jumped ahead
    # is logged with the jumped time, after the TSA's genTime of the head covering it.
    ahead = f"{CONSUMER}: audit verify failed: "
    others = [p for p in report.findings.problems if not p.startswith(ahead)]
    assert others == []
    for problem in report.findings.problems:
        assert "logged_after_head" in problem, problem
    assert [f.name for f in report.faults] == ["clock-forward", "clock-back"]
    assert [f.error for f in report.faults] == [None, None]
    assert report.skipped == []
    forward, back = report.faults
    # Each jump refused exchanges, only with the documented codes of a message (or OCSP
    # evidence) outside the window, and the node answered again once its clock was true.
    assert forward.refused.get("server.serverproxy.message_expired", 0) > 0, forward
    assert set(forward.refused) <= WINDOW_CODES, forward
    assert sum(back.refused.values()) > 0, back
    assert set(back.refused) <= BEHIND_CODES, back
    assert forward.first_ok_after_heal_s is not None
    assert back.first_ok_after_heal_s is not None
    assert report.findings.ok > 0
    refused_audit = {CONSUMER} if report.findings.problems else set()
    assert set(report.findings.audited) | refused_audit == {CONSUMER, *PROVIDERS}
    assert all(n > 0 for n in report.findings.audited.values())
    assert History.read(out / "history.jsonl").outcomes
