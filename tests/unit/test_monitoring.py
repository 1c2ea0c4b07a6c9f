"""Operational records and counters of one node, over a real message log file.

Time is injected (a clock the test sets), so the retention period is tested without
waiting a week.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.core.errors import Code, GatewayError
from gateway.messagelog import Kind, LogRecord, OpRecord, ReplayError, Role, open_log
from gateway.node.config import NodeSection
from gateway.node.monitoring import MAX_LABEL_PAIRS, OTHER, Monitoring, Side, query_bound

START = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC)
CLIENT = "DE-NRW/GOV/05974040/gewerbeamt"
SERVICE = "DE-NRW/GOV/05974028/melderegister/einfacheAuskunft"


class SetClock:
    def __init__(self, now: datetime) -> None:
        self.moment = now

    def now(self) -> datetime:
        return self.moment


def _record(message_id: str) -> LogRecord:
    return LogRecord(
        role=Role.CONSUMER,
        kind=Kind.REQUEST,
        message_id=message_id,
        xroad_id="DE-NRW-1",
        client=CLIENT,
        service=SERVICE,
        created="2026-03-02T08:00:00.000Z",
        header=b"{}",
        body=b"",
        signature="sig",
        cert_ref="c",
        ocsp_ref="o",
    )


def _refuse(monitoring: Monitoring, clock: SetClock, when: datetime, message_id: str) -> None:
    clock.moment = when
    ex = monitoring.begin(Side.CONSUMER)
    ex.client, ex.service, ex.message_id = CLIENT, SERVICE, message_id
    monitoring.refused_with(ex, GatewayError(Code.UNKNOWN_CLIENT, "no"))


def test_records_past_the_retention_period_are_pruned(tmp_path: Path) -> None:
    async def run() -> tuple[int, list[OpRecord]]:
        clock = SetClock(START)
        log = open_log(tmp_path / "log.sqlite", clock=clock.now)
        log.start()
        monitoring = Monitoring("DE-NRW/GOV/05974040/ss1", clock, log, retention=timedelta(days=7))
        try:
            _refuse(monitoring, clock, START, "old")
            _refuse(monitoring, clock, START + timedelta(days=2), "kept")
            assert await monitoring.flush() == 2
            # A success: its record commits with its entries.
            ex = monitoring.begin(Side.CONSUMER)
            ex.client, ex.service, ex.message_id = CLIENT, SERVICE, "ok"
            record = monitoring.record(ex, status=200, response_size=12)
            await log.append([_record("ok")], operational=[record])
            # Eight days after the first: one record is older than the week kept.
            removed = await monitoring.prune(START + timedelta(days=8))
        finally:
            await monitoring.stop()
            await log.close()
        return removed, log.store.operational_records()

    removed, left = asyncio.run(run())
    assert removed == 1
    assert [(r.message_id, r.succeeded, r.error_code) for r in left] == [
        ("kept", False, Code.UNKNOWN_CLIENT.value),
        ("ok", True, ""),
    ]
    assert left[1].request_in == "2026-03-04T08:00:00.000Z"  # the clock's, not the wall's
    assert left[1].response_size == 12 and left[1].status == 200


def test_a_failed_append_leaves_no_record(tmp_path: Path) -> None:
    """The record of a success exists exactly when its entries do: a replay refused by
    the writer commits neither."""

    async def run() -> list[OpRecord]:
        clock = SetClock(START)
        log = open_log(tmp_path / "log.sqlite", clock=clock.now)
        log.start()
        monitoring = Monitoring("n", clock, log, retention=timedelta(days=7))
        key = (CLIENT, "m", "2026-03-02T08:00:00.000Z")
        try:
            ex = monitoring.begin(Side.PROVIDER)
            ex.message_id = "m"
            await log.append(
                [_record("m")],
                replay_key=key,
                operational=[monitoring.record(ex, status=200, response_size=1)],
            )
            with pytest.raises(ReplayError):
                await log.append(
                    [_record("m")],
                    replay_key=key,
                    operational=[monitoring.record(ex, status=200, response_size=1)],
                )
        finally:
            await log.close()
        return log.store.operational_records()

    assert [r.message_id for r in asyncio.run(run())] == ["m"]


def test_label_pairs_are_capped(tmp_path: Path) -> None:
    """A caller names any service it likes in a refused request: past the cap, new
    pairs are counted under ``other`` instead of as new series."""
    clock = SetClock(START)
    log = open_log(tmp_path / "log.sqlite", clock=clock.now)
    monitoring = Monitoring("n", clock, log, retention=timedelta(days=7))
    for i in range(MAX_LABEL_PAIRS + 5):
        ex = monitoring.begin(Side.CONSUMER)
        ex.client, ex.service = CLIENT, f"{SERVICE}{i}"
        monitoring.succeeded(ex)
    other = monitoring.registry.get_sample_value(
        "gateway_exchanges_total",
        {"side": "consumer", "client": OTHER, "service": OTHER, "code": "ok"},
    )
    assert other == 5
    # A peer's relayed refusal names its own code: only the documented ones are labels.
    ex = monitoring.begin(Side.CONSUMER)
    monitoring.refused(ex, "server.serverproxy.made_up_1", 500)
    made_up = monitoring.registry.get_sample_value(
        "gateway_exchanges_total",
        {"side": "consumer", "client": OTHER, "service": OTHER, "code": OTHER},
    )
    assert made_up == 1


def test_each_exchange_counts_under_its_own_side_and_code(tmp_path: Path) -> None:
    """The counter and histogram children are kept between exchanges: each exchange
    still lands in its side's and outcome's series, every time."""
    clock = SetClock(START)
    log = open_log(tmp_path / "log.sqlite", clock=clock.now)
    monitoring = Monitoring("n", clock, log, retention=timedelta(days=7))
    outcomes: list[tuple[Side, Code | None]] = [(Side.CONSUMER, None)] * 3
    outcomes += [(Side.PROVIDER, None)] * 2
    outcomes += [(Side.PROVIDER, Code.SP_REPLAY_DETECTED)] * 4
    for side, code in outcomes:
        ex = monitoring.begin(side)
        ex.client, ex.service = CLIENT, SERVICE
        if code is None:
            monitoring.succeeded(ex)
        else:
            monitoring.refused_with(ex, GatewayError(code, "seen"))
    with monitoring.timing_commit():
        pass

    def count(side: str, code: str) -> float | None:
        labels = {"side": side, "client": CLIENT, "service": SERVICE, "code": code}
        return monitoring.registry.get_sample_value("gateway_exchanges_total", labels)

    assert count("consumer", "ok") == 3
    assert count("provider", "ok") == 2
    assert count("provider", Code.SP_REPLAY_DETECTED.value) == 4
    assert count("consumer", Code.SP_REPLAY_DETECTED.value) is None
    durations = {
        side: monitoring.registry.get_sample_value(
            "gateway_exchange_duration_seconds_count", {"side": side}
        )
        for side in ("consumer", "provider")
    }
    assert durations == {"consumer": 3, "provider": 6}
    assert monitoring.registry.get_sample_value("gateway_log_commit_duration_seconds_count") == 1


def test_query_bounds() -> None:
    assert query_bound("since", "2026-03-02T10:00:00+02:00") == "2026-03-02T08:00:00.000Z"
    for bad in ("yesterday", "2026-03-02T10:00:00"):
        with pytest.raises(ValueError, match="since must be an RFC 3339 time with a zone"):
            query_bound("since", bad)


def test_the_admin_listener_setting() -> None:
    base = {"id": "DE-NRW/GOV/05974040/ss1", "messagelog": "l", "auth_cert": "c", "auth_key": "k"}
    assert NodeSection.model_validate(base).metrics_listen == "127.0.0.1:9090"
    assert NodeSection.model_validate({**base, "metrics_listen": ""}).metrics_listen == ""
    with pytest.raises(ValueError, match="HOST:PORT"):
        NodeSection.model_validate({**base, "metrics_listen": "9090"})
    with pytest.raises(ValueError):
        NodeSection.model_validate({**base, "opdata_retention_days": 0})
