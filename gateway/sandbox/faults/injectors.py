"""The faults themselves: each breaks one thing, holds, heals, and waits until ready.

Every fault is a method of :class:`Injectors` taking the seconds to hold; ``catalogue``
names them for a schedule. What they act on is real: ``kill -9`` of a node, of the
trust services (OCSP responder and TSA) or of the registry process, the configuration
server going away (the central's part in a loopback federation: its TUF repository),
the registry answering slowly, with garbage or never, a partition between the
consumer's node and one provider node through the harness's TCP proxy, and the
consumer node's wall clock jumping forward or back (``clock.py``), a provider node's
signing key rotated and its signing certificate revoked (``keys.py``), and the
PostgreSQL server restarted under the nodes' logs and the leader of the node cluster
killed (``--postgres``, ``leader.py``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gateway.sandbox.faults import keys
from gateway.sandbox.faults.clock import FakeClock
from gateway.sandbox.faults.leader import LeaderKill, children, kill_leader
from gateway.sandbox.faults.proxy import TcpProxy
from gateway.sandbox.localnet import HOST, LocalNet, wait_http
from gateway.sandbox.pgcluster import PgCluster

READY_TIMEOUT = 90.0
"""How long a healed part may take to answer its readiness check before the fault is
reported as failed: generous, the machine may be shared."""

CLUSTER_TAKE_UP_S = 6.0
"""How long after a new signing certificate every worker of a node cluster uses it: the
nodes' ``[node] settings_poll_seconds`` (5 s by default) and a second to spare."""

REVOCATION_GRACE_S = 30.0
"""How much longer than its hold ``revoke-signing-cert`` waits for every node to stop
answering ready: a node's OCSP refresh runs late on a loaded machine; beyond this, a
node serving on a revoked certificate is a finding."""


class FaultRegistryHandle:
    """What a fault needs of the misbehaving registry: its URL and a way to restart it."""

    def __init__(self, url: str, kill: Callable[[], None], restart: Callable[[], None]) -> None:
        self.url = url
        self.kill = kill
        self.restart = restart

    def set_mode(self, mode: str) -> None:
        response = httpx.post(f"{self.url}/_mode/{mode}", timeout=10)
        response.raise_for_status()


