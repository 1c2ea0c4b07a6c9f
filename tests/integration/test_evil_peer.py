"""A peer holding valid, registered keys sends hand-built messages to Lippstadt's node.

Bytes inside TLS cannot be altered in flight, so tampering is modelled by a peer that
builds its own messages. Every refusal must come before the registry is called.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import ssl
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.x509 import ocsp

from gateway.core.encoding import b64url, b64url_decode, format_time
from gateway.core.envelope import EnvelopeError, RequestHeader, body_sha256
from gateway.core.ids import ClientId, ServiceId
from gateway.core.jws import Signer
from gateway.keys.files import (
    load_certificate,
    load_private_key,
    write_certificate,
    write_private_key,
)
from gateway.messagelog import read_entries
from gateway.node.wire import AUTH_OCSP_HEADER, SIGN_OCSP_HEADER
from gateway.pki.ca import (
    create_root_ca,
    issue_certificate,
    issue_service_certificate,
    make_csr,
    make_service_csr,
)
from gateway.pki.keys import generate_key
from gateway.pki.profiles import CertKind, ServiceKind
from gateway.sandbox.localnet import LocalNet
from tests.integration.conftest import (
    GEWERBEAMT,
    ISERLOHN,
    LIPPSTADT,
    SERVICE,
    SOEST,
    RecordingRegistry,
    craft_ocsp,
    fetch_ocsp,
)

pytestmark = pytest.mark.integration


def tls_context(cert: Path, key: Path, ca: Path, passphrase: bytes | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key, password=passphrase)
    return ctx


def signer_of(net: LocalNet, ags: str) -> Signer:
    files = net.nodes[ags]
    return Signer(
        files.city.member,
        load_private_key(files.directory / "sign.key", files.passphrase),
        [load_certificate(files.sign_cert)],
    )


def request_header(
    client: ClientId = GEWERBEAMT,
    service: ServiceId = SERVICE,
    body: bytes = b"",
    created: datetime | None = None,
    method: str = "GET",
) -> RequestHeader:
    return RequestHeader(
        message_id=str(uuid.uuid4()),
        xroad_id="evil-1",
        client=client,
        service=service,
        method=method,
        path="",
        query="familienname=Schmidt",
        headers=(("accept", "application/json"),),
        user_id=None,
        issue=None,
        created=format_time(created or datetime.now(UTC)),
        body_sha256=body_sha256(body),
        body_length=len(body),
    )


_OCSP: dict[tuple[Path, bytes], str] = {}


def ocsp_of(net: LocalNet, cert: x509.Certificate) -> str:
    """The responder's current answer for ``cert`` as a header value, fetched once per
    module (it stays fresh for the responder's default hour)."""
    key = (net.root, cert.tbs_certificate_bytes)
    if key not in _OCSP:
        _OCSP[key] = b64url(fetch_ocsp(net, cert))
    return _OCSP[key]


def _signing_cert(signature: str) -> x509.Certificate | None:
    """The first x5c certificate of a JWS, if it has one that parses."""
    try:
        header = json.loads(b64url_decode(signature.split(".")[0]))
        return x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    except (EnvelopeError, ValueError, KeyError, IndexError, TypeError, binascii.Error):
        return None


def send(
    net: LocalNet,
    as_ags: str,
    envelope: bytes,
    signature: str,
    body: bytes = b"",
    *,
    ocsp: dict[str, str] | None = None,
) -> httpx.Response:
    """POST a raw message to Lippstadt's peer port with ``as_ags``'s auth certificate.

    Unless ``ocsp`` gives the OCSP headers, the message carries what an honest node
    would: the responder's answers for ``as_ags``'s auth certificate and the signer's.
    """
    files = net.nodes[as_ags]
    headers = {"X-Gw-Envelope": b64url(envelope), "X-Gw-Signature": signature}
    if ocsp is None:
        headers[AUTH_OCSP_HEADER] = ocsp_of(net, load_certificate(files.auth_cert))
        cert = _signing_cert(signature)
        if cert is not None:
            headers[SIGN_OCSP_HEADER] = ocsp_of(net, cert)
    else:
        headers.update(ocsp)
    ctx = tls_context(files.auth_cert, files.directory / "auth.key", net.ca_cert, files.passphrase)
    with httpx.Client(verify=ctx, timeout=30) as client:
        return client.post(
            f"{net.nodes[LIPPSTADT.ags].peer_url}/gw/v1/exchange", headers=headers, content=body
        )


def refused(response: httpx.Response, code: str) -> None:
    assert response.status_code == 500, response.text
    assert response.headers["X-Road-Error"] == code
    assert response.json()["type"] == code


def test_valid_hand_built_message_is_accepted(net: LocalNet, registry: RecordingRegistry) -> None:
    """The control case: the same machinery, untampered, gets through."""
    before = registry.count()
    header = request_header()
    data = header.to_bytes()
    response = send(net, SOEST.ags, data, signer_of(net, SOEST.ags).sign(data))
    assert response.status_code == 200, response.text
    assert "X-Gw-Signature" in response.headers
    assert registry.count() == before + 1


def test_signed_xroad_headers_never_reach_the_registry(
    net: LocalNet, registry: RecordingRegistry
) -> None:
    """A node that signs ``X-Road-*`` names among the end-to-end headers cannot make the
    registry see another client: it gets X-Road's headers from the signed fields only."""
    before = registry.count()
    header = dataclasses.replace(
        request_header(),
        headers=(
            ("accept", "application/json"),
            ("x-road-client", "DE-NRW/GOV/05974040/ordnungsamt"),
            ("x-road-represented-party", "COM/HRB0001"),
        ),
    )
    data = header.to_bytes()
    response = send(net, SOEST.ags, data, signer_of(net, SOEST.ags).sign(data))
    assert response.status_code == 200, response.text
    assert registry.count() == before + 1
    got = registry.calls[-1].headers
    assert got["x-road-client"] == str(GEWERBEAMT)
    assert "x-road-represented-party" not in got
    assert got["accept"] == "application/json"


def test_tampered_body_is_refused(net: LocalNet, registry: RecordingRegistry) -> None:
    before = registry.count()
    body = b'{"query": "Anna"}'
    header = request_header(body=body, method="POST")
    data = header.to_bytes()
    signature = signer_of(net, SOEST.ags).sign(data)
    response = send(net, SOEST.ags, data, signature, b'{"query": "Bnna"}')
    refused(response, "server.serverproxy.invalid_signature_value")
    assert registry.count() == before


@pytest.mark.parametrize("field", ["service", "client", "message_id", "query", "method"])
def test_tampered_header_field_is_refused(
    net: LocalNet, registry: RecordingRegistry, field: str
) -> None:
    before = registry.count()
    header = request_header()
    signature = signer_of(net, SOEST.ags).sign(header.to_bytes())
    changes: dict[str, object] = {
        "service": LIPPSTADT.subsystem("melderegister").service("abgeschaltet"),
        "client": SOEST.subsystem("ordnungsamt"),
        "message_id": str(uuid.uuid4()),
        "query": "familienname=Krueger",
        "method": "POST",
    }
    tampered = dataclasses.replace(header, **{field: changes[field]})  # type: ignore[arg-type]
    response = send(net, SOEST.ags, tampered.to_bytes(), signature)
    refused(response, "server.serverproxy.invalid_signature_value")
    assert registry.count() == before


def test_flipped_signature_byte_is_refused(net: LocalNet, registry: RecordingRegistry) -> None:
    before = registry.count()
    data = request_header().to_bytes()
    signature = signer_of(net, SOEST.ags).sign(data)
    flipped = signature[:-5] + ("A" if signature[-5] != "A" else "B") + signature[-4:]
    refused(send(net, SOEST.ags, data, flipped), "server.serverproxy.invalid_signature_value")
    assert registry.count() == before


def test_replayed_message_is_refused(net: LocalNet, registry: RecordingRegistry) -> None:
    before = registry.count()
    data = request_header().to_bytes()
    signature = signer_of(net, SOEST.ags).sign(data)
    assert send(net, SOEST.ags, data, signature).status_code == 200
    refused(send(net, SOEST.ags, data, signature), "server.serverproxy.replay_detected")
    assert registry.count() == before + 1


def test_message_outside_the_window_is_refused(net: LocalNet, registry: RecordingRegistry) -> None:
    before = registry.count()
    for created in (
        datetime.now(UTC) - timedelta(seconds=301),
        datetime.now(UTC) + timedelta(seconds=301),
    ):
        data = request_header(created=created).to_bytes()
        response = send(net, SOEST.ags, data, signer_of(net, SOEST.ags).sign(data))
        refused(response, "server.serverproxy.message_expired")
    assert registry.count() == before


def test_resigned_by_another_member_is_refused(net: LocalNet, registry: RecordingRegistry) -> None:
    """Soest's node sends Soest's client, but the signature is Iserlohn's."""
    before = registry.count()
    data = request_header().to_bytes()
    response = send(net, SOEST.ags, data, signer_of(net, ISERLOHN.ags).sign(data))
    refused(response, "server.serverproxy.signer_mismatch")
    assert registry.count() == before


def test_node_relaying_a_client_it_does_not_host_is_refused(
    net: LocalNet, registry: RecordingRegistry
) -> None:
    """Iserlohn's node (registered, valid cert) re-sends Soest's signed request."""
    before = registry.count()
    data = request_header().to_bytes()
    response = send(net, ISERLOHN.ags, data, signer_of(net, SOEST.ags).sign(data))
    refused(response, "server.serverproxy.ssl_authentication_failed")
    assert registry.count() == before


def test_own_member_signature_for_a_foreign_client(
    net: LocalNet, registry: RecordingRegistry
) -> None:
    """Iserlohn signs with its own key but claims Soest's client over its own node."""
    before = registry.count()
    data = request_header().to_bytes()
    response = send(net, ISERLOHN.ags, data, signer_of(net, ISERLOHN.ags).sign(data))
    refused(response, "server.serverproxy.ssl_authentication_failed")
    assert registry.count() == before


def test_malformed_envelopes(net: LocalNet, registry: RecordingRegistry) -> None:
    before = registry.count()
    signer = signer_of(net, SOEST.ags)
    good = request_header().to_bytes()
    not_canonical = good.replace(b'{"body_length"', b'{ "body_length"', 1)
    duplicate = good.replace(b'{"body_length":0', b'{"body_length":0,"body_length":0', 1)
    for data in (b"not json", not_canonical, duplicate, good + b" "):
        response = send(net, SOEST.ags, data, signer.sign(data))
        refused(response, "server.serverproxy.invalid_message")
    files = net.nodes[SOEST.ags]
    ctx = tls_context(files.auth_cert, files.directory / "auth.key", net.ca_cert, files.passphrase)
    auth_ocsp = {AUTH_OCSP_HEADER: ocsp_of(net, load_certificate(files.auth_cert))}
    with httpx.Client(verify=ctx, timeout=30) as client:
        response = client.post(
            f"{net.nodes[LIPPSTADT.ags].peer_url}/gw/v1/exchange", headers=auth_ocsp
        )
    refused(response, "server.serverproxy.invalid_message")
    assert registry.count() == before


def test_refusals_are_not_logged_as_exchanges(net: LocalNet) -> None:
    data = request_header().to_bytes()
    header = RequestHeader.from_bytes(data)
    send(net, SOEST.ags, data, signer_of(net, ISERLOHN.ags).sign(data))
    assert read_entries(net.nodes[LIPPSTADT.ags].messagelog, message_id=header.message_id) == []


# ---------------------------------------------------------------- OCSP of the sender


def honest_ocsp(net: LocalNet) -> dict[str, str]:
    """The OCSP headers Soest's node sends when it signs as Soest."""
    files = net.nodes[SOEST.ags]
    return {
        AUTH_OCSP_HEADER: ocsp_of(net, load_certificate(files.auth_cert)),
        SIGN_OCSP_HEADER: ocsp_of(net, load_certificate(files.sign_cert)),
    }


def refused_for_ocsp(
    net: LocalNet, registry: RecordingRegistry, ocsp_headers: dict[str, str], *words: str
) -> None:
    """Soest's honestly signed request with these OCSP headers: refused as
    ``cert_validation`` naming ``words``, before the registry and the log."""
    before = registry.count()
    header = request_header()
    data = header.to_bytes()
    response = send(net, SOEST.ags, data, signer_of(net, SOEST.ags).sign(data), ocsp=ocsp_headers)
    refused(response, "server.serverproxy.cert_validation")
    message = response.json()["message"]
    for word in words:
        assert word in message, message
    assert registry.count() == before
    assert read_entries(net.nodes[LIPPSTADT.ags].messagelog, message_id=header.message_id) == []


def test_request_with_honest_ocsp_is_accepted(net: LocalNet, registry: RecordingRegistry) -> None:
    """The control case for the refusals below: the same headers, unchanged."""
    data = request_header().to_bytes()
    response = send(
        net, SOEST.ags, data, signer_of(net, SOEST.ags).sign(data), ocsp=honest_ocsp(net)
    )
    assert response.status_code == 200, response.text
    # The provider's answer carries its own two responses.
    assert response.headers[SIGN_OCSP_HEADER] and response.headers[AUTH_OCSP_HEADER]


@pytest.mark.parametrize("header", [SIGN_OCSP_HEADER, AUTH_OCSP_HEADER])
def test_request_without_ocsp_is_refused(
    net: LocalNet, registry: RecordingRegistry, header: str
) -> None:
    headers = honest_ocsp(net)
    del headers[header]
    refused_for_ocsp(net, registry, headers, header, "missing")


def test_request_with_ocsp_for_the_wrong_certificate_is_refused(
    net: LocalNet, registry: RecordingRegistry
) -> None:
    honest = honest_ocsp(net)
    swapped = {
        SIGN_OCSP_HEADER: honest[AUTH_OCSP_HEADER],
        AUTH_OCSP_HEADER: honest[AUTH_OCSP_HEADER],
    }
    refused_for_ocsp(net, registry, swapped, "signing certificate", "wrong_certificate")


@pytest.mark.parametrize("forger", ["member-signing-key", "rogue-ca-responder"])
def test_forged_ocsp_is_refused(
    net: LocalNet, registry: RecordingRegistry, tmp_path: Path, forger: str
) -> None:
    """A "good" status not signed by the CA or a responder it delegated: once with a
    key whose certificate the CA did issue (Iserlohn's signing key), once with an OCSP
    responder certificate from another CA that copies our CA's name."""
    if forger == "member-signing-key":
        iserlohn = net.nodes[ISERLOHN.ags]
        signed_by = (iserlohn.sign_cert, iserlohn.directory / "sign.key")
        passphrase: bytes | None = iserlohn.passphrase
    else:
        now = datetime.now(UTC)
        rogue_key, key = generate_key(), generate_key()
        ca_name = load_certificate(net.ca_cert).subject.rfc4514_string().removeprefix("CN=")
        rogue_ca = create_root_ca(ca_name, rogue_key, now)
        cert = issue_service_certificate(
            make_service_csr(key, "OCSP responder"), ServiceKind.OCSP, rogue_key, rogue_ca, now, 30
        )
        write_certificate(tmp_path / "forger.pem", cert)
        write_private_key(tmp_path / "forger.key", key)
        signed_by = (tmp_path / "forger.pem", tmp_path / "forger.key")
        passphrase = None
    forged = craft_ocsp(
        net,
        load_certificate(net.nodes[SOEST.ags].sign_cert),
        signed_by=signed_by,
        passphrase=passphrase,
    )
    headers = {**honest_ocsp(net), SIGN_OCSP_HEADER: b64url(forged)}
    refused_for_ocsp(net, registry, headers, "unauthorised_responder")


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("revoked", "revoked"),
        ("unknown", "unknown"),
        ("stale", "stale"),
        ("future-dated", "not_yet_valid"),
        ("expired", "expired"),
    ],
)
@pytest.mark.parametrize("which", ["sign", "auth"])
def test_ocsp_that_is_not_good_now_is_refused(
    net: LocalNet, registry: RecordingRegistry, case: str, reason: str, which: str
) -> None:
    """Correctly signed by the CA's responder, but not a good status at this moment."""
    now = datetime.now(UTC).replace(microsecond=0)
    cases: dict[str, dict[str, Any]] = {
        "revoked": {"status": ocsp.OCSPCertStatus.REVOKED},
        "unknown": {"status": ocsp.OCSPCertStatus.UNKNOWN},
        "stale": {"this_update": now - timedelta(seconds=3601)},
        "future-dated": {"this_update": now + timedelta(minutes=5)},
        "expired": {
            "this_update": now - timedelta(minutes=30),
            "next_update": now - timedelta(minutes=1),
        },
    }
    files = net.nodes[SOEST.ags]
    cert = files.sign_cert if which == "sign" else files.auth_cert
    header = SIGN_OCSP_HEADER if which == "sign" else AUTH_OCSP_HEADER
    der = craft_ocsp(net, load_certificate(cert), **cases[case])
    what = "signing certificate" if which == "sign" else "authentication certificate"
    refused_for_ocsp(net, registry, {**honest_ocsp(net), header: b64url(der)}, what, reason)


