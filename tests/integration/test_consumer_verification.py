"""The consumer's node verifies what the provider's node returns, and logs only what verified.

Soest's node runs in this process; "Lippstadt's node" is an aiohttp server on Lippstadt's
registered peer address, with Lippstadt's authentication certificate, that answers with
hand-built responses. A provider cannot alter bytes inside TLS, so tampering is modelled
by a provider that builds its own answers. Every refusal must reach the client as the
exact ``X-Road-Error`` code and leave nothing in Soest's message log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.x509 import ocsp

from gateway.core.encoding import b64url, b64url_decode, format_time
from gateway.core.envelope import RequestHeader, ResponseHeader, body_sha256, request_hash
from gateway.core.jws import Signer
from gateway.keys.files import load_certificate, load_certificates, load_private_key
from gateway.messagelog import count_entries, read_entries
from gateway.node.config import NodeConfig, load_config
from gateway.node.server import Node
from gateway.node.tls import server_context
from gateway.node.wire import (
    AUTH_OCSP_HEADER,
    ENVELOPE_HEADER,
    SIGN_OCSP_HEADER,
    SIGNATURE_HEADER,
)
from gateway.pki.ca import create_root_ca, issue_certificate, make_csr
from gateway.pki.keys import generate_key
from gateway.pki.profiles import CertKind
from gateway.sandbox.localnet import LocalNet
from tests.integration.conftest import (
    GEWERBEAMT,
    ISERLOHN,
    LIPPSTADT,
    SERVICE,
    SOEST,
    craft_ocsp,
    ocsp_headers,
)

pytestmark = pytest.mark.integration

REGISTRY_BODY = b'{"ergebnis":"gefunden","anschrift":"Lange Stra\\u00dfe 1, 59555 Lippstadt"}'


@dataclass(frozen=True)
class Seen:
    """One request as the evil provider received it."""

    header: RequestHeader
    header_bytes: bytes
    signature: str
    body: bytes


Responder = Callable[[Seen], web.Response]

OMIT = "omit"
"""A responder that sets an OCSP header to this sends the response without it."""


@dataclass
class Outcome:
    """What the client got, what the evil provider saw, and Soest's log around the call."""

    status: int
    headers: dict[str, str]
    body: bytes
    seen: list[Seen]
    log_before: int
    log_after: int
    log_path: Path
    raw_headers: list[tuple[str, str]] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)

    def entries_for_exchange(self) -> list[Any]:
        assert len(self.seen) == 1, "the provider should have received exactly one request"
        return list(read_entries(self.log_path, message_id=self.seen[0].header.message_id))


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    net = LocalNet.create(
        tmp_path_factory.mktemp("verify"), [SOEST, LIPPSTADT, ISERLOHN], datetime.now(UTC)
    )
    net.write_configs()
    net.start_trust()  # Soest's node fetches its own OCSP statuses from it
    try:
        yield net
    finally:
        net.stop()


_OCSP: dict[tuple[Path, str], dict[str, str]] = {}


def provider_ocsp(net: LocalNet, tls_as: str) -> dict[str, str]:
    """The OCSP headers an honest provider presenting ``tls_as``'s auth certificate and
    signing as Lippstadt sends; fetched once per module."""
    key = (net.root, tls_as)
    if key not in _OCSP:
        _OCSP[key] = ocsp_headers(net, tls_as, LIPPSTADT.ags)
    return _OCSP[key]


def soest_config(net: LocalNet, **node_changes: Any) -> NodeConfig:
    """Soest's generated configuration, listening on OS-chosen ports."""
    config = load_config(net.nodes[SOEST.ags].config)
    node = config.node.model_copy(
        update={
            "consumer_listen": "127.0.0.1:0",
            "consumer_tls_listen": "127.0.0.1:0",
            "peer_listen": "127.0.0.1:0",
            "metrics_listen": "127.0.0.1:0",
            **node_changes,
        }
    )
    return config.model_copy(update={"node": node})


