"""The provider's in-memory replay guard."""

from __future__ import annotations

import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta

from gateway.node.replay import SLICES, ReplayGuard

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=300)


def test_second_claim_of_the_same_id_is_a_replay() -> None:
    guard = ReplayGuard(WINDOW)
    assert guard.claim("client-a", "id-1", T0, T0)
    assert not guard.claim("client-a", "id-1", T0, T0 + timedelta(seconds=1))


def test_same_id_from_another_client_is_not_a_replay() -> None:
    guard = ReplayGuard(WINDOW)
    assert guard.claim("client-a", "id-1", T0, T0)
    assert guard.claim("client-b", "id-1", T0, T0)


def test_preloaded_ids_are_replays() -> None:
    guard = ReplayGuard(WINDOW)
    guard.preload([("client-a", "id-1", T0)])
    assert not guard.claim("client-a", "id-1", T0, T0 + timedelta(seconds=10))


def test_ids_are_forgotten_only_after_their_window() -> None:
    guard = ReplayGuard(WINDOW)
    assert guard.claim("client-a", "old", T0, T0)
    # Still inside the window: remembered, even after a purge has run.
    later = T0 + WINDOW - timedelta(seconds=1)
    assert guard.claim("client-a", "other", later, later)
    assert not guard.claim("client-a", "old", T0, later)
    # Past the window the id is purged; the provider's time check refuses such a
    # message anyway, so memory stays bounded by the traffic of one window.
    much_later = T0 + 3 * WINDOW
    assert guard.claim("client-a", "fresh", much_later, much_later)
    assert len(guard) == 1


def test_ids_within_the_window_are_replays_whatever_their_slice() -> None:
    # Ids created at different times land in different buckets; a replay is found in
    # any of them, whatever creation time the replay itself claims.
    guard = ReplayGuard(WINDOW)
    for second in range(0, 300, 7):
        at = T0 + timedelta(seconds=second)
        assert guard.claim("client-a", f"id-{second}", at, at)
    now = T0 + timedelta(seconds=299)
    for second in range(0, 300, 7):
        assert not guard.claim("client-a", f"id-{second}", now, now)
    assert guard.claim("client-ab", "id-0", now, now)  # not ("client-a", "bid-0")


def test_memory_is_bounded_by_one_window_of_traffic_in_compact_keys() -> None:
    """At a steady rate over four windows the guard holds at most a window and a slice of
    ids, in a handful of buckets, at well under the ~310 bytes an id took as a tuple of
    its two strings and a datetime in a dict (docs/performance.md, node RSS)."""
    rate = 100  # ids per second, each with strings of its own as a request brings them
    window = timedelta(seconds=60)
    guard = ReplayGuard(window)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        seconds = int(4 * window.total_seconds())
        for i in range(seconds * rate):
            at = T0 + timedelta(seconds=i / rate)
            client = "".join(["DE-NRW/GOV/05974040/", "gewerbeamt"])
            assert guard.claim(client, str(uuid.UUID(int=i)), at, at)
            if i % (rate * 10) == 0:
                assert len(guard) <= rate * window.total_seconds() * (1 + 1 / SLICES) + rate
                assert guard.buckets <= SLICES + 2
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(guard) >= rate * window.total_seconds()
    assert held / len(guard) < 160
