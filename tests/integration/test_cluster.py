"""A node cluster on PostgreSQL under faults, as real processes (docs/adr/0042).

Soest's node and Lippstadt's node keep their logs in a PostgreSQL cluster of this module
alone (``tests/pg.py``), so it can be restarted without disturbing other tests.
Lippstadt runs ``gateway node serve --workers 2``: two worker processes behind the
parent's sockets, one of them elected to timestamp; for the settings, a third process
of Lippstadt's node joins on ports of its own, as on a second machine, and a change
made through any of them is in force in all. The leader is killed with SIGKILL: another
worker takes the timestamping over, the parent starts a new worker, and the log stays
one sequence that ``gateway audit export`` and ``verify`` accept. The database
is restarted under load: exchanges meanwhile are refused with the documented code,
every one answered 2xx has its entries in both logs, and the nodes recover by
themselves.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.conf.directory import TrustParameters
from gateway.core.errors import Code
from gateway.messagelog import Role, read_entries
from gateway.messagelog.leader import cluster_leader_pid
from gateway.messagelog.proofs import read_tree_heads, timestamp_status
from gateway.sandbox.localnet import LocalNet, ServiceSpec
from gateway.sandbox.netfiles import free_port
from gateway.sandbox.processes import Launch, end, spawn, wait_http
from tests.integration.conftest import (
    GEWERBEAMT,
    LIPPSTADT,
    ORDNUNGSAMT,
    SERVICE,
    SOEST,
    RecordingRegistry,
    call,
)
from tests.integration.test_postgres_node import eventually, gateway
from tests.pg import PgCluster, server_binaries

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]  # real restarts, under load

POLL = 0.5
"""``leader_poll_seconds`` of both nodes: a dead leader is replaced within about this."""
TAKEOVER = 10 * POLL + 5
"""The deadline for a takeover: several poll intervals and the time a worker needs."""
SETTINGS_POLL = 120
"""``settings_poll_seconds``: far beyond ``SETTLE``, so a version that is in force in
time came by its notification, not by the periodic check."""
SETTLE = 15
"""The deadline for a settings version to be in force in every process: the
notification's second (docs/deployment.md, Node cluster), with room for a loaded machine."""
API = "/api/v1"
DENIED = "server.serverproxy.access_denied"


@pytest.fixture(scope="module")
def own_pg() -> Iterator[PgCluster]:
    binaries = server_binaries()
    if binaries is None:
        pytest.fail("no PostgreSQL server binaries: run `make system-packages`")
    cluster = PgCluster(binaries)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def cluster_net(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry, own_pg: PgCluster
) -> Iterator[LocalNet]:
    federation = LocalNet.create(
        tmp_path_factory.mktemp("cluster"), [SOEST, LIPPSTADT], datetime.now(UTC)
    )
    federation.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    for files in federation.nodes.values():
        files.database_url = own_pg.fresh_database(empty=True)
    federation.write_configs(
        parameters=TrustParameters(timestamping_interval_seconds=1),
        extra={"leader_poll_seconds": POLL, "settings_poll_seconds": SETTINGS_POLL},
    )
    for files in federation.nodes.values():
        upgraded = gateway("db", "upgrade", str(files.config))
        assert upgraded.returncode == 0, upgraded.stderr
    try:
        federation.start_node(SOEST.ags)
        federation.start_node(LIPPSTADT.ags, workers=2)
        yield federation
    finally:
        federation.stop()


def lippstadt_url(net: LocalNet) -> str:
    url = net.nodes[LIPPSTADT.ags].database_url
    assert url is not None
    return url


def leader(net: LocalNet) -> int | None:
    return cluster_leader_pid(lippstadt_url(net), str(LIPPSTADT.node))


def parent(net: LocalNet) -> int:
    config = str(net.nodes[LIPPSTADT.ags].config)
    (proc,) = [p for p in net.processes if p.args[-1] == config and p.poll() is None]  # type: ignore[index]
    return proc.pid


def children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def all_stamped(url: str) -> bool:
    status = timestamp_status(url)
    return status.pending == 0 and status.tree_size > 0