def signer_of(net: LocalNet, ags: str) -> Signer:
    files = net.nodes[ags]
    return Signer(
        files.city.member,
        load_private_key(files.directory / "sign.key", files.passphrase),
        load_certificates(files.sign_cert),
    )


def response_header(seen: Seen, body: bytes, **changes: Any) -> ResponseHeader:
    """The response an honest provider would sign for ``seen``, with ``changes`` applied."""
    header = ResponseHeader(
        message_id=seen.header.message_id,
        xroad_id=seen.header.xroad_id,
        client=seen.header.client,
        service=seen.header.service,
        request_hash=request_hash(seen.header_bytes),
        status=200,
        headers=(("content-type", "application/json"),),
        created=format_time(datetime.now(UTC)),
        body_sha256=body_sha256(body),
        body_length=len(body),
    )
    return dataclasses.replace(header, **changes)


def signed(
    header: ResponseHeader, signer: Signer, body: bytes, *, status: int = 200
) -> web.Response:
    data = header.to_bytes()
    return web.Response(
        status=status,
        body=body,
        headers={
            ENVELOPE_HEADER: b64url(data),
            SIGNATURE_HEADER: signer.sign(data),
            "Content-Type": "application/octet-stream",
        },
    )


async def start_evil_provider(
    net: LocalNet,
    responder: Responder | None,
    seen: list[Seen],
    tls_as: str,
    ocsp: dict[str, str],
) -> web.AppRunner:
    """Listen on Lippstadt's registered peer address with ``tls_as``'s auth certificate.

    Signed answers get ``ocsp`` headers unless the responder sets its own (or ``OMIT``).
    """

    async def exchange(request: web.Request) -> web.Response:
        header_bytes = b64url_decode(request.headers[ENVELOPE_HEADER])
        got = Seen(
            RequestHeader.from_bytes(header_bytes),
            header_bytes,
            request.headers[SIGNATURE_HEADER],
            await request.read(),
        )
        seen.append(got)
        assert responder is not None
        reply = responder(got)
        if "X-Road-Error" not in reply.headers:
            for name, value in ocsp.items():
                reply.headers.setdefault(name, value)
                if reply.headers[name] == OMIT:
                    del reply.headers[name]
        return reply

    files = net.nodes[tls_as]
    ctx = server_context(
        files.auth_cert,
        files.directory / "auth.key",
        [load_certificate(net.ca_cert)],
        files.passphrase,
    )
    app = web.Application()
    app.router.add_post("/gw/v1/exchange", exchange)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", net.nodes[LIPPSTADT.ags].peer_port, ssl_context=ctx)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


async def _exchange(
    net: LocalNet,
    responder: Responder | None,
    tls_as: str | None,
    ocsp: dict[str, str],
    node_changes: dict[str, Any],
) -> Outcome:
    seen: list[Seen] = []
    node = Node(soest_config(net, **node_changes))
    log_path = net.nodes[SOEST.ags].messagelog
    evil = None
    if tls_as is not None:
        evil = await start_evil_provider(net, responder, seen, tls_as, ocsp)
    try:
        endpoints = await node.start()
        # Counted once started: the first start of a log records the settings (an entry).
        log_before = count_entries(log_path)
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(
                    f"{endpoints.consumer_url}/r1/{SERVICE}",
                    params={"familienname": "Schmidt", "vornamen": "Anna"},
                    headers={"X-Road-Client": str(GEWERBEAMT), "Accept": "application/json"},
                ) as resp,
            ):
                body = await resp.read()
                status = resp.status
                headers = dict(resp.headers)
                raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers]
        finally:
            await node.stop()
    finally:
        if evil is not None:
            await evil.cleanup()
    return Outcome(status, headers, body, seen, log_before, count_entries(log_path), log_path, raw)


