"""OCSP end to end: real nodes, a real responder, ``gateway pki revoke``, an outage.

The federation runs with a 10 s freshness window (and 10 s OCSP validity) and nodes
that refresh every second, so an outage and a revocation play out in seconds. The
tests run in file order: the outage first, then revocations, which cannot be undone.
Waiting is always polling for an outcome, never asserting how long something took.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from gateway.conf.directory import TrustParameters
from gateway.core.encoding import b64url
from gateway.core.envelope import parse_time
from gateway.core.jws import SignatureVerifier
from gateway.keys.files import load_certificate
from gateway.messagelog import read_entries
from gateway.node.wire import AUTH_OCSP_HEADER, SIGN_OCSP_HEADER
from gateway.pki.ocsp import verify_ocsp_response
from gateway.sandbox.localnet import LocalNet, ServiceSpec
from tests.integration.conftest import (
    GEWERBEAMT,
    ISERLOHN,
    LIPPSTADT,
    SERVICE,
    SOEST,
    RecordingRegistry,
    fetch_ocsp,
)
from tests.integration.test_evil_peer import request_header, send, signer_of

pytestmark = pytest.mark.integration

FRESHNESS = 10
REFRESH = 1.0
BUERGERBUERO = ISERLOHN.subsystem("buergerbuero")


@pytest.fixture(scope="module")
def ocspnet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    federation = LocalNet.create(
        tmp_path_factory.mktemp("ocsp"), [SOEST, LIPPSTADT, ISERLOHN], datetime.now(UTC)
    )
    federation.add_service(
        ServiceSpec(
            id=SERVICE,
            url=f"{registry.url}/personen",
            openapi_url=None,
            allowed=(GEWERBEAMT, BUERGERBUERO),
        )
    )
    federation.trust.ocsp_validity_seconds = FRESHNESS
    federation.write_configs(
        extra={"ocsp_refresh_seconds": REFRESH},
        parameters=TrustParameters(ocsp_freshness_seconds=FRESHNESS),
    )
    try:
        federation.start_node(SOEST.ags)
        federation.start_node(LIPPSTADT.ags)
        yield federation
    finally:
        federation.stop()


def query(net: LocalNet) -> httpx.Response:
    return httpx.get(
        f"{net.nodes[SOEST.ags].consumer_url}/r1/{SERVICE}",
        params={"familienname": "Schmidt"},
        headers={"X-Road-Client": str(GEWERBEAMT), "Accept": "application/json"},
        timeout=30,
    )


def code_of(response: httpx.Response) -> str | None:
    code: str | None = response.headers.get("X-Road-Error")
    return code


def poll(
    attempt: Callable[[], httpx.Response], done: Callable[[httpx.Response], bool]
) -> tuple[httpx.Response, list[httpx.Response]]:
    """Repeat ``attempt`` until ``done``; return the last answer and all earlier ones.

    The deadline only keeps a broken build from hanging; it is far above what any of
    these waits needs (a refresh interval, or one freshness window).
    """
    seen: list[httpx.Response] = []
    deadline = time.monotonic() + 6 * FRESHNESS
    while True:
        response = attempt()
        if done(response):
            return response, seen
        seen.append(response)
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting; last answer {response.status_code}: {response.text}")
        time.sleep(0.1)


def revoke(net: LocalNet, cert: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "pki",
            "revoke",
            "--ca",
            str(net.trust.ca_dir),
            "--cert",
            str(cert),
            "--reason",
            "keyCompromise",
        ],
        check=True,
        capture_output=True,
    )


def verify_logged(net: LocalNet, ags: str, message_id: str) -> int:
    """Re-verify every log entry of one exchange as an auditor would, at its logged time:
    the JWS with the stored certificate, and the stored OCSP response for it."""
    path = net.nodes[ags].messagelog
    ca = load_certificate(net.ca_cert)
    entries = read_entries(path, message_id=message_id)
    with sqlite3.connect(path) as db:
        for entry in entries:
            assert entry.ocsp_ref, "a message was logged without the OCSP it relied on"
            (cert_der,) = db.execute(
                "SELECT der FROM signer_certificate WHERE cert_ref = ?", (entry.cert_ref,)
            ).fetchone()
            (ocsp_der,) = db.execute(
                "SELECT der FROM ocsp_response WHERE ocsp_ref = ?", (entry.ocsp_ref,)
            ).fetchone()
            at = parse_time(entry.created)
            verified = SignatureVerifier([ca]).verify(entry.signature, entry.header, at)
            assert verified.cert_der == cert_der
            cert = x509.load_der_x509_certificate(cert_der)
            status = verify_ocsp_response(ocsp_der, cert, ca, at, timedelta(seconds=FRESHNESS))
            assert status.serial_number == cert.serial_number
    return len(entries)


# ---------------------------------------------------------------- headers and the log

MESSAGES: dict[str, str] = {}
"""Exchanges made before any revocation, re-verified after it."""


def test_ocsp_travels_only_between_nodes_and_is_logged(
    ocspnet: LocalNet, registry: RecordingRegistry
) -> None:
    before = registry.count()
    response = query(ocspnet)
    assert response.status_code == 200, response.text
    assert not [n for n in response.headers if n.lower().startswith("x-gw-")]
    assert registry.count() == before + 1
    call = registry.calls[-1]
    assert not [n for n in call.headers if n.startswith("x-gw-")], call.headers
    message_id = response.headers["X-Road-Request-Id"]
    MESSAGES["before-revocation"] = message_id
    assert verify_logged(ocspnet, SOEST.ags, message_id) == 2
    assert verify_logged(ocspnet, LIPPSTADT.ags, message_id) == 2
    # Each side logs the responses its own and the other member's signature relied on.
    soest = read_entries(ocspnet.nodes[SOEST.ags].messagelog, message_id=message_id)
    lippstadt = read_entries(ocspnet.nodes[LIPPSTADT.ags].messagelog, message_id=message_id)
    assert [e.ocsp_ref for e in soest] == [e.ocsp_ref for e in lippstadt]
    assert soest[0].ocsp_ref != soest[1].ocsp_ref


# ---------------------------------------------------------------- responder outage


def _refresh_failures(net: LocalNet, ags: str) -> int:
    text = (net.root / "logs" / f"node-{ags}.log").read_text("utf-8", errors="replace")
    return text.count("OCSP refresh for its")


def test_responder_outage_within_the_window_then_refused_then_recovered(
    ocspnet: LocalNet,
) -> None:
    assert query(ocspnet).status_code == 200
    failures = _refresh_failures(ocspnet, SOEST.ags)
    ocspnet.stop_trust()
    try:
        # A refresh has failed, yet the cached status still carries the exchange.
        while _refresh_failures(ocspnet, SOEST.ags) == failures:
            time.sleep(0.05)
        within = query(ocspnet)
        assert within.status_code == 200, within.text
        # Once the window has passed, both nodes fail closed and say why.
        refused, earlier = poll(
            lambda: query(ocspnet),
            lambda r: code_of(r) == "server.clientproxy.ocsp_unavailable",
        )
        allowed = {None, "server.serverproxy.ocsp_unavailable"}
        # At the edge of the window a node's evidence can pass its own check and be
        # stale when it reaches the other node, which refuses it then: the consumer's
        # evidence at the provider (relayed as it is), the provider's at the consumer.
        # On a loaded machine a message is in flight long enough for either to happen.
        in_flight = {"server.serverproxy.cert_validation", "server.clientproxy.cert_validation"}
        assert {code_of(r) for r in earlier} <= allowed | in_flight, [r.text for r in earlier]
        for late in (r for r in earlier if code_of(r) in in_flight):
            assert "stale" in late.json()["message"], late.text
        assert refused.status_code == 500
        message = refused.json()["message"]
        assert ocspnet.trust.ocsp_url in message
        assert "stale" in message
        assert "fetched from" in message and " at 20" in message
        assert f"freshness window is {FRESHNESS} s" in message
    finally:
        ocspnet.start_trust()
    recovered, _ = poll(lambda: query(ocspnet), lambda r: r.status_code == 200)
    assert code_of(recovered) is None


# ---------------------------------------------------------------- revocation


def test_revoked_authentication_certificate_of_a_peer_is_refused(
    ocspnet: LocalNet, registry: RecordingRegistry
) -> None:
    iserlohn = ocspnet.nodes[ISERLOHN.ags]
    revoke(ocspnet, iserlohn.auth_cert)
    revoked = fetch_ocsp(ocspnet, load_certificate(iserlohn.auth_cert))
    good_sign = fetch_ocsp(ocspnet, load_certificate(iserlohn.sign_cert))
    before = registry.count()
    data = request_header(client=BUERGERBUERO).to_bytes()
    response = send(
        ocspnet,
        ISERLOHN.ags,
        data,
        signer_of(ocspnet, ISERLOHN.ags).sign(data),
        ocsp={AUTH_OCSP_HEADER: b64url(revoked), SIGN_OCSP_HEADER: b64url(good_sign)},
    )
    assert response.status_code == 500, response.text
    assert code_of(response) == "server.serverproxy.cert_validation"
    message = response.json()["message"]
    assert f"authentication certificate of node {ISERLOHN.node}" in message
    assert "revoked" in message and "keyCompromise" in message
    assert registry.count() == before


def test_provider_with_a_revoked_signing_certificate_answers_nothing(
    ocspnet: LocalNet, registry: RecordingRegistry
) -> None:
    before = registry.count()
    revoke(ocspnet, ocspnet.nodes[LIPPSTADT.ags].sign_cert)
    refused, earlier = poll(lambda: query(ocspnet), lambda r: code_of(r) is not None)
    assert all(r.status_code == 200 for r in earlier)
    assert code_of(refused) == "server.serverproxy.ocsp_unavailable", refused.text
    message = refused.json()["message"]
    assert f"signing certificate of {LIPPSTADT.member}" in message
    assert "revoked" in message and "keyCompromise" in message
    assert registry.count() == before + len(earlier)
    log = (ocspnet.root / "logs" / f"node-{LIPPSTADT.ags}.log").read_text("utf-8")
    assert "REVOKED" in log


def test_revoked_signing_certificate_is_refused_and_earlier_entries_still_verify(
    ocspnet: LocalNet, registry: RecordingRegistry
) -> None:
    soest = ocspnet.nodes[SOEST.ags]
    revoke(ocspnet, soest.sign_cert)
    # Soest's node learns it at its next refresh and stops sending.
    refused, _ = poll(
        lambda: query(ocspnet), lambda r: code_of(r) == "server.clientproxy.ocsp_unavailable"
    )
    message = refused.json()["message"]
    assert f"signing certificate of {SOEST.member}" in message and "revoked" in message
    # A message signed with the revoked key, carrying the responder's current answer,
    # is refused by Lippstadt before anything else is looked at.
    before = registry.count()
    header = request_header()
    data = header.to_bytes()
    revoked = fetch_ocsp(ocspnet, load_certificate(soest.sign_cert))
    good_auth = fetch_ocsp(ocspnet, load_certificate(soest.auth_cert))
    response = send(
        ocspnet,
        SOEST.ags,
        data,
        signer_of(ocspnet, SOEST.ags).sign(data),
        ocsp={AUTH_OCSP_HEADER: b64url(good_auth), SIGN_OCSP_HEADER: b64url(revoked)},
    )
    assert response.status_code == 500, response.text
    assert code_of(response) == "server.serverproxy.cert_validation"
    message = response.json()["message"]
    assert f"signing certificate of {SOEST.member}" in message
    assert "revoked" in message and "keyCompromise" in message
    assert registry.count() == before
    lippstadt_log = ocspnet.nodes[LIPPSTADT.ags].messagelog
    assert read_entries(lippstadt_log, message_id=header.message_id) == []
    # What was logged while both certificates were good still proves they were good.
    message_id = MESSAGES["before-revocation"]
    assert verify_logged(ocspnet, SOEST.ags, message_id) == 2
    assert verify_logged(ocspnet, LIPPSTADT.ags, message_id) == 2