@dataclass
class Injectors:
    net: LocalNet
    registry: FaultRegistryHandle
    proxy: TcpProxy
    consumer: str
    """The consumer node's key in ``net.nodes``."""
    providers: tuple[str, str]
    """The provider's two nodes; the second is reached through ``proxy``."""
    small_disk: Path | None = None
    """The consumer node's directory, if the harness put it on a small tmpfs."""
    clock: FakeClock | None = None
    """The consumer node's faked clock, if libfaketime is installed."""
    clock_jump: int = 120
    """Seconds the clock faults move it: beyond the harness's message window."""
    postgres: PgCluster | None = None
    """The cluster holding the nodes' logs, if the harness runs them on PostgreSQL."""
    workers: dict[str, int] = field(default_factory=dict)
    """Nodes run as a node cluster: their key and number of worker processes."""
    leader_kills: list[LeaderKill] = field(default_factory=list)
    """What each ``kill-leader`` saw, for the checks after the run."""

    def catalogue(self) -> dict[str, Callable[[float], None]]:
        first, second = self.providers
        return {
            "kill-consumer": lambda hold: self.kill_node(self.consumer, hold),
            "kill-provider": lambda hold: self.kill_node(first, hold),
            "kill-provider-2": lambda hold: self.kill_node(second, hold),
            "kill-both-providers": self.kill_both_providers,
            "kill-trust": self.kill_trust,
            "central-down": self.central_down,
            "kill-registry": self.kill_registry,
            "registry-slow": lambda hold: self.registry_mode("slow", hold),
            "registry-garbage": lambda hold: self.registry_mode("garbage", hold),
            "registry-never": lambda hold: self.registry_mode("never", hold),
            "partition-drop": lambda hold: self.partition("drop", hold),
            "partition-stall": lambda hold: self.partition("stall", hold),
            "rotate-signing-key": self.rotate_signing_key,
            "revoke-signing-cert": self.revoke_signing_cert,
            **({"postgres-restart": self.postgres_restart} if self.postgres is not None else {}),
            **({"kill-leader": self.kill_leader} if self.workers else {}),
            **({"disk-full": self.disk_full} if self.small_disk is not None else {}),
            **(
                {
                    "clock-forward": lambda hold: self.clock_skew(self.clock_jump, hold),
                    "clock-back": lambda hold: self.clock_skew(-self.clock_jump, hold),
                }
                if self.clock is not None
                else {}
            ),
        }

    def wait_ready(self, key: str) -> None:
        """Until the node's ``/health/ready`` says 200 (configuration, OCSP, log)."""
        wait_http(f"{self.net.nodes[key].consumer_url}/health/ready", timeout=READY_TIMEOUT)

    def parent(self, key: str) -> int:
        """The process id of the node's ``gateway node serve`` (a cluster's parent)."""
        config = str(self.net.nodes[key].config)
        for proc in self.net.processes:
            if proc.args[-1] == config and proc.poll() is None:  # type: ignore[index]
                return proc.pid
        raise RuntimeError(f"{key}: not running")

    def stop_node(self, key: str) -> None:
        """``kill -9`` the node, a cluster's workers with their parent (as the machine's
        crash ends them all), so that none keeps the node's ports."""
        workers = children(self.parent(key)) if key in self.workers else set()
        self.net.stop_node(key, kill=True)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def start_node(self, key: str) -> None:
        self.net.start_node(key, workers=self.workers.get(key, 1), timeout=READY_TIMEOUT)

    def kill_node(self, key: str, hold: float) -> None:
        """``kill -9`` the node, restart it after ``hold`` from the same files."""
        self.stop_node(key)
        time.sleep(hold)
        self.start_node(key)
        self.wait_ready(key)

    def kill_leader(self, hold: float) -> None:
        """``kill -9`` the process of the node cluster that holds the leader lock (the
        timestamper and witness): another worker must take the lock over and the parent
        start a worker in place of the dead one, while the others serve. ``hold``: the
        least time the fault lasts."""
        started = time.monotonic()
        for key, workers in self.workers.items():
            url = self.net.nodes[key].database_url
            if url is None:
                raise RuntimeError(f"{key}: a node cluster needs a PostgreSQL log")
            node_id = str(self.net.nodes[key].city.node)
            kill = kill_leader(key, url, node_id, self.parent(key), workers, READY_TIMEOUT)
            self.leader_kills.append(kill)
        time.sleep(max(0.0, hold - (time.monotonic() - started)))
        for key in self.workers:
            self.wait_ready(key)

    def kill_both_providers(self, hold: float) -> None:
        for key in self.providers:
            self.stop_node(key)
        time.sleep(hold)
        failed: list[str] = []
        for key in self.providers:  # both, even if the first will not start
            try:
                self.start_node(key)
                self.wait_ready(key)
            except RuntimeError as exc:
                failed.append(f"{key}: {exc}")
        if failed:
            raise RuntimeError("; ".join(failed))

    def kill_trust(self, hold: float) -> None:
        """``kill -9`` the OCSP responder and TSA; the nodes live on their cached OCSP
        evidence and queue timestamps until it is back."""
        proc = self.net.trust_process
        if proc is not None:
            proc.kill()
            proc.wait(10)
            self.net.forget(proc)
        time.sleep(hold)
        self.net.start_trust()
        for key in self.net.nodes:
            self.wait_ready(key)

    def central_down(self, hold: float) -> None:
        """The configuration's server gone for ``hold``: the nodes keep the version in
        force (until it expires) and fetch again when it is back, at the same address."""
        tuf = self.net.tuf
        if tuf is None:
            raise RuntimeError("the federation publishes no configuration")
        port = int(tuf.base_url.rsplit(":", 1)[1])
        tuf.shutdown()
        time.sleep(hold)
        tuf.serve(HOST, port)
        for key in self.net.nodes:
            self.wait_ready(key)

    def kill_registry(self, hold: float) -> None:
        self.registry.kill()
        time.sleep(hold)
        self.registry.restart()

    def registry_mode(self, mode: str, hold: float) -> None:
        self.registry.set_mode(mode)
        time.sleep(hold)
        self.registry.set_mode("ok")

    def partition(self, mode: str, hold: float) -> None:
        """Cut the consumer from the second provider node (``drop`` or ``stall``)."""
        self.proxy.set_mode(mode)
        time.sleep(hold)
        self.proxy.set_mode("pass")

    def disk_full(self, hold: float) -> None:
        """Fill the consumer node's tmpfs to the last byte, hold, free it: the node, on
        the path of every exchange, must refuse (its log cannot be written) and resume
        by itself."""
        if self.small_disk is None:
            raise RuntimeError("no small disk under a node")
        filler = self.small_disk / "filler"
        with filler.open("wb") as out, contextlib.suppress(OSError):
            chunk = b"\0" * (1 << 20)
            while True:
                out.write(chunk)
                out.flush()
        time.sleep(hold)
        filler.unlink()
        self.wait_ready(self.consumer)

    def clock_skew(self, seconds: int, hold: float) -> None:
        """The consumer node's clock ``seconds`` off while it runs, for ``hold``, then
        true again: what it signs is outside the providers' window and what they sign
        outside its own, so exchanges are refused with the documented codes, and none
        is answered 2xx unlogged."""
        if self.clock is None:
            raise RuntimeError("libfaketime is not installed")
        self.clock.set(seconds)
        time.sleep(hold)
        self.clock.set(0)
        self.wait_ready(self.consumer)

    def rotate_signing_key(self, hold: float) -> None:
        """A new signing key and certificate in use on each provider node while it
        answers: its CSR, the CA's certificate ``hold`` seconds later, the import. No
        exchange may fail for it; the entries signed with the old keys still verify."""
        before = {key: keys.signing_serial(self.net, key) for key in self.providers}
        time.sleep(hold)
        for key in self.providers:
            after = keys.rotate_signing_key(self.net, key)
            if keys.signing_serial(self.net, key) != after or after == before[key]:
                raise RuntimeError(f"{key}: signing certificate {before[key]:x} still in use")
        for key in self.providers:
            self.wait_ready(key)

    def revoke_signing_cert(self, hold: float) -> None:
        """The CA revokes the signing certificates of the provider's nodes (the member's
        keys compromised); from its next OCSP refresh each node answers nothing
        (``server.serverproxy.ocsp_unavailable``) and is not ready. Both, because the
        consumer sends to the faster node and fails over only when it cannot connect:
        with one revoked the other might carry every exchange and show nothing. Healed
        after ``hold`` the way an operator heals it: a new key and certificate on each
        node through its management API."""
        for key in self.providers:
            keys.revoke_signing_cert(self.net, key)
        start = time.monotonic()
        refused: set[str] = set()
        # The fault lasts ``hold``; on a loaded machine a node's OCSP refresh may come
        # later than its schedule, so it gets a grace period before that counts as a
        # node still serving on a revoked certificate.
        while (elapsed := time.monotonic() - start) < hold or refused != set(self.providers):
            if elapsed >= hold + REVOCATION_GRACE_S:
                still = sorted(set(self.providers) - refused)
                raise RuntimeError(
                    f"{', '.join(still)}: still ready {elapsed:.0f} s after revocation"
                )
            for key in set(self.providers) - refused:
                with contextlib.suppress(httpx.HTTPError):
                    ready = httpx.get(f"{self.net.nodes[key].consumer_url}/health/ready", timeout=2)
                    if ready.status_code != 200:
                        refused.add(key)
            time.sleep(0.2)
        for key in self.providers:
            keys.rotate_signing_key(self.net, key)
        for key in self.providers:
            self.wait_ready(key)
        if any(key in self.workers for key in self.providers):
            # The readiness check reaches one worker of a cluster; the others take the
            # new certificate up from the files within their poll (ADR 0050), and sign
            # with the revoked one until then.
            time.sleep(CLUSTER_TAKE_UP_S)

    def postgres_restart(self, hold: float) -> None:
        """``pg_ctl restart -m fast`` of the server every node's log is in: every session
        ends at once; the nodes must reconnect by themselves. ``hold``: seconds after the
        restart before the nodes must be ready (the restart itself takes what it takes)."""
        if self.postgres is None:
            raise RuntimeError("the nodes' logs are not on PostgreSQL")
        self.postgres.restart("fast")
        time.sleep(hold)
        for key in self.net.nodes:
            self.wait_ready(key)
