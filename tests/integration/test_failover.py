"""Failover on the consumer side: Lippstadt runs two nodes, Soest's node uses either.

Soest, Lippstadt ``ss1`` and Lippstadt ``ss2`` run as ``gateway node serve`` processes;
the global configuration lists both Lippstadt nodes as hosting its Melderegister, and
both call the one recording registry. A node is killed with SIGKILL, replaced by a peer
that presents the wrong certificate, or by one that reads the request and hangs up: the
client must see no failure where no connection could be made, and no exchange may reach
the registry twice.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.messagelog import read_entries
from gateway.sandbox.federation import start_nodes
from gateway.sandbox.localnet import HOST, LocalNet, NodeFiles, ServiceSpec
from tests.integration.conftest import (
    GEWERBEAMT,
    LIPPSTADT,
    SERVICE,
    SOEST,
    RecordingRegistry,
)

pytestmark = pytest.mark.integration

LIPPSTADT_2 = LIPPSTADT.on_server("ss2")
PROVIDER_NODES = (LIPPSTADT.key, LIPPSTADT_2.key)
"""In the directory's order (the order the configuration lists them)."""
BACKOFF_MAX = 1.0
"""``peer_backoff_max_seconds`` of Soest's node: short, so a test can outwait it."""


@pytest.fixture(scope="module")
def fnet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    federation = LocalNet.create(
        tmp_path_factory.mktemp("failover"), [SOEST, LIPPSTADT, LIPPSTADT_2], datetime.now(UTC)
    )
    federation.add_service(
        ServiceSpec(
            id=SERVICE,
            url=f"{registry.url}/personen",
            openapi_url=None,
            allowed=(GEWERBEAMT,),
            methods=("GET", "POST"),
        )
    )
    federation.write_configs(
        extra={"peer_backoff_seconds": 0.5, "peer_backoff_max_seconds": BACKOFF_MAX}
    )
    try:
        start_nodes(federation, [SOEST.ags, *PROVIDER_NODES])
        yield federation
    finally:
        federation.stop()


def call(net: LocalNet) -> httpx.Response:
    return httpx.post(
        f"{net.nodes[SOEST.ags].consumer_url}/r1/{SERVICE}",
        content=uuid.uuid4().bytes.hex().encode(),
        headers={"X-Road-Client": str(GEWERBEAMT)},
        timeout=30,
    )


def served_by(net: LocalNet, message_id: str) -> list[str]:
    """The Lippstadt nodes whose log holds the exchange ``message_id``."""
    return [
        key
        for key in PROVIDER_NODES
        if read_entries(net.nodes[key].messagelog, message_id=message_id)
    ]


def registry_calls(registry: RecordingRegistry, message_id: str) -> int:
    with registry.lock:
        return sum(1 for c in registry.calls if c.headers.get("x-road-request-id") == message_id)