# ---------------------------------------------------------------- TLS layer


def _rogue(tmp_path: Path, net: LocalNet) -> tuple[Path, Path]:
    """An auth certificate for Soest's node id, but from a CA nobody trusts."""
    now = datetime.now(UTC)
    ca_key = generate_key()
    ca_cert = create_root_ca("Rogue CA", ca_key, now)
    key = generate_key()
    cert = issue_certificate(
        make_csr(key, CertKind.AUTH, SOEST.node), CertKind.AUTH, ca_key, ca_cert, now
    )
    write_private_key(tmp_path / "rogue.key", key)
    write_certificate(tmp_path / "rogue.pem", cert)
    return tmp_path / "rogue.pem", tmp_path / "rogue.key"


def test_certificate_from_another_ca_fails_the_handshake(
    net: LocalNet, registry: RecordingRegistry, tmp_path: Path
) -> None:
    before = registry.count()
    cert, key = _rogue(tmp_path, net)
    data = request_header().to_bytes()
    ctx = tls_context(cert, key, net.ca_cert)
    with httpx.Client(verify=ctx, timeout=30) as client, pytest.raises(httpx.HTTPError):
        client.post(
            f"{net.nodes[LIPPSTADT.ags].peer_url}/gw/v1/exchange",
            headers={
                "X-Gw-Envelope": b64url(data),
                "X-Gw-Signature": signer_of(net, SOEST.ags).sign(data),
            },
        )
    assert registry.count() == before