def exchange(
    net: LocalNet,
    responder: Responder | None,
    tls_as: str | None = LIPPSTADT.ags,
    **node_changes: Any,
) -> Outcome:
    """One client call through Soest's node to the evil provider.

    ``tls_as`` is whose auth certificate the provider presents (``None``: nothing listens);
    ``node_changes`` override fields of Soest's ``[node]`` section.
    """
    ocsp = provider_ocsp(net, tls_as) if tls_as is not None else {}
    return asyncio.run(_exchange(net, responder, tls_as, ocsp, node_changes))


def assert_refused(outcome: Outcome, code: str, *, provider_saw: int = 1) -> None:
    assert outcome.status == 500, outcome.body
    assert outcome.headers["X-Road-Error"] == code
    document = outcome.json()
    assert document["type"] == code
    assert isinstance(document["message"], str) and document["message"]
    assert len(outcome.seen) == provider_saw
    assert outcome.log_after == outcome.log_before, "a refused exchange was logged"
    if provider_saw:
        assert outcome.entries_for_exchange() == []


# ---------------------------------------------------------------- control case


def test_correctly_signed_response_is_accepted_and_logged(fed: LocalNet) -> None:
    lippstadt = signer_of(fed, LIPPSTADT.ags)

    def honest(seen: Seen) -> web.Response:
        return signed(response_header(seen, REGISTRY_BODY), lippstadt, REGISTRY_BODY)

    outcome = exchange(fed, honest)
    assert outcome.status == 200, outcome.body
    assert outcome.body == REGISTRY_BODY
    assert "X-Road-Error" not in outcome.headers
    assert outcome.headers["Content-Type"] == "application/json"
    assert len(outcome.seen) == 1
    sent = outcome.seen[0]
    assert outcome.headers["X-Road-Request-Id"] == sent.header.message_id
    assert outcome.headers["X-Road-Request-Hash"] == request_hash(sent.header_bytes)
    assert outcome.headers["X-Road-Client"] == str(GEWERBEAMT)
    assert outcome.headers["X-Road-Service"] == str(SERVICE)
    entries = outcome.entries_for_exchange()
    assert [(e.role, e.kind) for e in entries] == [
        ("consumer", "request"),
        ("consumer", "response"),
    ]
    assert entries[0].header == sent.header_bytes
    assert entries[0].signature == sent.signature
    assert entries[1].body == REGISTRY_BODY
    assert outcome.log_after == outcome.log_before + 2
    # The response's entry names the OCSP response Lippstadt sent, stored alongside.
    sent_ocsp = b64url_decode(provider_ocsp(fed, LIPPSTADT.ags)[SIGN_OCSP_HEADER])
    assert entries[1].ocsp_ref == hashlib.sha256(sent_ocsp).hexdigest()
    assert entries[0].ocsp_ref and entries[0].ocsp_ref != entries[1].ocsp_ref
    with sqlite3.connect(outcome.log_path) as db:
        stored = dict(db.execute("SELECT ocsp_ref, der FROM ocsp_response").fetchall())
    assert stored[entries[1].ocsp_ref] == sent_ocsp
    assert entries[0].ocsp_ref in stored


# ---------------------------------------------------------------- signatures


def test_body_tampered_after_signing(fed: LocalNet) -> None:
    lippstadt = signer_of(fed, LIPPSTADT.ags)
    tampered = REGISTRY_BODY.replace(b"Lange", b"Kurze")

    def tamper(seen: Seen) -> web.Response:
        return signed(response_header(seen, REGISTRY_BODY), lippstadt, tampered)

    assert_refused(exchange(fed, tamper), "server.clientproxy.invalid_signature_value")


def test_body_truncated_after_signing(fed: LocalNet) -> None:
    lippstadt = signer_of(fed, LIPPSTADT.ags)

    def truncate(seen: Seen) -> web.Response:
        return signed(response_header(seen, REGISTRY_BODY), lippstadt, REGISTRY_BODY[:-1])

    assert_refused(exchange(fed, truncate), "server.clientproxy.invalid_signature_value")