def peer_metrics(net: LocalNet) -> dict[tuple[str, str], float]:
    """Soest's per-node samples: (metric name, node) to value."""
    text = httpx.get(f"{net.nodes[SOEST.ags].metrics_url}/metrics", timeout=10).text
    return {
        (sample.name, sample.labels["node"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "node" in sample.labels
    }


def node_id(net: LocalNet, key: str) -> str:
    return str(net.nodes[key].city.node)


def preferred(net: LocalNet) -> str:
    """The Lippstadt node Soest tries first: both reachable, the lower smoothed latency
    (docs/protocol.md section 10), ties in the directory's order."""
    samples = peer_metrics(net)
    for key in PROVIDER_NODES:
        assert samples[("gateway_peer_node_up", node_id(net, key))] == 1.0, samples
    return min(
        PROVIDER_NODES,
        key=lambda key: (
            samples[("gateway_peer_node_latency_seconds", node_id(net, key))],
            PROVIDER_NODES.index(key),
        ),
    )


def warm_up(net: LocalNet) -> None:
    """Exchanges until Soest has measured both nodes (one unmeasured goes first)."""
    for _ in range(4):
        response = call(net)
        assert response.status_code == 200, response.text


def other(key: str) -> str:
    return next(k for k in PROVIDER_NODES if k != key)


def wait_listening(files: NodeFiles) -> None:
    """Until the node's peer port takes connections (its consumer port answers first)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection((HOST, files.peer_port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def restart(net: LocalNet, key: str) -> None:
    net.start_node(key)
    wait_listening(net.nodes[key])


@dataclass
class FakePeer:
    """Listens on a node's peer port with a certificate of our choice; with ``hang_up``
    it reads one whole request and closes the connection without an answer."""

    port: int
    cert: Path
    key: Path
    passphrase: bytes | None
    requests: list[bytes] = field(default_factory=list)
    sock: socket.socket | None = None
    thread: threading.Thread | None = None

    def start(self) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key, password=self.passphrase)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, self.port))
        sock.listen()
        self.sock = sock

        def serve() -> None:
            while True:
                try:
                    raw, _ = sock.accept()
                except OSError:
                    return
                threading.Thread(target=self._one, args=(context, raw), daemon=True).start()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def _one(self, context: ssl.SSLContext, raw: socket.socket) -> None:
        try:
            with context.wrap_socket(raw, server_side=True) as conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(body) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    body += chunk
                self.requests.append(head)
        except (OSError, StopIteration):
            return

    def stop(self) -> None:
        """Free the port: on Linux a thread blocked in ``accept`` keeps a socket that
        is only closed listening; ``shutdown`` wakes it."""
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
        if self.thread is not None:
            self.thread.join(timeout=10)


def test_both_nodes_serve_the_provider(fnet: LocalNet, registry: RecordingRegistry) -> None:
    """Each node is tried while unmeasured, so both carry exchanges."""
    seen = set()
    for _ in range(4):
        response = call(fnet)
        assert response.status_code == 200, response.text
        message_id = response.headers["X-Road-Request-Id"]
        assert registry_calls(registry, message_id) == 1
        (node,) = served_by(fnet, message_id)
        seen.add(node)
    assert seen == set(PROVIDER_NODES)


def test_a_killed_node_costs_no_exchange(fnet: LocalNet, registry: RecordingRegistry) -> None:
    warm_up(fnet)
    victim = preferred(fnet)
    survivor = other(victim)
    failovers_before = peer_metrics(fnet).get(
        ("gateway_failovers_total", node_id(fnet, victim)), 0.0
    )
    fnet.stop_node(victim, kill=True)

    responses = [call(fnet) for _ in range(10)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses += list(pool.map(lambda _: call(fnet), range(24)))
    responses += [call(fnet) for _ in range(4)]

    assert [r.status_code for r in responses] == [200] * len(responses), [
        r.text for r in responses if r.status_code != 200
    ]
    message_ids = [r.headers["X-Road-Request-Id"] for r in responses]
    assert len(set(message_ids)) == len(message_ids)
    for message_id in message_ids:
        assert registry_calls(registry, message_id) == 1, message_id
        assert served_by(fnet, message_id) == [survivor], message_id

    samples = peer_metrics(fnet)
    assert samples[("gateway_peer_node_up", node_id(fnet, victim))] == 0.0
    assert samples[("gateway_peer_node_up", node_id(fnet, survivor))] == 1.0
    # The first exchange after the kill tried the victim first and went on.
    assert samples[("gateway_failovers_total", node_id(fnet, victim))] > failovers_before

    # Back up: once its backoff has run out, the next exchange probes it first.
    restart(fnet, victim)
    time.sleep(BACKOFF_MAX + 0.2)
    response = call(fnet)
    assert response.status_code == 200, response.text
    message_id = response.headers["X-Road-Request-Id"]
    assert served_by(fnet, message_id) == [victim]
    assert registry_calls(registry, message_id) == 1
    assert peer_metrics(fnet)[("gateway_peer_node_up", node_id(fnet, victim))] == 1.0


def test_a_node_with_the_wrong_certificate_is_passed_over(
    fnet: LocalNet, registry: RecordingRegistry
) -> None:
    """A TLS peer whose certificate is not the registered node's never sees the
    request (the pin is checked before anything is written): the next node answers."""
    warm_up(fnet)
    victim = preferred(fnet)
    survivor = other(victim)
    fnet.stop_node(victim, kill=True)
    wrong = fnet.nodes[survivor]  # registered, but for the other node
    fake = FakePeer(
        fnet.nodes[victim].peer_port,
        wrong.auth_cert,
        wrong.directory / "auth.key",
        wrong.passphrase,
    )
    fake.start()
    try:
        response = call(fnet)
        assert response.status_code == 200, response.text
        message_id = response.headers["X-Road-Request-Id"]
        assert served_by(fnet, message_id) == [survivor]
        assert registry_calls(registry, message_id) == 1
        assert fake.requests == []
    finally:
        fake.stop()
    restart(fnet, victim)
    time.sleep(BACKOFF_MAX + 0.2)
    assert call(fnet).status_code == 200


def test_a_failure_after_sending_is_not_sent_again(
    fnet: LocalNet, registry: RecordingRegistry
) -> None:
    """The preferred node reads the whole request and hangs up: it may have acted on
    it, so the consumer refuses rather than send the message to the other node."""
    warm_up(fnet)
    victim = preferred(fnet)
    survivor = other(victim)
    fnet.stop_node(victim, kill=True)
    files = fnet.nodes[victim]
    fake = FakePeer(
        files.peer_port, files.auth_cert, files.directory / "auth.key", files.passphrase
    )
    fake.start()
    calls_before = registry.count()
    try:
        response = call(fnet)
    finally:
        fake.stop()
    assert response.status_code == 500, response.text
    assert response.headers["X-Road-Error"] == "server.clientproxy.network_error"
    assert "closed before a complete answer" in response.json()["message"]
    assert len(fake.requests) == 1
    message_id = response.headers["X-Road-Request-Id"]
    assert served_by(fnet, message_id) == []
    assert registry.count() == calls_before
    assert read_entries(fnet.nodes[survivor].messagelog, message_id=message_id) == []
    restart(fnet, victim)


def test_no_node_reachable_names_every_node_tried(fnet: LocalNet) -> None:
    for key in PROVIDER_NODES:
        fnet.stop_node(key, kill=True)
    try:
        response = call(fnet)
    finally:
        for key in PROVIDER_NODES:
            restart(fnet, key)
    assert response.status_code == 500, response.text
    assert response.headers["X-Road-Error"] == "server.clientproxy.network_error"
    message = response.json()["message"]
    assert "none of the 2 nodes hosting" in message, message
    for key in PROVIDER_NODES:
        assert node_id(fnet, key) in message, message
        assert fnet.nodes[key].peer_url in message, message
    assert message.count("connection refused") == 2, message