def _s_client(
    net: LocalNet, cert: Path, key: Path, pass_file: Path | None = None
) -> subprocess.CompletedProcess[str]:
    host_port = net.nodes[LIPPSTADT.ags].peer_url.removeprefix("https://")
    key_pass = [] if pass_file is None else ["-pass", f"file:{pass_file}"]
    return subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            host_port,
            "-tls1_3",
            "-CAfile",
            str(net.ca_cert),
            "-cert",
            str(cert),
            "-key",
            str(key),
            *key_pass,
            "-verify_return_error",
            "-ign_eof",
        ],
        input="GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_openssl_s_client_sees_tls13_with_a_registered_certificate(net: LocalNet) -> None:
    files = net.nodes[SOEST.ags]
    result = _s_client(
        net, files.auth_cert, files.directory / "auth.key", files.key_passphrase_file
    )
    assert "Verify return code: 0 (ok)" in result.stdout, result.stdout + result.stderr
    assert "TLSv1.3" in result.stdout
    # The server's certificate is Lippstadt's registered auth certificate.
    assert f"CN = {LIPPSTADT.node}" in result.stdout
    # The application answered (404: nothing at /), so the handshake really completed.
    assert "HTTP/1.1 404" in result.stdout


def test_openssl_s_client_with_rogue_certificate_is_rejected(net: LocalNet, tmp_path: Path) -> None:
    cert, key = _rogue(tmp_path, net)
    result = _s_client(net, cert, key)
    # In TLS 1.3 the server checks the client certificate after the client's side of the
    # handshake is done, so the refusal shows as a closed connection with no HTTP answer.
    assert "HTTP/1.1" not in result.stdout + result.stderr


