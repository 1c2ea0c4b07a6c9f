"""One scenario end to end: stand the federation up, load it, inject, check, report.

The federation: Soest's node (consumer), Lippstadt's two nodes ``ss1`` and ``ss2``
(ADR 0036) in front of one misbehaving registry process (``registry.py``), the trust
services, and the development TUF repository as the central's configuration server.
The directory the harness publishes gives ``ss2``'s address as the harness's TCP proxy
(``proxy.py``), so a partition between Soest and ``ss2`` is a switch on the proxy.
Nodes timestamp every second and witness each other every two seconds, so a run's
whole log can be exported, verified and witnessed at its end; they refetch their own
OCSP statuses every two seconds, so a revoked certificate is known within the fault.
With ``postgres`` the harness starts a throwaway PostgreSQL cluster
(``gateway/sandbox/pgcluster.py``) and puts every node's log in a database of it, and
runs ``ss1`` as a node cluster of ``CLUSTER_WORKERS`` worker processes on its database,
whose leader ``kill-leader`` kills (``leader.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.conf.directory import TrustParameters
from gateway.messagelog import read_tree_heads, timestamp_status
from gateway.sandbox.cities import LIPPSTADT, MELDEREGISTER_SERVICE, SOEST, TRADE_OFFICE
from gateway.sandbox.faults.checker import (
    Findings,
    audit_node,
    check_history,
    check_node_log,
)
from gateway.sandbox.faults.clock import FakeClock, find_libfaketime
from gateway.sandbox.faults.history import ClosedLoop, History, Outcome, Target
from gateway.sandbox.faults.injectors import READY_TIMEOUT, FaultRegistryHandle, Injectors
from gateway.sandbox.faults.leader import LEADER_POLL_S, LeaderKill, check_takeover
from gateway.sandbox.faults.proxy import TcpProxy
from gateway.sandbox.faults.schedule import FaultEvent, FaultSpec, Schedule
from gateway.sandbox.localnet import HOST, LocalNet, ServiceSpec, free_port, wait_http
from gateway.sandbox.pgcluster import PgCluster, server_binaries

LIPPSTADT_2 = LIPPSTADT.on_server("ss2")
CONSUMER = SOEST.key
PROVIDERS = (LIPPSTADT.key, LIPPSTADT_2.key)
SERVICE_TIMEOUT = 5.0
"""The registry's timeout in the provider's ``node.toml``: above the slow registry's
delay, so ``registry-slow`` costs latency and ``registry-never`` costs refusals."""
SETTLE_TIMEOUT = 120.0
OCSP_REFRESH = 2.0
"""``ocsp_refresh_seconds`` of the harness's nodes: below ``revoke-signing-cert``'s hold."""
MESSAGE_WINDOW = 60
"""``message_window_seconds`` of the harness's nodes: below the clock faults' jump of
120 s, so a node whose clock jumped is outside its peers' window (protocol.md 5.4)."""
CLUSTER_WORKERS = 2
"""Worker processes of ``ss1`` with ``--postgres`` (``gateway node serve --workers``)."""


@dataclass(frozen=True)
class FaultScenario:
    name: str
    duration: float
    """Seconds of load; every fault ends before it."""
    faults: tuple[FaultSpec, ...]
    workers: int = 4
    big_every: int = 0
    rate: float | None = None


SHORT = FaultScenario(
    "short",
    16.0,
    (
        FaultSpec(2.0, "kill-provider", 1.0),
        FaultSpec(8.0, "partition-drop", 1.5),
        FaultSpec(11.0, "registry-garbage", 1.0),
        FaultSpec(13.0, "registry-never", 1.5),
    ),
    workers=3,
)
"""The lane ``make test`` runs: one provider node killed, a partition, a bad registry."""

