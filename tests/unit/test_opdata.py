"""``getSecurityServerOperationalData`` over a real message log: who sees which records,
the bounds, and the limit of one answer."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.core.errors import Code, GatewayError
from gateway.core.ids import MemberId, NodeId, SubsystemId, parse_client
from gateway.messagelog import MessageLog, open_log
from gateway.node.monitoring import Monitoring, Side
from gateway.node.opdata import MAX_OPDATA_RECORDS, opdata_bounds, operational_data

START = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC)
NODE = NodeId.parse("DE-NRW/GOV/05974028/ss1")
GEWERBEAMT = "DE-NRW/GOV/05974040/gewerbeamt"
BUERGERBUERO = "DE-NRW/GOV/05962024/buergerbuero"
MELDEREGISTER = "DE-NRW/GOV/05974028/melderegister"
LOOKALIKE = "DE-NRW/GOV/05974040/gewerbeamt2"
"""A provider whose id starts with the Gewerbeamt's."""
WINDOW = "since=2026-03-02T00:00:00Z&until=2026-03-03T00:00:00Z"
EXCHANGES = [
    ("a", GEWERBEAMT, f"{MELDEREGISTER}/einfacheAuskunft"),
    ("b", BUERGERBUERO, f"{MELDEREGISTER}/einfacheAuskunft"),
    ("c", BUERGERBUERO, f"{LOOKALIKE}/auskunft"),
    ("d", MELDEREGISTER, "DE-NRW/GOV/05974040/gewerbeamt/betriebe"),
    ("e", BUERGERBUERO, ""),  # refused before the service was read
]


class SetClock:
    def __init__(self, now: datetime) -> None:
        self.moment = now

    def now(self) -> datetime:
        return self.moment


def _fill(log: MessageLog, exchanges: list[tuple[str, str, str]]) -> None:
    clock = SetClock(START)
    monitoring = Monitoring(str(NODE), clock, log, retention=timedelta(days=7))

    async def run() -> None:
        for i, (message_id, client, service) in enumerate(exchanges):
            clock.moment = START + timedelta(seconds=i)
            ex = monitoring.begin(Side.PROVIDER)
            ex.client, ex.service, ex.message_id = client, service, message_id
            monitoring.refused_with(ex, GatewayError(Code.SP_ACCESS_DENIED, "no"))
        await monitoring.flush()
        await monitoring.stop()

    asyncio.run(run())


@pytest.fixture
def log(tmp_path: Path) -> MessageLog:
    log = open_log(tmp_path / "log.sqlite", clock=lambda: START)
    log.start()
    _fill(log, EXCHANGES)
    return log


def ask(log: MessageLog, caller: str, query: str = WINDOW) -> dict[str, Any]:
    status, headers, body = asyncio.run(
        operational_data(log.store, NODE, parse_client(caller), query)
    )
    assert status == 200 and headers == [("content-type", "application/json")]
    answer: dict[str, Any] = json.loads(body)
    return answer


def seen(log: MessageLog, caller: str) -> list[str]:
    return [r["message_id"] for r in ask(log, caller)["records"]]


def test_a_client_sees_the_exchanges_it_called(log: MessageLog) -> None:
    assert seen(log, BUERGERBUERO) == ["b", "c", "e"]


def test_a_provider_sees_the_calls_of_its_services_not_a_lookalikes(log: MessageLog) -> None:
    assert seen(log, GEWERBEAMT) == ["a", "d"]
    assert seen(log, LOOKALIKE) == ["c"]
    assert seen(log, "DE-NRW/GOV/05974040/ordnungsamt") == []


def test_the_owner_member_and_its_subsystems_see_all(log: MessageLog) -> None:
    assert seen(log, MELDEREGISTER) == ["a", "b", "c", "d", "e"]
    assert seen(log, "DE-NRW/GOV/05974028") == ["a", "b", "c", "d", "e"]
    assert seen(log, "DE-NRW/GOV/05974028/standesamt") == ["a", "b", "c", "d", "e"]


def test_a_member_sees_its_own_calls_not_its_subsystems(log: MessageLog) -> None:
    assert seen(log, "DE-NRW/GOV/05974040") == []


def test_the_bounds_select_by_arrival(log: MessageLog) -> None:
    query = "since=2026-03-02T08:00:01Z&until=2026-03-02T08:00:03Z"
    assert [r["message_id"] for r in ask(log, MELDEREGISTER, query)["records"]] == ["b", "c"]


def test_an_answer_holds_at_most_the_limit_and_says_where_to_go_on(tmp_path: Path) -> None:
    log = open_log(tmp_path / "many.sqlite", clock=lambda: START)
    log.start()
    _fill(log, [(f"m{i}", GEWERBEAMT, "") for i in range(MAX_OPDATA_RECORDS + 2)])

    first = ask(log, GEWERBEAMT)
    assert len(first["records"]) == MAX_OPDATA_RECORDS
    nxt = first["next_records_from"]
    assert nxt == (START + timedelta(seconds=MAX_OPDATA_RECORDS)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    rest = ask(log, GEWERBEAMT, f"since={nxt}&until=2026-03-03T00:00:00Z")
    assert [r["message_id"] for r in rest["records"]] == [
        f"m{MAX_OPDATA_RECORDS}",
        f"m{MAX_OPDATA_RECORDS + 1}",
    ]
    assert rest["next_records_from"] is None


@pytest.mark.parametrize(
    "query",
    [
        "",
        "since=2026-03-02T00:00:00Z",
        "until=2026-03-02T00:00:00Z",
        "since=2026-03-02T00:00:00Z&since=2026-03-01T00:00:00Z&until=2026-03-03T00:00:00Z",
        "since=2026-03-03T00:00:00Z&until=2026-03-02T00:00:00Z",
        "since=2026-03-02T00:00:00Z&until=2026-03-02T00:00:00Z",
        "since=2026-03-02&until=2026-03-03T00:00:00Z",
        "since=heute&until=morgen",
        "since=2026-03-02T00:00:00Z&&until=2026-03-03T00:00:00Z",
    ],
)
def test_bad_bounds_are_refused_with_their_code(query: str) -> None:
    with pytest.raises(GatewayError) as caught:
        opdata_bounds(query)
    assert caught.value.code is Code.SP_INVALID_OPERATIONAL_QUERY


def test_bounds_are_normalised_to_the_logs_form() -> None:
    assert opdata_bounds("since=2026-03-02T10:00:00%2B02:00&until=2026-03-02T09:00:00.5Z") == (
        "2026-03-02T08:00:00.000Z",
        "2026-03-02T09:00:00.500Z",
    )


def test_identifiers_in_the_fixture_are_what_they_claim() -> None:
    assert isinstance(parse_client(MELDEREGISTER), SubsystemId)
    assert isinstance(parse_client("DE-NRW/GOV/05974028"), MemberId)
    assert NODE.owner == MemberId.parse("DE-NRW/GOV/05974028")