def test_tls12_is_refused(net: LocalNet) -> None:
    files = net.nodes[SOEST.ags]
    host, port = net.nodes[LIPPSTADT.ags].peer_url.removeprefix("https://").split(":")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(net.ca_cert)
    ctx.load_cert_chain(files.auth_cert, files.directory / "auth.key", password=files.passphrase)
    import socket

    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        pytest.raises(ssl.SSLError),
    ):
        ctx.wrap_socket(raw).do_handshake()


def test_replay_is_refused_after_the_provider_restarts(
    net: LocalNet, registry: RecordingRegistry
) -> None:
    """The guard is rebuilt from the durable log, not only kept in memory."""
    data = request_header().to_bytes()
    signature = signer_of(net, SOEST.ags).sign(data)
    assert send(net, SOEST.ags, data, signature).status_code == 200
    provider_args = ["node", "serve", "--config", str(net.nodes[LIPPSTADT.ags].config)]
    old = next(p for p in net.processes if list(p.args)[-4:] == provider_args)  # type: ignore[arg-type]
    old.terminate()
    assert old.wait(timeout=30) == 0
    net.processes.remove(old)
    net.start_node(LIPPSTADT.ags)
    before = registry.count()
    refused(send(net, SOEST.ags, data, signature), "server.serverproxy.replay_detected")
    assert registry.count() == before
