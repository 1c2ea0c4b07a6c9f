"""Maintenance mode's admission and drain: refuse new exchanges, count and wait for the
ones in flight. The exchanges here are coroutines held on events, on one event loop, as
the node's handlers are."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from gateway.core.errors import ERROR_TABLE, Code, GatewayError
from gateway.node.maintenance import Maintenance

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def test_a_new_node_admits_and_leaving_clears_the_state() -> None:
    state = Maintenance()
    assert (state.enabled, state.since, state.reason, state.in_flight) == (False, None, "", 0)
    state.enter("Aktualisierung auf 2.4", NOW)
    assert (state.enabled, state.since, state.reason) == (True, NOW, "Aktualisierung auf 2.4")
    later = NOW.replace(hour=10)
    state.enter("Aktualisierung auf 2.5", later)  # the reason changes, the start does not
    assert (state.since, state.reason) == (NOW, "Aktualisierung auf 2.5")
    state.leave()
    assert (state.enabled, state.since, state.reason) == (False, None, "")


@pytest.mark.parametrize("code", [Code.CP_MAINTENANCE_MODE, Code.SP_MAINTENANCE_MODE])
def test_admission_is_refused_with_the_sides_code_while_enabled(code: Code) -> None:
    state = Maintenance()
    state.enter("Umzug ins neue Rechenzentrum", NOW)
    with pytest.raises(GatewayError) as caught, state.admit(code):
        pytest.fail("a new exchange ran in maintenance mode")
    assert caught.value.code is code
    assert code.value.endswith(".maintenance_mode") and ERROR_TABLE[code].status == 500
    assert "since 2026-03-02T09:30:00+00:00" in caught.value.message
    assert "Umzug ins neue Rechenzentrum" in caught.value.message
    assert state.in_flight == 0
    state.leave()
    with state.admit(code):
        assert state.in_flight == 1
    assert state.in_flight == 0


def test_an_exchange_that_fails_leaves_the_count() -> None:
    state = Maintenance()
    with pytest.raises(RuntimeError), state.admit(Code.SP_MAINTENANCE_MODE):
        assert state.in_flight == 1
        raise RuntimeError("registry gone")
    assert state.in_flight == 0


def test_exchanges_in_flight_finish_and_drained_waits_for_the_last() -> None:
    async def scenario() -> None:
        state = Maintenance()
        gates = [asyncio.Event(), asyncio.Event()]
        finished: list[int] = []

        async def exchange(i: int) -> None:
            with state.admit(Code.SP_MAINTENANCE_MODE):
                await gates[i].wait()
                finished.append(i)

        tasks = [asyncio.create_task(exchange(i)) for i in range(2)]
        await asyncio.sleep(0)  # both are admitted before maintenance begins
        assert state.in_flight == 2
        state.enter("Wartung", NOW)
        with pytest.raises(GatewayError), state.admit(Code.SP_MAINTENANCE_MODE):
            pytest.fail("admitted in maintenance mode")
        assert not await state.drained(0.05)  # both still wait on their gates
        waiting = asyncio.create_task(state.drained(30))
        gates[0].set()
        await asyncio.sleep(0)
        assert state.in_flight == 1 and not waiting.done()
        gates[1].set()
        assert await waiting
        await asyncio.gather(*tasks)  # neither was cut: both ran to their end
        assert sorted(finished) == [0, 1] and state.in_flight == 0
        assert await state.drained(0)  # nothing in flight: true at once

    asyncio.run(scenario())