FULL = FaultScenario(
    "full",
    300.0,
    tuple(
        FaultSpec(5.0 + 17.0 * i, name, hold)
        for i, (name, hold) in enumerate(
            [
                ("kill-provider", 3.0),
                ("kill-provider-2", 3.0),
                ("kill-both-providers", 3.0),
                ("kill-consumer", 3.0),
                ("kill-trust", 5.0),
                ("central-down", 5.0),
                ("kill-registry", 3.0),
                ("rotate-signing-key", 3.0),
                ("registry-slow", 5.0),
                ("registry-garbage", 3.0),
                ("registry-never", 3.0),
                ("partition-drop", 5.0),
                ("partition-stall", 5.0),
                ("disk-full", 5.0),
                ("revoke-signing-cert", 6.0),
                ("postgres-restart", 2.0),
                ("kill-leader", 3.0),
            ]
        )
    ),
)
"""``make faults``: every fault of ``Injectors.catalogue`` once, one after another
(``postgres-restart`` and ``kill-leader`` with ``--postgres`` only, ``disk-full`` as root only). The
rotation is followed by a fault that refuses nothing (``registry-slow``): a loaded
machine can make it outlast its 17 s, and the refusals of the next fault would then
count in its window."""

POSTGRES = FaultScenario(
    "postgres",
    30.0,
    (
        FaultSpec(2.0, "rotate-signing-key", 1.0),
        FaultSpec(7.0, "kill-leader", 2.0),
        FaultSpec(12.0, "revoke-signing-cert", 6.0),
        FaultSpec(23.0, "postgres-restart", 1.0),
    ),
    workers=3,
)
"""The PostgreSQL lane of ``make test`` (``--postgres --scenario postgres``): the
provider's signing key rotated, the leader of its node cluster killed, its certificate
revoked, the database restarted."""


CLOCK = FaultScenario(
    "clock",
    26.0,
    (FaultSpec(3.0, "clock-forward", 6.0), FaultSpec(15.0, "clock-back", 6.0)),
    workers=3,
)
"""``--scenario clock``: the consumer's node's clock 2 min ahead, then 2 min behind. Not
in ``FULL``: an exchange in flight at the jump ahead may be logged with a time after its
tree head's genTime, which the audit refuses (docs/reliability.md)."""

DISK = FaultScenario("disk", 20.0, (FaultSpec(3.0, "disk-full", 5.0),), workers=3)
"""The full disk alone (``--scenario disk``): it needs root to mount the tmpfs."""


@dataclass
class FaultCost:
    """What one fault cost the callers: refusals and unanswered requests that began
    inside its window, and the seconds from healing to the next 2xx."""

    name: str
    started: float
    hold: float
    recovery_s: float
    refused: dict[str, int]
    no_answer: int
    first_ok_after_heal_s: float | None
    error: str | None


@dataclass
class RunReport:
    scenario: str
    duration_s: float
    requests: int
    findings: Findings
    faults: list[FaultCost] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Faults of the scenario this harness cannot inject (``disk-full`` without root)."""
    leader_kills: list[LeaderKill] = field(default_factory=list)
    """What each ``kill-leader`` saw: the killed and the new leader, the takeover."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.findings.passed
        data["findings"]["refused"] = dict(self.findings.refused)
        return data


def costs(events: list[FaultEvent], history: list[Outcome]) -> list[FaultCost]:
    out: list[FaultCost] = []
    for e in events:
        inside = [o for o in history if e.started <= o.started <= e.ready]
        refused: dict[str, int] = {}
        for o in inside:
            if o.status is not None and not o.ok:
                refused[o.code or "(none)"] = refused.get(o.code or "(none)", 0) + 1
        after = [o.ended - e.healed for o in history if o.ok and o.started >= e.healed]
        out.append(
            FaultCost(
                e.name,
                round(e.started, 2),
                round(e.healed - e.started, 2),
                round(e.recovery_s, 2),
                refused,
                sum(1 for o in inside if o.status is None),
                round(min(after), 2) if after else None,
                e.error,
            )
        )
    return out


