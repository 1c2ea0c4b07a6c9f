"""The provider's in-memory replay guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.node.replay import ReplayGuard

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
