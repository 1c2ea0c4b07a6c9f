"""The consumer edge as an X-Road REST client sees it, through two real node processes."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import httpx
import pytest

from gateway.core.envelope import MAX_ENVELOPE, MAX_HEADER_VALUE, MAX_PATH, MAX_QUERY, request_hash
from gateway.core.jws import SignatureVerifier
from gateway.keys.files import load_certificate
from gateway.messagelog import count_entries, read_entries
from gateway.sandbox.localnet import LocalNet
from tests.integration.conftest import (
    DISABLED,
    GEWERBEAMT,
    GZIP_ANSWER,
    LIPPSTADT,
    ORDNUNGSAMT,
    SERVICE,
    SOEST,
    RecordingRegistry,
)

pytestmark = pytest.mark.integration


def call(
    net: LocalNet,
    path: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | Sequence[tuple[bytes, bytes]] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    url = f"{net.nodes[SOEST.ags].consumer_url}{path}"
    return httpx.request(method, url, headers=headers, content=content, timeout=30)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["X-Road-Error"] == code
    body = response.json()
    assert body["type"] == code
    assert body["message"]
    uuid.UUID(body["detail"])


def test_success_path_headers_passthrough_and_both_logs(
    net: LocalNet, registry: RecordingRegistry
) -> None:
    before = registry.count()
    response = call(
        net,
        f"/r1/{SERVICE}/extra/path?familienname=Schmidt&x=%2F1",
        method="POST",
        headers={
            "X-Road-Client": str(GEWERBEAMT),
            "X-Road-Id": "soest-portal-4711",
            "X-Road-UserId": "clerk-07",
            "X-Road-Issue": "GEW-2026-0815",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Custom": "kept",
            "Connection": "keep-alive, X-Drop-Me",
            "X-Drop-Me": "hop-by-hop",
        },
        content=b'{"q": "Anna"}',
    )
    assert response.status_code == 200, response.text
    assert response.headers["X-Road-Id"] == "soest-portal-4711"
    assert response.headers["X-Road-Client"] == str(GEWERBEAMT)
    assert response.headers["X-Road-Service"] == str(SERVICE)
    message_id = response.headers["X-Road-Request-Id"]
    uuid.UUID(message_id)
    assert response.headers["X-Registry"] == "recording"
    assert response.headers["Content-Type"] == "application/json"
    assert "X-Road-Error" not in response.headers
    assert response.json()["echo"] == '{"q": "Anna"}'

    # The registry got exactly one call with path, query, method, body and kept headers.
    assert registry.count() == before + 1
    got = registry.calls[-1]
    assert got.method == "POST"
    assert got.path == "/personen/extra/path?familienname=Schmidt&x=%2F1"
    assert got.body == b'{"q": "Anna"}'
    assert got.headers["x-custom"] == "kept"
    assert got.headers["content-type"] == "application/json"
    assert "x-drop-me" not in got.headers
    # X-Road's headers, from the signed header's fields, and no other X-Road header.
    assert {h: v for h, v in got.headers.items() if h.startswith("x-road-")} == {
        "x-road-client": str(GEWERBEAMT),
        "x-road-id": "soest-portal-4711",
        "x-road-request-id": response.headers["X-Road-Request-Id"],
        "x-road-userid": "clerk-07",
        "x-road-issue": "GEW-2026-0815",
    }

    # Both logs hold both messages, the same signed bytes on each side.
    consumer = read_entries(net.nodes[SOEST.ags].messagelog, message_id=message_id)
    provider = read_entries(net.nodes[LIPPSTADT.ags].messagelog, message_id=message_id)
    assert [(e.role, e.kind) for e in consumer] == [
        ("consumer", "request"),
        ("consumer", "response"),
    ]
    assert [(e.role, e.kind) for e in provider] == [
        ("provider", "request"),
        ("provider", "response"),
    ]
    assert consumer[0].header == provider[0].header
    assert consumer[1].header == provider[1].header
    assert consumer[0].body == provider[0].body == b'{"q": "Anna"}'
    request_header = json.loads(consumer[0].header)
    assert request_header["user_id"] == "clerk-07"
    assert request_header["issue"] == "GEW-2026-0815"
    assert ["x-custom", "kept"] in request_header["headers"]
    assert response.headers["X-Road-Request-Hash"] == request_hash(consumer[0].header)
    digest = base64.b64encode(hashlib.sha512(consumer[0].header).digest()).decode()
    assert response.headers["X-Road-Request-Hash"] == digest
    assert json.loads(consumer[1].header)["request_hash"] == digest
    # Every entry holds a whole JWS that verifies over its header bytes as logged.
    verifier = SignatureVerifier([load_certificate(net.ca_cert)])
    now = datetime.now(UTC)
    signers = [verifier.verify(e.signature, e.header, now).signer for e in consumer + provider]
    assert signers == [SOEST.member, LIPPSTADT.member, SOEST.member, LIPPSTADT.member]


def test_every_exchange_is_in_both_logs(net: LocalNet) -> None:
    ids = []
    for i in range(5):
        response = call(net, f"/r1/{SERVICE}?n={i}", headers={"X-Road-Client": str(GEWERBEAMT)})
        assert response.status_code == 200
        ids.append(response.headers["X-Road-Request-Id"])
    for message_id in ids:
        for ags in (SOEST.ags, LIPPSTADT.ags):
            entries = read_entries(net.nodes[ags].messagelog, message_id=message_id)
            assert sorted(e.kind for e in entries) == ["request", "response"]


def test_generated_xroad_id_when_absent(net: LocalNet) -> None:
    response = call(net, f"/r1/{SERVICE}", headers={"X-Road-Client": str(GEWERBEAMT)})
    assert response.status_code == 200
    assert response.headers["X-Road-Id"].startswith("DE-NRW-")


def test_registry_error_passes_through_unchanged(net: LocalNet) -> None:
    response = call(net, f"/r1/{SERVICE}/fail", headers={"X-Road-Client": str(GEWERBEAMT)})
    assert response.status_code == 503
    assert response.content == b'{"registry":"error"}'
    assert "X-Road-Error" not in response.headers
    message_id = response.headers["X-Road-Request-Id"]
    entries = read_entries(net.nodes[SOEST.ags].messagelog, message_id=message_id)
    assert json.loads(entries[1].header)["status"] == 503


def test_access_denied_without_grant(net: LocalNet, registry: RecordingRegistry) -> None:
    before = registry.count()
    response = call(net, f"/r1/{SERVICE}", headers={"X-Road-Client": str(ORDNUNGSAMT)})
    assert_error(response, 500, "server.serverproxy.access_denied")
    assert registry.count() == before


def test_access_denied_for_method_not_granted(net: LocalNet, registry: RecordingRegistry) -> None:
    before = registry.count()
    response = call(
        net, f"/r1/{SERVICE}", method="DELETE", headers={"X-Road-Client": str(GEWERBEAMT)}
    )
    assert_error(response, 500, "server.serverproxy.access_denied")
    assert registry.count() == before


def test_unknown_service(net: LocalNet, registry: RecordingRegistry) -> None:
    before = registry.count()
    unknown = LIPPSTADT.subsystem("melderegister").service("gibtEsNicht")
    response = call(net, f"/r1/{unknown}", headers={"X-Road-Client": str(GEWERBEAMT)})
    assert_error(response, 500, "server.serverproxy.unknown_service")
    assert registry.count() == before


def test_disabled_service(net: LocalNet, registry: RecordingRegistry) -> None:
    before = registry.count()
    response = call(net, f"/r1/{DISABLED}", headers={"X-Road-Client": str(GEWERBEAMT)})
    assert_error(response, 500, "server.serverproxy.service_disabled")
    assert registry.count() == before


def test_unknown_provider_member(net: LocalNet) -> None:
    response = call(
        net,
        "/r1/DE-NRW/GOV/99999999/nichts/dienst",
        headers={"X-Road-Client": str(GEWERBEAMT)},
    )
    assert_error(response, 500, "server.clientproxy.unknown_member")


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "client.invalid_client_identifier"),
        ({"X-Road-Client": "DE-NRW/GOV"}, "client.invalid_client_identifier"),
        ({"X-Road-Client": "DE-NRW/GOV/05974040/gewerbe amt"}, "client.invalid_client_identifier"),
        (
            {"X-Road-Client": "DE-NRW/ＧＯＶ/05974040/gewerbeamt"},  # noqa: RUF001
            "client.invalid_client_identifier",
        ),
        (
            {"X-Road-Client": "DE-NRW/GOV/05974040%2Fx/gewerbeamt"},
            "client.invalid_client_identifier",
        ),
        ({"X-Road-Client": "DE-NRW/GOV/05974028/melderegister"}, "client.unknown_member"),
    ],
)
def test_bad_client_header(
    net: LocalNet, registry: RecordingRegistry, headers: dict[str, str], code: str
) -> None:
    before = registry.count()
    encoded = [(k.encode(), v.encode("utf-8")) for k, v in headers.items()]
    response = call(net, f"/r1/{SERVICE}", headers=encoded)
    assert_error(response, 400, code)
    assert registry.count() == before


def test_last_client_header_wins(net: LocalNet) -> None:
    url = f"{net.nodes[SOEST.ags].consumer_url}/r1/{SERVICE}"
    response = httpx.get(
        url,
        headers=[("X-Road-Client", str(ORDNUNGSAMT)), ("X-Road-Client", str(GEWERBEAMT))],
        timeout=30,
    )
    assert response.status_code == 200
    assert response.headers["X-Road-Client"] == str(GEWERBEAMT)


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/r2/DE-NRW/GOV/05974028/melderegister/einfacheAuskunft", "client.bad_request"),
        ("/r1/DE-NRW/GOV/05974028/melderegister", "client.bad_request"),
        ("/r1/DE-NRW/GOV/05974028/melde%20register/x", "client.invalid_service_identifier"),
        ("/r1/DE-NRW/GOV/05974028/melderegister/einfacheAuskunft/../admin", "client.bad_request"),
        ("/r1/DE-NRW/GOV/05974028/melderegister/einfacheAuskunft/%2e%2e/x", "client.bad_request"),
    ],
)
def test_bad_paths(net: LocalNet, path: str, code: str) -> None:
    import socket

    # httpx would normalise dot segments, so send the request line as written.
    port = int(net.nodes[SOEST.ags].consumer_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Road-Client: {GEWERBEAMT}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400", raw
    assert f"x-road-error: {code}".encode() in head.lower()
    assert json.loads(body)["type"] == code


def test_non_ascii_user_id_is_refused(net: LocalNet) -> None:
    response = call(
        net,
        f"/r1/{SERVICE}",
        headers=[
            (b"X-Road-Client", str(GEWERBEAMT).encode()),
            (b"X-Road-UserId", "a\u00e4b".encode()),
        ],
    )
    assert_error(response, 400, "client.bad_request")


def test_xroad_headers_reach_the_registry_exactly_as_sent(
    net: LocalNet, registry: RecordingRegistry
) -> None:
    """X-Road's six headers reach the provider's information system as the client sent
    them (the request id as the consumer's node made it), signed and logged on both
    sides; a client's other ``X-Road-*`` headers do not."""
    sent = {
        "X-Road-Client": str(GEWERBEAMT),
        "X-Road-Id": "soest-gewerbe-2026-0007",
        "X-Road-UserId": "DE/sachbearbeiterin-3",
        "X-Road-Issue": "GA-2026/0815 (Ummeldung)",
        "X-Road-Represented-Party": "COM/HRB4711",
    }
    before = registry.count()
    response = call(
        net,
        f"/r1/{SERVICE}?familienname=Schmidt",
        headers={**sent, "X-Road-Something-Else": "not forwarded"},
    )
    assert response.status_code == 200, response.text
    message_id = response.headers["X-Road-Request-Id"]
    assert registry.count() == before + 1
    got = registry.calls[-1].headers
    assert {h: v for h, v in got.items() if h.startswith("x-road-")} == {
        **{name.lower(): value for name, value in sent.items()},
        "x-road-request-id": message_id,
    }
    consumer = read_entries(net.nodes[SOEST.ags].messagelog, message_id=message_id)
    provider = read_entries(net.nodes[LIPPSTADT.ags].messagelog, message_id=message_id)
    assert consumer[0].header == provider[0].header
    assert json.loads(provider[0].header)["represented_party"] == "COM/HRB4711"


@pytest.mark.parametrize(
    "party",
    [
        "COM/HRB 4711",
        "COM/HRB4711/extra",
        "COM/",
        "/HRB4711",
        "COM/HRB4711\tX-Road-Client: x",
        "COM/" + "1" * 300,
    ],
)
def test_bad_represented_party_is_refused_at_the_consumer_edge(
    net: LocalNet, registry: RecordingRegistry, party: str
) -> None:
    before = registry.count()
    response = call(
        net,
        f"/r1/{SERVICE}",
        headers={"X-Road-Client": str(GEWERBEAMT), "X-Road-Represented-Party": party},
    )
    assert_error(response, 400, "client.bad_request")
    assert "X-Road-Represented-Party" in response.json()["message"]
    assert registry.count() == before


def test_error_as_xml_when_asked(net: LocalNet) -> None:
    response = call(net, f"/r1/{SERVICE}", headers={"Accept": "application/xml"})
    assert response.status_code == 400
    assert response.headers["X-Road-Error"] == "client.invalid_client_identifier"
    assert response.text.startswith("<error><type>client.invalid_client_identifier</type>")


def test_list_clients(net: LocalNet) -> None:
    response = call(net, "/listClients", headers={"Accept": "application/json"})
    assert response.status_code == 200
    ids = {
        (m["id"]["member_code"], m["id"].get("subsystem_code"), m["id"]["object_type"])
        for m in response.json()["member"]
    }
    assert ("05974040", None, "MEMBER") in ids
    assert ("05974040", "gewerbeamt", "SUBSYSTEM") in ids
    assert ("05974028", "melderegister", "SUBSYSTEM") in ids
    xml = call(net, "/listClients")
    assert xml.headers["Content-Type"].startswith("application/xml")
    assert "<subsystem_code>melderegister</subsystem_code>" in xml.text


def test_list_methods_and_allowed_methods(net: LocalNet) -> None:
    provider = LIPPSTADT.subsystem("melderegister")
    listed = call(net, f"/r1/{provider}/listMethods", headers={"X-Road-Client": str(ORDNUNGSAMT)})
    assert listed.status_code == 200, listed.text
    codes = {s["service_code"] for s in listed.json()["service"]}
    assert codes == {"einfacheAuskunft", "abgeschaltet"}
    allowed = call(
        net, f"/r1/{provider}/allowedMethods", headers={"X-Road-Client": str(ORDNUNGSAMT)}
    )
    assert allowed.json() == {"service": []}
    allowed = call(
        net, f"/r1/{provider}/allowedMethods", headers={"X-Road-Client": str(GEWERBEAMT)}
    )
    services = allowed.json()["service"]
    assert {s["service_code"] for s in services} == {"einfacheAuskunft", "abgeschaltet"}
    entry = next(s for s in services if s["service_code"] == "einfacheAuskunft")
    assert {"method": "GET", "path": "/**"} in entry["endpoint_list"]
    assert entry["object_type"] == "SERVICE"
    assert entry["xroad_instance"] == "DE-NRW"


def test_redirects_are_not_followed(net: LocalNet, registry: RecordingRegistry) -> None:
    before = registry.count()
    response = httpx.get(
        f"{net.nodes[SOEST.ags].consumer_url}/r1/{SERVICE}/redirect",
        headers={"X-Road-Client": str(GEWERBEAMT)},
        timeout=30,
        follow_redirects=False,
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "http://127.0.0.1:1/elsewhere"
    assert registry.count() == before + 1


def _logged_bodies(net: LocalNet, message_id: str) -> dict[tuple[str, str], bytes]:
    """(role, kind) to the body logged for one exchange, on both nodes."""
    return {
        (e.role, e.kind): e.body
        for ags in (SOEST.ags, LIPPSTADT.ags)
        for e in read_entries(net.nodes[ags].messagelog, message_id=message_id)
    }


def test_a_compressed_request_is_signed_relayed_and_logged_as_sent(
    net: LocalNet, registry: RecordingRegistry
) -> None:
    """``Content-Encoding: gzip`` is the client's business: the nodes neither unzip nor
    re-zip, so the signed digest and both logs hold the bytes the client sent."""
    sent = gzip.compress(b'{"familienname":"Schmidt","vornamen":"Anna"}', mtime=0)
    before = registry.count()
    response = call(
        net,
        f"/r1/{SERVICE}/komprimiert",
        method="POST",
        headers={
            "X-Road-Client": str(GEWERBEAMT),
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
        content=sent,
    )
    assert response.status_code == 200, response.text
    assert registry.count() == before + 1
    got = registry.calls[-1]
    assert got.body == sent
    assert got.headers["content-encoding"] == "gzip"
    assert got.headers["content-length"] == str(len(sent))
    message_id = response.headers["X-Road-Request-Id"]
    bodies = _logged_bodies(net, message_id)
    assert bodies[("consumer", "request")] == bodies[("provider", "request")] == sent
    header = json.loads(
        read_entries(net.nodes[SOEST.ags].messagelog, message_id=message_id)[0].header
    )
    assert header["body_length"] == len(sent)
    assert ["content-encoding", "gzip"] in header["headers"]


def test_a_compressed_response_reaches_the_client_as_the_registry_sent_it(
    net: LocalNet, registry: RecordingRegistry
) -> None:
    url = f"{net.nodes[SOEST.ags].consumer_url}/r1/{SERVICE}/gzip"
    headers = {"X-Road-Client": str(GEWERBEAMT), "Accept-Encoding": "gzip"}
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        raw = b"".join(response.iter_raw())  # the bytes on the wire, not decoded
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert raw == GZIP_ANSWER
    assert registry.calls[-1].headers["accept-encoding"] == "gzip"
    bodies = _logged_bodies(net, response.headers["X-Road-Request-Id"])
    assert bodies[("consumer", "response")] == bodies[("provider", "response")] == GZIP_ANSWER


@pytest.mark.parametrize(
    ("path", "headers", "limit"),
    [
        pytest.param("?q=" + "a" * (MAX_QUERY - 1), {}, MAX_QUERY, id="query"),
        pytest.param("/" + "a" * MAX_PATH, {}, MAX_PATH, id="sub-path"),
        pytest.param(
            "", {"X-Gross": "a" * (MAX_HEADER_VALUE + 1)}, MAX_HEADER_VALUE, id="header-value"
        ),
        pytest.param(
            "", {f"X-Gross-{i}": "a" * 4096 for i in range(16)}, MAX_ENVELOPE, id="envelope"
        ),
    ],
)
def test_an_oversize_request_is_the_callers_mistake(
    net: LocalNet, registry: RecordingRegistry, path: str, headers: dict[str, str], limit: int
) -> None:
    """Refused by the consumer's node before signing, naming the limit; nothing is sent
    to the provider's node, called or logged."""
    logs = [net.nodes[ags].messagelog for ags in (SOEST.ags, LIPPSTADT.ags)]
    before, calls = [count_entries(p) for p in logs], registry.count()
    response = call(
        net, f"/r1/{SERVICE}{path}", headers={"X-Road-Client": str(GEWERBEAMT), **headers}
    )
    assert_error(response, 400, "client.bad_request")
    assert f"over the limit of {limit}" in response.json()["message"]
    assert registry.count() == calls
    assert [count_entries(p) for p in logs] == before


def test_a_large_body_each_way_is_relayed_and_logged_byte_for_byte(
    net: LocalNet, registry: RecordingRegistry
) -> None:
    """Bodies over the bound at which a node commits on its log's writer thread instead
    of its event loop (ADR 0075), and over the segment files' threshold (ADR 0071): the
    registry gets the request's bytes, the client the registry's answer, and each node's
    log holds both bodies exactly as they went, once the answer is back."""
    from gateway.messagelog.inline_commit import INLINE_BODY_BYTES

    alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789"
    body = bytes(alphabet[b % len(alphabet)] for b in hashlib.shake_256(b"x").digest(300_000))
    assert len(body) >= INLINE_BODY_BYTES
    response = call(
        net,
        f"/r1/{SERVICE}",
        method="POST",
        headers={"X-Road-Client": str(GEWERBEAMT), "Content-Type": "text/plain"},
        content=body,
    )
    assert response.status_code == 200, response.text
    assert registry.calls[-1].body == body
    answer = response.content
    assert json.loads(answer)["echo"].encode("latin-1") == body
    assert len(answer) >= INLINE_BODY_BYTES
    message_id = response.headers["X-Road-Request-Id"]
    for ags in (SOEST.ags, LIPPSTADT.ags):
        entries = read_entries(net.nodes[ags].messagelog, message_id=message_id)
        assert {e.kind: e.body for e in entries} == {"request": body, "response": answer}