def test_signed_header_altered_after_signing(fed: LocalNet) -> None:
    lippstadt = signer_of(fed, LIPPSTADT.ags)

    def alter(seen: Seen) -> web.Response:
        header = response_header(seen, REGISTRY_BODY)
        signature = lippstadt.sign(header.to_bytes())
        forged = dataclasses.replace(header, status=201).to_bytes()
        return web.Response(
            body=REGISTRY_BODY,
            headers={ENVELOPE_HEADER: b64url(forged), SIGNATURE_HEADER: signature},
        )

    assert_refused(exchange(fed, alter), "server.clientproxy.invalid_signature_value")


@pytest.mark.parametrize("member", [SOEST.ags, ISERLOHN.ags])
def test_response_signed_by_another_member(fed: LocalNet, member: str) -> None:
    """A valid signature from the instance, but not by the service's member."""
    other = signer_of(fed, member)

    def resign(seen: Seen) -> web.Response:
        return signed(response_header(seen, REGISTRY_BODY), other, REGISTRY_BODY)

    assert_refused(exchange(fed, resign), "server.clientproxy.invalid_signature_value")


def test_response_signed_with_an_untrusted_certificate(fed: LocalNet) -> None:
    """Lippstadt's member id in a signing certificate from a CA nobody trusts."""
    now = datetime.now(UTC)
    ca_key, key = generate_key(), generate_key()
    ca = create_root_ca("Rogue CA", ca_key, now)
    cert = issue_certificate(
        make_csr(key, CertKind.SIGN, LIPPSTADT.member), CertKind.SIGN, ca_key, ca, now
    )
    rogue = Signer(LIPPSTADT.member, key, [cert, ca])

    def untrusted(seen: Seen) -> web.Response:
        return signed(response_header(seen, REGISTRY_BODY), rogue, REGISTRY_BODY)

    assert_refused(exchange(fed, untrusted), "server.clientproxy.invalid_certificate")


# ---------------------------------------------------------------- the provider's OCSP


def _with_ocsp(net: LocalNet, **values: str) -> Responder:
    """An honest answer whose OCSP headers are replaced by ``values`` (``OMIT``: left out)."""
    lippstadt = signer_of(net, LIPPSTADT.ags)
    names = {"sign": SIGN_OCSP_HEADER, "auth": AUTH_OCSP_HEADER}

    def respond(seen: Seen) -> web.Response:
        reply = signed(response_header(seen, REGISTRY_BODY), lippstadt, REGISTRY_BODY)
        for which, value in values.items():
            reply.headers[names[which]] = value
        return reply

    return respond


def assert_cert_validation(outcome: Outcome, *words: str) -> None:
    assert_refused(outcome, "server.clientproxy.cert_validation")
    message = outcome.json()["message"]
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("which", ["sign", "auth"])
def test_response_without_ocsp_is_refused(fed: LocalNet, which: str) -> None:
    header = SIGN_OCSP_HEADER if which == "sign" else AUTH_OCSP_HEADER
    assert_cert_validation(exchange(fed, _with_ocsp(fed, **{which: OMIT})), header, "missing")


def test_response_ocsp_for_the_wrong_certificate_is_refused(fed: LocalNet) -> None:
    """The two genuine responses, swapped: each names another certificate's serial."""
    honest = provider_ocsp(fed, LIPPSTADT.ags)
    swapped = _with_ocsp(fed, sign=honest[AUTH_OCSP_HEADER], auth=honest[SIGN_OCSP_HEADER])
    assert_cert_validation(exchange(fed, swapped), "wrong_certificate")