def audit_passes(net: LocalNet, url: str, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.jsonl"
    exported = gateway(
        "audit", "export", "--db", url, "--out", str(bundle), "--all",
        "--tsa-cert", str(net.trust.tsa_cert), "--ca", str(net.ca_cert),
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(net.ca_cert.read_bytes() + net.trust.tsa_cert.read_bytes())
    verified = gateway("audit", "verify", str(bundle), "--anchor", str(anchor))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("OK ")
    entries = read_entries(url)
    assert [e.leaf_index for e in entries] == list(range(len(entries)))


def test_two_workers_share_the_ports_and_one_of_them_timestamps(cluster_net: LocalNet) -> None:
    for _ in range(6):
        response = call(cluster_net)
        assert response.status_code == 200, response.text
    workers = children(parent(cluster_net))
    assert len(workers) == 2
    eventually(lambda: leader(cluster_net) is not None, "a leader", TAKEOVER)
    assert leader(cluster_net) in workers
    url = lippstadt_url(cluster_net)
    eventually(lambda: all_stamped(url), "the cluster's tree head")
    # Every worker answers on the one metrics port; exactly one says it leads.
    metrics_url = cluster_net.nodes[LIPPSTADT.ags].metrics_url
    seen: set[float] = set()
    deadline = time.monotonic() + 30
    while seen != {0.0, 1.0} and time.monotonic() < deadline:
        text = httpx.get(f"{metrics_url}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            if family.name == "gateway_cluster_leader":
                seen.add(family.samples[0].value)
    assert seen == {0.0, 1.0}


def ask(net: LocalNet, client: str) -> httpx.Response:
    """One of Soest's offices asks Lippstadt's register (served by Lippstadt's workers)."""
    return httpx.get(
        f"{net.nodes[SOEST.ags].consumer_url}/r1/{SERVICE}",
        params={"familienname": "Schmidt"},
        headers={"X-Road-Client": client},
        timeout=30,
    )


def every_time(net: LocalNet, client: str, allowed: bool, times: int = 8) -> bool:
    """Whether ``times`` exchanges in a row, spread over the workers by the kernel, are
    all answered (``allowed``) or all refused for want of an access right."""
    for _ in range(times):
        reply = ask(net, client)
        if allowed != (reply.status_code == 200):
            return False
        if not allowed and reply.headers.get("X-Road-Error") != DENIED:
            return False
    return True


@pytest.fixture
def second_process(cluster_net: LocalNet) -> Iterator[str]:
    """Lippstadt's node once more, beside its workers: its own ports, the same node id,
    database and files. Yields its admin URL; it holds the same API keys."""
    files = cluster_net.nodes[LIPPSTADT.ags]
    text = files.config.read_text("utf-8")
    for key in ("consumer_listen", "peer_listen", "metrics_listen", "consumer_tls_listen"):
        text = re.sub(rf'^{key} = "([^"]+):\d+"', rf'{key} = "\1:{free_port()}"', text, flags=re.M)
    config = files.directory / "node-second.toml"
    config.write_text(text, "utf-8")
    metrics = re.search(r'^metrics_listen = "([^"]+)"', text, flags=re.M)
    assert metrics is not None
    proc = spawn(
        Launch(
            "node-second",
            ("node", "serve", "--config", str(config)),
            cluster_net.root / "logs" / "node-second.log",
            files.env,
        )
    )
    try:
        wait_http(f"http://{metrics[1]}/metrics", proc, 60)
        yield f"http://{metrics[1]}"
    finally:
        end(proc)


def test_settings_changed_on_one_process_are_in_force_in_every_process(
    cluster_net: LocalNet, second_process: str
) -> None:
    files = cluster_net.nodes[LIPPSTADT.ags]
    token = (files.directory / "admin.key").read_text("utf-8").strip()
    auth = {"Authorization": f"Bearer {token}"}

    def send(base: str, method: str, path: str, body: object = None) -> httpx.Response:
        return httpx.request(method, f"{base}{API}{path}", json=body, headers=auth, timeout=30)

    workers = files.metrics_url  # the parent's admin port: one of the two workers answers
    office = str(ORDNUNGSAMT)
    right = {"service": str(SERVICE), "client": office}
    assert every_time(cluster_net, office, allowed=False)

    # A grant through the second process is in force in both workers.
    granted = send(second_process, "POST", "/access", right)
    assert granted.status_code == 200, granted.text
    eventually(lambda: every_time(cluster_net, office, allowed=True), "the grant", SETTLE)

    # A revoke through a worker is in force in the other worker and the second process.
    revoked = send(workers, "DELETE", "/access", right)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["version"] == granted.json()["version"] + 1

    def listed(base: str) -> list[dict[str, object]]:
        reply = send(base, "GET", "/access")
        assert reply.status_code == 200, reply.text
        return [a for a in reply.json()["access"] if a.get("client") == office]

    eventually(lambda: not listed(second_process), "the revoke in the second process", SETTLE)
    eventually(lambda: every_time(cluster_net, office, allowed=False), "the revoke", SETTLE)

    # Changes made at the same moment on two processes: each is recorded on top of the
    # other (one sequence of versions, no gap), none undoes the other.
    changes: list[tuple[str, str, str, dict[str, str]]] = []
    for n in range(4):
        changes.append((second_process, "POST", "/subsystems", {"id": f"{LIPPSTADT.member}/a{n}"}))
        changes.append((workers, "POST", "/subsystems", {"id": f"{LIPPSTADT.member}/b{n}"}))
    start = threading.Barrier(2)

    def make(pair: list[tuple[str, str, str, dict[str, str]]]) -> list[httpx.Response]:
        replies = []
        for base, method, path, body in pair:
            start.wait(timeout=30)
            replies.append(send(base, method, path, body))
        return replies

    with ThreadPoolExecutor(2) as pool:
        done = [pool.submit(make, changes[i::2]) for i in (0, 1)]
        replies = [r for future in done for r in future.result()]
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    versions = sorted(int(r.json()["version"]) for r in replies)
    first = revoked.json()["version"] + 1
    assert versions == list(range(first, first + len(changes)))
    wanted = {str(body["id"]) for *_, body in changes}

    def subsystems(base: str) -> set[str]:
        reply = send(base, "GET", "/subsystems")
        assert reply.status_code == 200, reply.text
        return {str(c["id"]) for c in reply.json()["clients"]}

    for base in (second_process, workers, workers):
        eventually(lambda b=base: wanted <= subsystems(b), "every concurrent change", SETTLE)  # type: ignore[misc]


def worker_readiness(net: LocalNet) -> dict[int, tuple[int, dict[str, object]]]:
    """Each of Lippstadt's current workers' readiness (status, its ``maintenance``
    check), asked on new connections until every worker has answered."""
    files = net.nodes[LIPPSTADT.ags]
    workers = children(parent(net))
    seen: dict[int, tuple[int, dict[str, object]]] = {}
    deadline = time.monotonic() + 60
    while not workers <= set(seen) and time.monotonic() < deadline:
        reply = httpx.get(f"{files.consumer_url}/health/ready", timeout=30)
        body = reply.json()
        (check,) = [c for c in body["checks"] if c["check"] == "maintenance"]
        seen[int(body["pid"])] = (reply.status_code, check)
        workers = children(parent(net))
    assert workers <= set(seen), f"workers {workers}, answered {set(seen)}"
    return {pid: seen[pid] for pid in workers}


def test_maintenance_through_the_shared_admin_port_holds_in_every_worker(
    cluster_net: LocalNet,
) -> None:
    """On through the CLI (the shared admin port, one worker answers), the node is in
    maintenance in both workers and in a worker started again meanwhile; off through
    the API, both serve again."""
    files = cluster_net.nodes[LIPPSTADT.ags]
    token = (files.directory / "admin.key").read_text("utf-8").strip()
    auth = {"Authorization": f"Bearer {token}"}
    status_url = f"{files.metrics_url}{API}/maintenance"
    assert every_time(cluster_net, str(GEWERBEAMT), allowed=True)

    entered = gateway(
        "node", "admin", "--config", str(files.config), "maintenance", "on", "--reason", "Umzug"
    )  # fmt: skip
    assert entered.returncode == 0, entered.stderr
    try:
        since = httpx.get(status_url, headers=auth, timeout=30).json()["since"]

        def all_in_maintenance() -> bool:
            states = worker_readiness(cluster_net).values()
            return all(code == 503 and not check["ok"] for code, check in states)

        eventually(all_in_maintenance, "maintenance in every worker", 10)
        for _code, check in worker_readiness(cluster_net).values():
            assert f"since {since[:19]}" in str(check["detail"]), check
            assert "Umzug" in str(check["detail"]), check
        # Every new exchange, whichever worker takes it, is refused: a peer's and one of
        # Lippstadt's own information systems' (new connections each).
        for _ in range(8):
            relayed = call(cluster_net)
            assert relayed.headers.get("X-Road-Error") == Code.SP_MAINTENANCE_MODE.value
            own = httpx.get(
                f"{files.consumer_url}/r1/{SERVICE}",
                headers={"X-Road-Client": str(LIPPSTADT.subsystem("melderegister"))},
                timeout=30,
            )
            assert own.status_code == 500, own.text
            assert own.headers.get("X-Road-Error") == Code.CP_MAINTENANCE_MODE.value, own.text
        # The status answers for the node whichever worker answers; a worker the parent
        # starts again comes up drained.
        statuses: dict[int, dict[str, object]] = {}
        while set(statuses) != children(parent(cluster_net)):
            body = httpx.get(status_url, headers=auth, timeout=30).json()
            statuses[int(body["pid"])] = body
        assert {(b["enabled"], b["since"], b["reason"]) for b in statuses.values()} == {
            (True, since, "Umzug")
        }
        follower = min(children(parent(cluster_net)) - {leader(cluster_net)})
        os.kill(follower, signal.SIGTERM)
        eventually(
            lambda: (
                follower not in children(parent(cluster_net))
                and len(children(parent(cluster_net))) == 2
            ),
            "a worker started again",
        )
        for code, check in worker_readiness(cluster_net).values():
            assert code == 503 and not check["ok"] and "Umzug" in str(check["detail"])
    finally:
        left = httpx.put(status_url, json={"enabled": False}, headers=auth, timeout=30)
    assert left.status_code == 200, left.text
    assert left.json()["enabled"] is False

    def none_in_maintenance() -> bool:
        return all(check["ok"] for _, check in worker_readiness(cluster_net).values())

    eventually(none_in_maintenance, "maintenance off in every worker", 10)
    assert every_time(cluster_net, str(GEWERBEAMT), allowed=True)
    trail = httpx.get(f"{files.metrics_url}{API}/audit", headers=auth, timeout=30)
    actions = [r["action"] for r in trail.json()["records"] if r["action"].startswith("maint")]
    assert actions[-2:] == ["maintenance.enter", "maintenance.leave"]


def test_workers_are_refused_on_a_sqlite_log(tmp_path: Path) -> None:
    net = LocalNet.create(tmp_path, [SOEST], datetime.now(UTC))
    net.write_configs()
    served = gateway(
        "node", "serve", "--workers", "2", "--config", str(net.nodes[SOEST.ags].config)
    )
    assert served.returncode == 2
    assert "needs the message log in PostgreSQL" in served.stderr


def test_the_leader_killed_timestamping_resumes_and_the_log_verifies(
    cluster_net: LocalNet, tmp_path: Path
) -> None:
    url = lippstadt_url(cluster_net)
    eventually(lambda: leader(cluster_net) is not None, "a leader", TAKEOVER)
    old = leader(cluster_net)
    assert old is not None
    eventually(lambda: all_stamped(url), "the tree head before the kill")
    heads_before = len(read_tree_heads(url))
    os.kill(old, signal.SIGKILL)
    killed_at = datetime.now(UTC)
    eventually(lambda: leader(cluster_net) not in (None, old), "another leader", TAKEOVER)
    new = leader(cluster_net)
    assert new in children(parent(cluster_net))
    # New exchanges after the kill (a connection to the dead worker may fail: retried).
    answered = 0
    deadline = time.monotonic() + 60
    while answered < 5 and time.monotonic() < deadline:
        if call(cluster_net).status_code == 200:
            answered += 1
    assert answered == 5
    eventually(lambda: all_stamped(url), "a tree head over the entries after the kill")
    heads = read_tree_heads(url)
    assert len(heads) > heads_before
    assert datetime.fromisoformat(heads[-1].stored_at) > killed_at
    # The parent started a worker in place of the dead one.
    eventually(lambda: len(children(parent(cluster_net))) == 2, "a second worker again")
    audit_passes(cluster_net, url, tmp_path)


def test_postgresql_restarted_under_load_refuses_then_recovers(
    cluster_net: LocalNet, own_pg: PgCluster, tmp_path: Path
) -> None:
    results: list[tuple[int, str]] = []
    """(status, X-Road-Request-Id or the refusal's type) of every exchange."""
    lock = threading.Lock()
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                response = call(cluster_net)
            except httpx.HTTPError:
                continue
            outcome = (
                response.headers["X-Road-Request-Id"]
                if response.status_code == 200
                else response.json()["type"]
            )
            with lock:
                results.append((response.status_code, outcome))

    def successes() -> int:
        with lock:
            return sum(1 for status, _ in results if status == 200)

    with ThreadPoolExecutor(3) as pool:
        for _ in range(3):
            pool.submit(load)
        try:
            eventually(lambda: successes() >= 5, "exchanges before the restart")
            own_pg.stop_server("fast")
            with lock:
                during = len(results)
            eventually(lambda: len(results) >= during + 5, "exchanges during the outage")
            own_pg.start_server()
            after = successes()
            eventually(lambda: successes() >= after + 10, "exchanges after the restart", 60)
        finally:
            stop.set()
    refused = {outcome for status, outcome in results if status != 200}
    assert refused, "no exchange met the outage"
    assert refused <= {Code.CP_MESSAGELOG_FAILED.value, Code.SP_MESSAGELOG_FAILED.value}
    assert {status for status, _ in results if status != 200} == {500}
    # No exchange was answered without both halves in both logs.
    answered = {outcome for status, outcome in results if status == 200}
    for files, role in (
        (cluster_net.nodes[SOEST.ags], Role.CONSUMER),
        (cluster_net.nodes[LIPPSTADT.ags], Role.PROVIDER),
    ):
        assert files.database_url is not None
        logged = {e.message_id for e in read_entries(files.database_url) if e.role == role}
        assert answered <= logged, f"{len(answered - logged)} answered but not logged"
    url = lippstadt_url(cluster_net)
    eventually(lambda: leader(cluster_net) is not None, "a leader after the restart", TAKEOVER)
    eventually(lambda: all_stamped(url), "timestamping after the restart", 60)
    audit_passes(cluster_net, url, tmp_path)
