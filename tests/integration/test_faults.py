"""Faults around an exchange: a message log that cannot write, a slow or absent registry,
an oversize request. Real node processes; every fault must reach the client as its own
``X-Road-Error`` code and must never end in a success that is not logged on both sides.
"""

from __future__ import annotations

import contextlib
import gzip
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gateway.core.envelope import MAX_ENVELOPE, MAX_HEADER_NAME, MAX_HEADER_VALUE, MAX_HEADERS
from gateway.messagelog import count_entries, read_entries
from gateway.sandbox.localnet import LocalNet, ServiceSpec, free_port
from tests.integration.conftest import (
    GEWERBEAMT,
    ISERLOHN,
    LIPPSTADT,
    SERVICE,
    SLOW,
    SOEST,
    RecordingRegistry,
    slow_service,
)

pytestmark = pytest.mark.integration

UNREACHABLE = LIPPSTADT.subsystem("melderegister").service("abgestuerzt")
MAX_BODY = 1024


def call(
    net: LocalNet,
    service: object = SERVICE,
    *,
    method: str = "GET",
    content: bytes | Iterator[bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.request(
        method,
        f"{net.nodes[SOEST.ags].consumer_url}/r1/{service}",
        headers={"X-Road-Client": str(GEWERBEAMT), **(headers or {})},
        content=content,
        timeout=30,
    )


def assert_error(
    response: httpx.Response, status: int, code: str, *, message_made: bool = True
) -> None:
    """A refusal in X-Road's format; once the consumer's node has made the message, the
    refusal names it (``X-Road-Request-Id``, ``X-Road-Id``) so the caller can match it
    with what the provider's node logged."""
    assert response.status_code == status, response.text
    assert response.headers["X-Road-Error"] == code
    document = response.json()
    assert document["type"] == code
    assert document["message"]
    uuid.UUID(document["detail"])
    if message_made:
        assert (
            str(uuid.UUID(response.headers["X-Road-Request-Id"]))
            == (response.headers["X-Road-Request-Id"])
        )
        assert response.headers["X-Road-Id"].startswith("DE-NRW-")
    else:
        assert "X-Road-Request-Id" not in response.headers


@contextlib.contextmanager
def failing_log(path: Path) -> Iterator[None]:
    """Make every insert into the node's message log fail, from outside the node."""
    with contextlib.closing(sqlite3.connect(path, timeout=10, isolation_level=None)) as conn:
        conn.execute(
            "CREATE TRIGGER disk_on_fire BEFORE INSERT ON message_log "
            "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;"
        )
    try:
        yield
    finally:
        with contextlib.closing(sqlite3.connect(path, timeout=10, isolation_level=None)) as conn:
            conn.execute("DROP TRIGGER IF EXISTS disk_on_fire")


def logged_kinds(net: LocalNet, ags: str, message_id: str) -> list[tuple[str, str]]:
    return [
        (e.role, e.kind) for e in read_entries(net.nodes[ags].messagelog, message_id=message_id)
    ]


# ---------------------------------------------------------------- message log failures


def test_provider_messagelog_failure(net: LocalNet, registry: RecordingRegistry) -> None:
    soest, lippstadt = net.nodes[SOEST.ags].messagelog, net.nodes[LIPPSTADT.ags].messagelog
    before = (count_entries(soest), count_entries(lippstadt))
    calls = registry.count()
    with failing_log(lippstadt):
        response = call(net)
    assert_error(response, 500, "server.serverproxy.messagelog_failed")
    assert (count_entries(soest), count_entries(lippstadt)) == before
    # ADR 0004: the provider calls the registry first and commits request and response
    # together afterwards, so the registry was called once (and never retried).
    assert registry.count() == calls + 1

    recovered = call(net)
    assert recovered.status_code == 200, recovered.text
    message_id = recovered.headers["X-Road-Request-Id"]
    assert logged_kinds(net, LIPPSTADT.ags, message_id) == [
        ("provider", "request"),
        ("provider", "response"),
    ]
    assert registry.count() == calls + 2


def test_consumer_messagelog_failure(net: LocalNet, registry: RecordingRegistry) -> None:
    soest, lippstadt = net.nodes[SOEST.ags].messagelog, net.nodes[LIPPSTADT.ags].messagelog
    soest_before, lippstadt_before = count_entries(soest), count_entries(lippstadt)
    with failing_log(soest):
        response = call(net)
    assert_error(response, 500, "server.clientproxy.messagelog_failed")
    assert count_entries(soest) == soest_before
    # The provider answered and logged its side; the consumer's side has nothing for it.
    assert count_entries(lippstadt) == lippstadt_before + 2
    provider_side = read_entries(lippstadt)[-2:]
    assert [(e.role, e.kind) for e in provider_side] == [
        ("provider", "request"),
        ("provider", "response"),
    ]
    assert provider_side[0].message_id == provider_side[1].message_id
    # The caller can name the exchange the provider logged.
    assert provider_side[0].message_id == response.headers["X-Road-Request-Id"]
    assert logged_kinds(net, SOEST.ags, provider_side[0].message_id) == []

    recovered = call(net)
    assert recovered.status_code == 200, recovered.text
    assert logged_kinds(net, SOEST.ags, recovered.headers["X-Road-Request-Id"]) == [
        ("consumer", "request"),
        ("consumer", "response"),
    ]


def test_provider_node_down(net: LocalNet) -> None:
    """Iserlohn is registered but its node does not run: the refusal says which node
    address failed and why, with no object reprs, and names the message it made."""
    iserlohn = net.nodes[ISERLOHN.ags]
    response = call(net, ISERLOHN.subsystem("buergerbuero").service("auskunft"))
    assert_error(response, 500, "server.clientproxy.network_error")
    message = response.json()["message"]
    assert iserlohn.peer_url in message, message
    assert "connection refused" in message, message
    assert "object at 0x" not in message and "SSLContext" not in message, message


# ---------------------------------------------------------------- registry faults, limits


@pytest.fixture(scope="module")
def limited(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    """Soest and Lippstadt with a slow and an unreachable service and a 1 KiB body limit."""
    federation = LocalNet.create(
        tmp_path_factory.mktemp("limited"), [SOEST, LIPPSTADT], datetime.now(UTC)
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
    federation.add_service(slow_service(registry, timeout_seconds=0.5))
    federation.add_service(
        ServiceSpec(
            id=UNREACHABLE,
            url=f"http://127.0.0.1:{free_port()}/personen",
            openapi_url=None,
            allowed=(GEWERBEAMT,),
        )
    )
    federation.write_configs(extra={"max_body_bytes": MAX_BODY})
    try:
        federation.start_node(SOEST.ags)
        federation.start_node(LIPPSTADT.ags)
        yield federation
    finally:
        federation.stop()


def _unanswered_request_logged(
    net: LocalNet, before: tuple[int, int], response: httpx.Response
) -> None:
    """Section 8, step 14: a failed registry call still logs the provider's request,
    under the message id the refusal gave the caller."""
    soest, lippstadt = net.nodes[SOEST.ags].messagelog, net.nodes[LIPPSTADT.ags].messagelog
    assert count_entries(soest) == before[0]
    assert count_entries(lippstadt) == before[1] + 1
    (entry,) = read_entries(lippstadt)[-1:]
    assert (entry.role, entry.kind) == ("provider", "request")
    assert entry.message_id == response.headers["X-Road-Request-Id"]
    assert entry.xroad_id == response.headers["X-Road-Id"]
    assert logged_kinds(net, SOEST.ags, entry.message_id) == []


def _counts(net: LocalNet) -> tuple[int, int]:
    return (
        count_entries(net.nodes[SOEST.ags].messagelog),
        count_entries(net.nodes[LIPPSTADT.ags].messagelog),
    )


def test_registry_timeout(limited: LocalNet, registry: RecordingRegistry) -> None:
    before, calls = _counts(limited), registry.count()
    response = call(limited, SLOW)
    assert_error(response, 500, "server.serverproxy.service_failed.timeout")
    assert registry.count() == calls + 1
    assert registry.calls[-1].path.startswith("/langsam")
    _unanswered_request_logged(limited, before, response)


def test_registry_down(limited: LocalNet, registry: RecordingRegistry) -> None:
    before, calls = _counts(limited), registry.count()
    response = call(limited, UNREACHABLE)
    assert_error(response, 500, "server.serverproxy.service_failed.network_error")
    assert registry.count() == calls
    _unanswered_request_logged(limited, before, response)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        pytest.param("/viele-header", f"over the limit of {MAX_HEADERS}", id="count"),
        pytest.param("/langer-name", f"over the limit of {MAX_HEADER_NAME}", id="name"),
        pytest.param("/langer-wert", f"over the limit of {MAX_HEADER_VALUE}", id="value"),
        pytest.param("/grosse-header", f"over the limit of {MAX_ENVELOPE}", id="envelope"),
        pytest.param("/euro-zeichen", "has a forbidden character", id="character"),
    ],
)
def test_registry_headers_the_signed_response_cannot_carry(
    net: LocalNet, registry: RecordingRegistry, path: str, reason: str
) -> None:
    """The provider's node checks the response header against the receiver's limits
    before it signs: the registry's fault is the provider's refusal naming the limit,
    not a signed and logged response the consumer's node cannot open."""
    before, calls = _counts(net), registry.count()
    response = call(net, f"{SERVICE}{path}")
    assert_error(response, 500, "server.serverproxy.service_failed.invalid_response")
    message = response.json()["message"]
    assert str(SERVICE) in message
    assert reason in message
    assert registry.count() == calls + 1
    assert registry.calls[-1].path == f"/personen{path}"
    _unanswered_request_logged(net, before, response)


def test_body_at_the_limit_reaches_the_registry(
    limited: LocalNet, registry: RecordingRegistry
) -> None:
    """The limit is inclusive on both nodes. The recording registry echoes the body, so
    its answer is over the provider's limit in turn: that is the provider's refusal."""
    before, calls = _counts(limited), registry.count()
    response = call(limited, method="POST", content=b"a" * MAX_BODY)
    assert_error(response, 500, "server.serverproxy.service_failed.response_too_large")
    assert registry.count() == calls + 1
    assert registry.calls[-1].body == b"a" * MAX_BODY
    _unanswered_request_logged(limited, before, response)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_body_over_the_limit(limited: LocalNet, registry: RecordingRegistry, framing: str) -> None:
    before, calls = _counts(limited), registry.count()
    body = b"a" * (MAX_BODY + 1)
    content = body if framing == "content-length" else iter([body[:600], body[600:]])
    response = call(limited, method="POST", content=content)
    assert_error(response, 413, "client.request_too_large", message_made=False)
    assert registry.count() == calls
    assert _counts(limited) == before


def test_the_limit_counts_compressed_bytes_as_received(
    limited: LocalNet, registry: RecordingRegistry
) -> None:
    """A gzip body is neither unzipped nor measured unzipped: 8 KiB of text compressed to
    a few dozen bytes is within a 1 KiB limit and reaches the registry as sent."""
    body = gzip.compress(b"a" * 8 * MAX_BODY, mtime=0)
    assert len(body) < MAX_BODY
    before, calls = _counts(limited), registry.count()
    response = call(limited, method="POST", content=body, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert registry.count() == calls + 1
    assert registry.calls[-1].body == body
    assert _counts(limited) == (before[0] + 2, before[1] + 2)


def test_compressed_bytes_over_the_limit_are_refused(
    limited: LocalNet, registry: RecordingRegistry
) -> None:
    before, calls = _counts(limited), registry.count()
    body = bytes(range(256)) * (MAX_BODY // 256) + b"!"  # the node never looks inside
    response = call(limited, method="POST", content=body, headers={"Content-Encoding": "gzip"})
    assert_error(response, 413, "client.request_too_large", message_made=False)
    assert registry.count() == calls
    assert _counts(limited) == before