def test_forged_response_ocsp_is_refused(fed: LocalNet) -> None:
    """ "Good", signed with Iserlohn's signing key: a certificate from the right CA, but
    not one the CA authorised to answer OCSP."""
    iserlohn = fed.nodes[ISERLOHN.ags]
    forged = craft_ocsp(
        fed,
        load_certificate(fed.nodes[LIPPSTADT.ags].sign_cert),
        signed_by=(iserlohn.sign_cert, iserlohn.directory / "sign.key"),
        passphrase=iserlohn.passphrase,
    )
    outcome = exchange(fed, _with_ocsp(fed, sign=b64url(forged)))
    assert_cert_validation(outcome, "signing certificate of", "unauthorised_responder")


@pytest.mark.parametrize(
    ("case", "reason"),
    [("revoked", "revoked"), ("stale", "stale"), ("future", "not_yet_valid")],
)
def test_revoked_or_badly_timed_response_ocsp_is_refused(
    fed: LocalNet, case: str, reason: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    cases: dict[str, dict[str, Any]] = {
        "revoked": {"status": ocsp.OCSPCertStatus.REVOKED},
        "stale": {"this_update": now - timedelta(hours=2)},
        "future": {"this_update": now + timedelta(minutes=10)},
    }
    kwargs = cases[case]
    der = craft_ocsp(fed, load_certificate(fed.nodes[LIPPSTADT.ags].sign_cert), **kwargs)
    assert_cert_validation(exchange(fed, _with_ocsp(fed, sign=b64url(der))), reason)


# ---------------------------------------------------------------- binding to the request


@pytest.mark.parametrize(
    "change",
    ["request_hash", "message_id", "xroad_id", "client", "service", "created"],
)
def test_response_bound_to_a_different_request(fed: LocalNet, change: str) -> None:
    """Validly signed by Lippstadt, but not an answer to the request that was sent."""
    lippstadt = signer_of(fed, LIPPSTADT.ags)
    other_request = b'{"id":"another request"}'
    changes: dict[str, Any] = {
        "request_hash": request_hash(other_request),
        "message_id": "00000000-0000-4000-8000-000000000000",
        "xroad_id": "another-exchange",
        "client": SOEST.subsystem("ordnungsamt"),
        "service": LIPPSTADT.subsystem("melderegister").service("abgeschaltet"),
        "created": format_time(datetime.now(UTC) - timedelta(hours=1)),
    }

    def rebind(seen: Seen) -> web.Response:
        header = response_header(seen, REGISTRY_BODY, **{change: changes[change]})
        return signed(header, lippstadt, REGISTRY_BODY)

    assert_refused(exchange(fed, rebind), "server.clientproxy.inconsistent_response")


def test_response_for_an_earlier_request_is_not_accepted(fed: LocalNet) -> None:
    """A genuine signed answer to one request, replayed as the answer to the next."""
    lippstadt = signer_of(fed, LIPPSTADT.ags)
    earlier: list[web.Response] = []

    def record(seen: Seen) -> web.Response:
        header = response_header(seen, REGISTRY_BODY)
        data = header.to_bytes()
        earlier.append(
            web.Response(
                body=REGISTRY_BODY,
                headers={ENVELOPE_HEADER: b64url(data), SIGNATURE_HEADER: lippstadt.sign(data)},
            )
        )
        return signed(header, lippstadt, REGISTRY_BODY)

    assert exchange(fed, record).status == 200

    def replay(seen: Seen) -> web.Response:
        return earlier[0]

    assert_refused(exchange(fed, replay), "server.clientproxy.inconsistent_response")


# ---------------------------------------------------------------- malformed answers


def _without(header_name: str | None, status: int = 200) -> Callable[[LocalNet], Responder]:
    def make(net: LocalNet) -> Responder:
        lippstadt = signer_of(net, LIPPSTADT.ags)

        def respond(seen: Seen) -> web.Response:
            reply = signed(response_header(seen, REGISTRY_BODY), lippstadt, REGISTRY_BODY)
            reply.set_status(status)
            if header_name is not None:
                del reply.headers[header_name]
            return reply

        return respond

    return make


MALFORMED: dict[str, Callable[[LocalNet], Responder]] = {
    "no-envelope-headers": lambda net: lambda seen: web.Response(body=REGISTRY_BODY),
    "no-signature": _without(SIGNATURE_HEADER),
    "no-envelope": _without(ENVELOPE_HEADER),
    "signed-but-status-201": _without(None, status=201),
    "signed-but-status-404": _without(None, status=404),
    "envelope-not-base64url": lambda net: (
        lambda seen: web.Response(
            body=REGISTRY_BODY,
            headers={
                ENVELOPE_HEADER: "not*base64",
                SIGNATURE_HEADER: signer_of(net, LIPPSTADT.ags).sign(b"x"),
            },
        )
    ),
    "envelope-is-a-request-header": lambda net: (
        lambda seen: web.Response(
            body=seen.body,
            headers={
                ENVELOPE_HEADER: b64url(seen.header_bytes),
                SIGNATURE_HEADER: signer_of(net, LIPPSTADT.ags).sign(seen.header_bytes),
            },
        )
    ),
    "signature-not-a-jws": lambda net: (
        lambda seen: web.Response(
            body=REGISTRY_BODY,
            headers={
                ENVELOPE_HEADER: b64url(response_header(seen, REGISTRY_BODY).to_bytes()),
                SIGNATURE_HEADER: "garbage",
            },
        )
    ),
}
MALFORMED_CODES = {"signature-not-a-jws": "server.clientproxy.invalid_signature_value"}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_success_response(fed: LocalNet, case: str) -> None:
    code = MALFORMED_CODES.get(case, "server.clientproxy.invalid_message")
    assert_refused(exchange(fed, MALFORMED[case](fed)), code)


def test_reply_over_the_size_limit(fed: LocalNet) -> None:
    """A correctly signed reply whose body exceeds Soest's ``max_body_bytes``."""
    lippstadt = signer_of(fed, LIPPSTADT.ags)
    big = b'{"pad":"' + b"x" * 4096 + b'"}'

    def oversize(seen: Seen) -> web.Response:
        return signed(response_header(seen, big), lippstadt, big)

    outcome = exchange(fed, oversize, max_body_bytes=1024)
    assert_refused(outcome, "server.clientproxy.invalid_message")


@pytest.mark.parametrize(
    "injected",
    [
        ("content-length", "3"),
        ("transfer-encoding", "chunked"),
        ("x-road-error", "server.serverproxy.access_denied"),
    ],
    ids=["content-length", "transfer-encoding", "x-road-error"],
)
def test_signed_response_headers_cannot_break_the_clients_answer(
    fed: LocalNet, injected: tuple[str, str]
) -> None:
    """Section 3.1: framing and protocol headers never travel end to end. A provider that
    signs them anyway must not be able to corrupt or relabel the client's HTTP answer:
    Soest either drops them or refuses the response as malformed."""
    lippstadt = signer_of(fed, LIPPSTADT.ags)

    def inject(seen: Seen) -> web.Response:
        headers = (("content-type", "application/json"), injected)
        return signed(
            response_header(seen, REGISTRY_BODY, headers=headers), lippstadt, REGISTRY_BODY
        )

    try:
        outcome = exchange(fed, inject)
    except aiohttp.ClientResponseError as exc:
        pytest.fail(f"the client could not parse Soest's answer: {exc.message}")
    if outcome.status == 500:
        assert_refused(outcome, "server.clientproxy.invalid_message")
        return
    assert outcome.status == 200, outcome.body
    assert outcome.body == REGISTRY_BODY
    names = [name.lower() for name, _ in outcome.raw_headers]
    assert "x-road-error" not in names
    assert "transfer-encoding" not in names
    assert names.count("content-length") == 1
    assert outcome.headers["Content-Length"] == str(len(REGISTRY_BODY))


# ---------------------------------------------------------------- provider refusals


def test_provider_refusal_is_relayed_unchanged(fed: LocalNet) -> None:
    document = {
        "type": "server.serverproxy.access_denied",
        "message": "DE-NRW/GOV/05974040/gewerbeamt has no access right",
        "detail": "4f0c1d2e-0000-4000-8000-000000000001",
    }
    raw = json.dumps(document).encode()

    def refuse(seen: Seen) -> web.Response:
        return web.Response(
            status=500,
            body=raw,
            content_type="application/json",
            headers={"X-Road-Error": "server.serverproxy.access_denied"},
        )

    outcome = exchange(fed, refuse)
    assert outcome.status == 500
    assert outcome.headers["X-Road-Error"] == "server.serverproxy.access_denied"
    assert outcome.body == raw
    assert outcome.headers["Content-Type"].startswith("application/json")
    assert len(outcome.seen) == 1
    assert outcome.log_after == outcome.log_before
    assert outcome.entries_for_exchange() == []


def _error_with_status(status: int, code: str, body: bytes) -> Responder:
    def respond(seen: Seen) -> web.Response:
        return web.Response(status=status, body=body, headers={"X-Road-Error": code})

    return respond


def _error(code: str, body: bytes) -> Responder:
    return _error_with_status(500, code, body)


def _doc(type_: Any, message: Any = "refused") -> bytes:
    return json.dumps({"type": type_, "message": message, "detail": "x"}).encode()


MALFORMED_ERRORS: dict[str, Responder] = {
    "garbage-body": _error("server.serverproxy.access_denied", b"<html>nope</html>"),
    "empty-body": _error("server.serverproxy.access_denied", b""),
    "not-utf8": _error("server.serverproxy.access_denied", b"\xff\xfe{}"),
    "json-array": _error("server.serverproxy.access_denied", b'["server.serverproxy.x"]'),
    "type-mismatch": _error(
        "server.serverproxy.access_denied", _doc("server.serverproxy.unknown_service")
    ),
    "message-not-a-string": _error(
        "server.serverproxy.access_denied", _doc("server.serverproxy.access_denied", 42)
    ),
    "clientproxy-code": _error(
        "server.clientproxy.internal_error", _doc("server.clientproxy.internal_error")
    ),
    "client-code": _error("client.bad_request", _doc("client.bad_request")),
    "unknown-serverproxy-code": _error(
        "server.serverproxy.made_up", _doc("server.serverproxy.made_up")
    ),
    "status-not-the-codes": _error_with_status(
        400, "server.serverproxy.access_denied", _doc("server.serverproxy.access_denied")
    ),
    "status-200": _error_with_status(
        200, "server.serverproxy.access_denied", _doc("server.serverproxy.access_denied")
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_ERRORS))
def test_malformed_provider_error(fed: LocalNet, case: str) -> None:
    assert_refused(exchange(fed, MALFORMED_ERRORS[case]), "server.clientproxy.invalid_message")


# ---------------------------------------------------------------- transport


def test_provider_with_another_nodes_certificate(fed: LocalNet) -> None:
    """Iserlohn's auth certificate chains to the instance CA but is not Lippstadt's pin:
    the connection fails after the handshake and the request is never written."""
    lippstadt = signer_of(fed, LIPPSTADT.ags)

    def honest(seen: Seen) -> web.Response:
        return signed(response_header(seen, REGISTRY_BODY), lippstadt, REGISTRY_BODY)

    outcome = exchange(fed, honest, tls_as=ISERLOHN.ags)
    assert_refused(outcome, "server.clientproxy.ssl_authentication_failed", provider_saw=0)


def test_provider_address_where_nothing_listens(fed: LocalNet) -> None:
    assert_refused(
        exchange(fed, None, tls_as=None), "server.clientproxy.network_error", provider_saw=0
    )