class Harness:
    """The federation of one run under ``root``; ``run`` a scenario, ``close`` at the end."""

    def __init__(
        self,
        root: Path,
        *,
        database_urls: dict[str, str] | None = None,
        small_disk: bool = False,
        postgres: bool = False,
    ) -> None:
        self.root = root
        self.small_disk: Path | None = None
        if small_disk:
            self.small_disk = mount_small_disk(root / SOEST.key)
        self.net = LocalNet.create(root, [SOEST, LIPPSTADT, LIPPSTADT_2], datetime.now(UTC))
        self.postgres: PgCluster | None = None
        self.workers: dict[str, int] = {}
        self.leader_kills: list[LeaderKill] = []
        if postgres:
            self.workers = {LIPPSTADT.key: CLUSTER_WORKERS}
            self.postgres = start_postgres()
            database_urls = {key: self.postgres.fresh_database() for key in self.net.nodes}
        for key, url in (database_urls or {}).items():
            self.net.nodes[key].database_url = url
        self.registry_port = free_port()
        self.registry_url = f"http://{HOST}:{self.registry_port}"
        self.registry_proc: subprocess.Popen[bytes] | None = None
        self.proxy = TcpProxy(self.net.nodes[LIPPSTADT_2.key].peer_port)
        library = find_libfaketime()
        self.clock: FakeClock | None = None
        if library is not None:
            self.clock = FakeClock(library, root / "clock" / f"{CONSUMER}.offset")
            self.net.nodes[CONSUMER].env = tuple(self.clock.env().items())

    def start(self) -> None:
        net = self.net
        self.start_registry()
        net.add_service(
            ServiceSpec(
                id=MELDEREGISTER_SERVICE,
                url=f"{self.registry_url}/personen",
                openapi_url=None,
                allowed=(TRADE_OFFICE,),
                methods=("POST",),
                timeout_seconds=SERVICE_TIMEOUT,
            )
        )
        net.parameters = TrustParameters(timestamping_interval_seconds=1)
        repo = net.enable_globalconf()
        conf = net.globalconf()
        proxied = f"https://{HOST}:{self.proxy.port}"
        nodes = tuple(
            replace(n, address=proxied) if n.id == LIPPSTADT_2.node else n for n in conf.nodes
        )
        repo.publish(replace(conf, nodes=nodes).to_bytes())
        net.write_configs(
            extra={
                "peer_backoff_seconds": 0.5,
                "peer_backoff_max_seconds": 1.0,
                "message_window_seconds": MESSAGE_WINDOW,
                "ocsp_refresh_seconds": OCSP_REFRESH,
                "leader_poll_seconds": LEADER_POLL_S,
            }
        )
        for files in net.nodes.values():
            with files.config.open("a", encoding="utf-8") as out:
                out.write("\n[audit]\nwitness_interval_seconds = 2\n")
        net.start_trust()
        with ThreadPoolExecutor(max_workers=3) as pool:
            for future in [
                pool.submit(
                    net.start_node, key, workers=self.workers.get(key, 1), timeout=READY_TIMEOUT
                )
                for key in (CONSUMER, *PROVIDERS)
            ]:
                future.result()

    def start_registry(self) -> None:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        log = (self.root / "logs" / "fault-registry.log").open("ab")
        port = str(self.registry_port)
        self.registry_proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "gateway.sandbox.faults.registry", "--port", port],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_http(f"{self.registry_url}/health", self.registry_proc)

    def kill_registry(self) -> None:
        if self.registry_proc is not None:
            self.registry_proc.kill()
            self.registry_proc.wait(10)

    def injectors(self) -> Injectors:
        handle = FaultRegistryHandle(self.registry_url, self.kill_registry, self.start_registry)
        return Injectors(
            self.net,
            handle,
            self.proxy,
            CONSUMER,
            PROVIDERS,
            self.small_disk,
            self.clock,
            postgres=self.postgres,
            workers=self.workers,
            leader_kills=self.leader_kills,
        )

    def target(self) -> Target:
        files = self.net.nodes[CONSUMER]
        return Target(f"{files.consumer_url}/r1/{MELDEREGISTER_SERVICE}", str(TRADE_OFFICE))

    def run(self, scenario: FaultScenario, out: Path) -> RunReport:
        """Load for ``scenario.duration`` with its faults, then the checks; writes
        ``history.jsonl`` and ``report.json`` under ``out``."""
        out.mkdir(parents=True, exist_ok=True)
        history = History()
        load = ClosedLoop(
            self.target(),
            history,
            workers=scenario.workers,
            big_every=scenario.big_every,
            rate=scenario.rate,
        )
        catalogue = self.injectors().catalogue()
        skipped = [s.name for s in scenario.faults if s.name not in catalogue]
        specs = [s for s in scenario.faults if s.name in catalogue]
        schedule = Schedule(specs, catalogue)
        t0 = time.monotonic()
        load.start(t0)
        schedule.start(t0)
        time.sleep(max(0.0, scenario.duration - (time.monotonic() - t0)))
        events = schedule.join(SETTLE_TIMEOUT)
        load.stop()
        history.write(out / "history.jsonl")
        report = self.check(scenario.name, history.outcomes, events, out)
        report.duration_s = round(time.monotonic() - t0, 1)
        report.skipped = skipped
        (out / "report.json").write_text(json.dumps(report.to_json(), indent=2), "utf-8")
        return report

    def settle(self, findings: Findings) -> None:
        """Every node ready and every entry under a tree head, before the checks; a node
        that does not get there is a finding, and the checks still read every log."""
        inj = self.injectors()
        for key in self.net.nodes:
            try:
                inj.wait_ready(key)
            except RuntimeError as exc:
                findings.problems.append(f"{key}: not ready after the run: {exc}")
        deadline = time.monotonic() + SETTLE_TIMEOUT
        for files in self.net.nodes.values():
            while timestamp_status(files.log_location).pending:
                if time.monotonic() > deadline:
                    findings.problems.append(f"{files.city.key}: entries not timestamped")
                    break
                time.sleep(0.2)
        time.sleep(5)  # two witness rounds over the final heads

    def check(
        self, name: str, history: list[Outcome], events: list[FaultEvent], out: Path
    ) -> RunReport:
        findings = Findings()
        for e in events:
            if e.error:
                findings.problems.append(f"fault {e.name} at {e.started:.1f} s: {e.error}")
        self.settle(findings)
        logs = {
            key: check_node_log(key, files.log_location, findings)
            for key, files in self.net.nodes.items()
        }
        consumer_faults = [e for e in events if e.name == "kill-consumer"]
        providers = {key: logs[key] for key in PROVIDERS}
        check_history(history, logs[CONSUMER], providers, consumer_faults, findings)
        for kill in self.leader_kills:
            location = self.net.nodes[kill.node].log_location
            check_takeover(kill, logs[kill.node], read_tree_heads(location), findings)
        for key, files in self.net.nodes.items():
            audit_node(
                key,
                files.log_location,
                self.net.ca_cert,
                self.net.trust.tsa_cert,
                out / "audit",
                findings,
            )
        report = RunReport(name, 0.0, len(history), findings, costs(events, history))
        report.leader_kills = list(self.leader_kills)
        return report

    def close(self) -> None:
        self.proxy.close()
        self.kill_registry()
        self.net.stop()
        if self.postgres is not None:
            self.postgres.stop()
        if self.small_disk is not None:
            subprocess.run(["umount", str(self.small_disk)], check=False)  # noqa: S603, S607


def start_postgres() -> PgCluster:
    """A throwaway cluster with the log's schema in its template database."""
    binaries = server_binaries()
    if binaries is None:
        raise RuntimeError("no PostgreSQL server under /usr/lib/postgresql (make system-packages)")
    cluster = PgCluster(binaries)
    try:
        cluster.start()
        cluster.prepare_template()
    except BaseException:
        cluster.stop()
        raise
    return cluster


SMALL_DISK = "64m"


def mount_small_disk(directory: Path) -> Path | None:
    """A ``SMALL_DISK`` tmpfs at ``directory`` (the node's files and log), so that
    ``disk-full`` can fill it; None where mounting is not allowed (not root)."""
    directory.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(  # noqa: S603
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK}", "tmpfs", str(directory)],  # noqa: S607
        capture_output=True,
        check=False,
    )
    return directory if done.returncode == 0 else None
