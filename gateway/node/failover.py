"""Which of a provider's nodes the consumer side tries, and in what order.

The global configuration may list several nodes hosting one provider (a member running
two security servers). :class:`PeerHealth` remembers, per peer node, what the last
attempts to reach it said: consecutive connection failures and a smoothed latency of its
replies. :meth:`PeerHealth.order` turns that into the order of the candidates for one
exchange; the client proxy tries the next candidate only when a connection could not be
made at all, so nothing of the request was ever sent to the node it leaves behind
(docs/protocol.md section 10, docs/adr/0036-consumer-failover-before-the-first-byte.md).

Pure: no network, no clock. ``now`` is a monotonic time in seconds the caller passes in,
so the tests drive the backoff without waiting, and a step of the wall clock cannot
shorten or lengthen one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from gateway.conf.directory import NodeInfo
from gateway.core.ids import NodeId

SMOOTHING: Final = 0.3
"""Weight of the newest latency in the moving average: a node that became slow is
passed over within a few exchanges, one slow reply does not move it much."""


@dataclass(frozen=True, slots=True)
class PeerBackoff:
    """How long a node that could not be reached is passed over: ``initial`` seconds
    after the first failure, doubling with each further one, at most ``maximum``
    (``peer_backoff_seconds``, ``peer_backoff_max_seconds`` in ``[node]``)."""

    initial: float = 5.0
    maximum: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("the backoff needs 0 < initial <= maximum")

    def after(self, failures: int) -> float:
        """The pause after ``failures`` consecutive failures (at least one)."""
        return min(self.initial * (1 << min(max(failures, 1) - 1, 32)), self.maximum)


@dataclass(slots=True)
class PeerState:
    """What this node knows of one peer node's reachability."""

    failures: int = 0
    """Consecutive times no connection could be made (0: reachable as far as known)."""
    retry_at: float = 0.0
    """While ``failures``: when the node may be tried again ahead of the others."""
    probing: bool = False
    """An exchange has claimed the node as its probe and not reported back yet."""
    latency: float | None = None
    """Smoothed seconds from sending a message to its reply (None: never measured)."""

    def up(self) -> bool:
        return self.failures == 0


@dataclass(slots=True)
class PeerHealth:
    """The reachability of every peer node this node sent to, and the order it tries
    a provider's nodes in.

    The order of :meth:`order`: first, at most one node whose backoff has run out (the
    exchange probes it; if it still cannot be reached, the exchange moves on and the
    node's backoff doubles); then the reachable nodes, fastest first, a node never
    measured before any measured one (so each gets its latency measured), ties in the
    directory's order; last the nodes still in their backoff, the soonest due first.
    The last are tried only when every other failed: a provider whose one node is down
    is still tried on each exchange, as it would be without failover.
    """

    backoff: PeerBackoff = field(default_factory=PeerBackoff)
    peers: dict[NodeId, PeerState] = field(default_factory=dict)

    def state(self, node: NodeId) -> PeerState:
        found = self.peers.get(node)
        if found is None:
            found = self.peers[node] = PeerState()
        return found

    def order(self, candidates: Sequence[NodeInfo], now: float) -> list[NodeInfo]:
        """The candidates in the order to try them now; claims the probe it puts first."""
        probe: NodeInfo | None = None
        reachable: list[tuple[float, int, NodeInfo]] = []
        waiting: list[tuple[float, int, NodeInfo]] = []
        for index, node in enumerate(candidates):
            state = self.state(node.id)
            if state.up():
                reachable.append((state.latency or 0.0, index, node))
            elif probe is None and state.retry_at <= now:
                probe = node
                state.probing = True
                # Should the probe never report (its exchange cancelled), the node is
                # due again one pause later rather than claimed for ever.
                state.retry_at = now + self.backoff.after(state.failures)
            else:
                waiting.append((state.retry_at, index, node))
        ordered = [node for _, _, node in sorted(reachable, key=lambda t: t[:2])]
        ordered += [node for _, _, node in sorted(waiting, key=lambda t: t[:2])]
        return ordered if probe is None else [probe, *ordered]

    def connected(self, node: NodeId, latency: float | None = None) -> None:
        """A connection to ``node`` was made: it is reachable again. ``latency`` is the
        time its reply took, if one came (a reply cut off measures nothing)."""
        state = self.state(node)
        state.failures, state.retry_at, state.probing = 0, 0.0, False
        if latency is not None:
            previous = state.latency
            state.latency = (
                latency if previous is None else previous + SMOOTHING * (latency - previous)
            )

    def unreachable(self, node: NodeId, now: float) -> float:
        """No connection to ``node`` could be made at ``now``; returns the seconds it is
        passed over from now.

        A failure reported while the node is already passed over (exchanges that tried
        it at the same moment, or as a last resort) adds nothing: only the first
        failure, and a failed probe, count towards the doubling.
        """
        state = self.state(node)
        if state.probing or state.up() or state.retry_at <= now:
            state.failures += 1
            state.retry_at = now + self.backoff.after(state.failures)
            state.probing = False
        return max(state.retry_at - now, 0.0)

    def snapshot(self) -> list[tuple[NodeId, bool, float | None]]:
        """Each peer node known: whether it is reachable, its smoothed latency (for the
        node's metrics, read at scrape time)."""
        return [(node, state.up(), state.latency) for node, state in self.peers.items()]
