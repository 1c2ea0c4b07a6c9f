"""The restart policy of ``gateway demo --serve``'s supervisor, and how it reports a death."""

from __future__ import annotations

import signal
from pathlib import Path

from gateway.sandbox.supervisor import Backoff, describe_exit, log_tail


def test_backoff_doubles_for_quick_deaths_up_to_the_maximum() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, stable_after=60.0)
    delays: list[float] = []
    previous: float | None = None
    for _ in range(6):
        previous = backoff.delay(previous, ran_for=0.5)
        delays.append(previous)
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_backoff_starts_over_after_a_long_run() -> None:
    backoff = Backoff(initial=1.0, maximum=30.0, stable_after=60.0)
    assert backoff.delay(16.0, ran_for=59.9) == 30.0
    assert backoff.delay(16.0, ran_for=60.0) == 1.0


def test_exit_is_described_by_code_or_signal() -> None:
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(0) == "exited with code 0"
    assert describe_exit(-signal.SIGKILL) == "killed by signal SIGKILL (9)"
    assert describe_exit(-signal.SIGTERM) == "killed by signal SIGTERM (15)"


def test_log_tail_reads_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    log.write_text("".join(f"line {i}\n" for i in range(5000)))
    assert log_tail(log, 3) == ["line 4997", "line 4998", "line 4999"]
    assert log_tail(tmp_path / "missing.log")[0].startswith("(log unreadable:")
