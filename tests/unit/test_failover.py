"""The order in which the consumer side tries a provider's nodes, and their backoff.

Time is a number the test sets (``PeerHealth`` takes monotonic seconds), so the backoff
is exercised without waiting.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.conf.directory import NodeInfo
from gateway.core.ids import NodeId
from gateway.node.config import NodeSection
from gateway.node.failover import PeerBackoff, PeerHealth

A, B, C = (
    NodeInfo(NodeId("DE-NRW", "GOV", "05974028", code), f"https://{code}", frozenset(), frozenset())
    for code in ("ss1", "ss2", "ss3")
)


def ids(nodes: list[NodeInfo]) -> list[str]:
    return [node.id.server_code for node in nodes]


def health(initial: float = 5, maximum: float = 60) -> PeerHealth:
    return PeerHealth(PeerBackoff(initial, maximum))


def test_unknown_nodes_keep_the_directory_order() -> None:
    peers = health()
    assert ids(peers.order([A, B, C], 0)) == ["ss1", "ss2", "ss3"]
    assert ids(peers.order([C, A, B], 0)) == ["ss3", "ss1", "ss2"]


def test_the_faster_node_first_and_an_unmeasured_one_before_measured_ones() -> None:
    peers = health()
    peers.connected(A.id, 0.200)
    assert ids(peers.order([A, B], 0)) == ["ss2", "ss1"]  # B gets measured
    peers.connected(B.id, 0.050)
    assert ids(peers.order([A, B], 0)) == ["ss2", "ss1"]
    peers.connected(C.id, 0.200)
    assert ids(peers.order([C, A, B], 0)) == ["ss2", "ss3", "ss1"]  # tie: directory order
    assert ids(peers.order([A, C, B], 0)) == ["ss2", "ss1", "ss3"]


def test_latency_is_smoothed() -> None:
    peers = health()
    peers.connected(A.id, 0.100)
    peers.connected(B.id, 0.150)
    peers.connected(A.id, 1.000)  # one slow reply: 0.1 + 0.3 * 0.9 = 0.37
    assert peers.state(A.id).latency == pytest.approx(0.37)
    assert ids(peers.order([A, B], 0)) == ["ss2", "ss1"]
    peers.connected(A.id)  # a reply cut off measures nothing
    assert peers.state(A.id).latency == pytest.approx(0.37)


def test_an_unreachable_node_goes_last_until_its_backoff_ends() -> None:
    peers = health(initial=5, maximum=60)
    peers.connected(A.id, 0.01)
    peers.connected(B.id, 0.50)
    assert peers.unreachable(A.id, 100.0) == 5.0
    assert ids(peers.order([A, B], 100.0)) == ["ss2", "ss1"]
    assert ids(peers.order([A, B], 104.9)) == ["ss2", "ss1"]
    # Due: the next exchange probes it first.
    assert ids(peers.order([A, B], 105.0)) == ["ss1", "ss2"]


def test_one_probe_at_a_time() -> None:
    peers = health(initial=5)
    peers.unreachable(A.id, 0.0)
    assert ids(peers.order([A, B], 5.0)) == ["ss1", "ss2"]
    # Exchanges at the same moment do not probe it too: they go to B first.
    assert ids(peers.order([A, B], 5.0)) == ["ss2", "ss1"]
    assert ids(peers.order([A, B], 6.0)) == ["ss2", "ss1"]
    # A probe that never reported back (its exchange ended) is claimed again later.
    assert ids(peers.order([A, B], 10.0)) == ["ss1", "ss2"]


def test_a_failed_probe_doubles_the_backoff_up_to_the_maximum() -> None:
    peers = health(initial=5, maximum=30)
    now = 0.0
    pauses = []
    for _ in range(6):
        pauses.append(peers.unreachable(A.id, now))
        now += pauses[-1]
        assert ids(peers.order([A, B], now)) == ["ss1", "ss2"]  # the probe
    assert pauses == [5, 10, 20, 30, 30, 30]


def test_a_successful_probe_makes_the_node_reachable_again() -> None:
    peers = health(initial=5)
    peers.connected(A.id, 0.01)
    peers.connected(B.id, 0.50)
    peers.unreachable(A.id, 0.0)
    peers.unreachable(A.id, 5.0)  # a failed last-resort try when due: 10 s now
    assert ids(peers.order([A, B], 15.0)) == ["ss1", "ss2"]
    peers.connected(A.id, 0.02)
    assert peers.state(A.id).up()
    assert ids(peers.order([A, B], 15.0)) == ["ss1", "ss2"]
    # The count starts over: the next failure is the first again.
    assert peers.unreachable(A.id, 20.0) == 5.0


def test_failures_at_the_same_moment_count_once() -> None:
    """Concurrent exchanges that all found the node gone report it each; the backoff
    grows by failed probes, not by how many exchanges were under way."""
    peers = health(initial=5)
    assert peers.unreachable(A.id, 10.0) == 5.0
    assert peers.unreachable(A.id, 10.0) == 5.0
    assert peers.unreachable(A.id, 11.0) == 4.0
    assert peers.state(A.id).failures == 1


def test_nodes_in_backoff_are_still_tried_as_a_last_resort_soonest_first() -> None:
    peers = health(initial=5)
    peers.unreachable(B.id, 0.0)  # due at 5
    peers.unreachable(A.id, 1.0)  # due at 6
    assert ids(peers.order([A, B, C], 2.0)) == ["ss3", "ss2", "ss1"]
    # With only nodes in backoff, each is still tried: a provider with one node that
    # is down gets every exchange, as without failover.
    assert ids(peers.order([A], 2.0)) == ["ss1"]


def test_snapshot_for_the_metrics() -> None:
    peers = health()
    peers.connected(A.id, 0.25)
    peers.unreachable(B.id, 0.0)
    assert peers.snapshot() == [(A.id, True, 0.25), (B.id, False, None)]


@pytest.mark.parametrize(("initial", "maximum"), [(0, 60), (-1, 60), (10, 5)])
def test_a_backoff_must_be_positive_and_ordered(initial: float, maximum: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        PeerBackoff(initial, maximum)


def _section(**backoff: float) -> NodeSection:
    return NodeSection(
        id="DE-NRW/GOV/05974040/ss1",
        messagelog=Path("log.sqlite"),
        auth_cert=Path("auth.pem"),
        auth_key=Path("auth.key"),
        **backoff,
    )


def test_the_backoff_settings_of_node_toml() -> None:
    default = _section()
    assert (default.peer_backoff_seconds, default.peer_backoff_max_seconds) == (5, 60)
    chosen = _section(peer_backoff_seconds=0.5, peer_backoff_max_seconds=2)
    assert (chosen.peer_backoff_seconds, chosen.peer_backoff_max_seconds) == (0.5, 2)
    with pytest.raises(ValidationError, match="peer_backoff_max_seconds"):
        _section(peer_backoff_seconds=10, peer_backoff_max_seconds=5)
    with pytest.raises(ValidationError, match="peer_backoff_seconds"):
        _section(peer_backoff_seconds=0)
