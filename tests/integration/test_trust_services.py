"""``gateway trust serve`` as a real process, judged by OpenSSL rather than by our own code.

The CA comes from ``gateway pki init``, the responder and TSA certificates from
``gateway pki issue-service``; the server runs on 127.0.0.1 with port 0 and is asked
with ``openssl ocsp`` / ``openssl ts`` and plain HTTP. Node certificates are issued with
the library to keep the file fast. Each test that revokes uses its own certificate, so
the tests do not depend on their order.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.core.ids import NodeId
from gateway.keys.files import (
    load_certificate,
    load_private_key,
    new_key_and_csr,
    write_certificate,
    write_private_key,
)
from gateway.pki.ca import create_root_ca
from gateway.pki.keys import generate_key
from gateway.pki.ocsp import issuer_hashes, verify_ocsp_response
from gateway.pki.profiles import CertKind
from gateway.pki.tsa import DEFAULT_POLICY_OID, message_imprint, parse_timestamp_request
from gateway.pki.tsa_verify import verify_timestamp_response
from gateway.trust.ca_store import issue_from_csr
from gateway.trust.revocation import load_revocations

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
]

STARTUP_TIMEOUT = 20.0


@dataclass(frozen=True)
class Trust:
    url: str
    root: Path
    ca_dir: Path
    ca_pem: Path
    ocsp_pem: Path
    tsa_pem: Path

    def leaf(self, name: str) -> Path:
        """A fresh auth certificate of this CA, as ``<name>.pem``."""
        key, csr, cert = (self.root / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
        new_key_and_csr(CertKind.AUTH, NodeId("DE-NRW", "GOV", "05974040", name), key, csr)
        issue_from_csr(self.ca_dir, csr, CertKind.AUTH, cert, datetime.now(UTC))
        return cert


def gateway(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, timeout=30, check=False
    )


def assert_clean_refusal(result: subprocess.CompletedProcess[str], *mentions: str) -> None:
    """Non-zero, a message naming the problem, and no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "error:" in result.stderr, result.stderr
    for text in mentions:
        assert text in result.stderr, result.stderr


def start_trust(args: list[str], log: Path) -> tuple[subprocess.Popen[str], str]:
    """Start ``gateway trust serve`` and wait for its ready line; return it and its URL."""
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "trust", "serve", "--host", "127.0.0.1", *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert proc.stdout is not None
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        readable, _, _ = select.select([proc.stdout], [], [], 0.1)
        if readable:
            line = proc.stdout.readline()
            match = re.search(r"trust services ready: .*?(http://127\.0\.0\.1:\d+)", line)
            if match:
                return proc, match.group(1)
        if proc.poll() is not None:
            break
    proc.kill()
    proc.wait()
    proc.stdout.close()
    pytest.fail(f"gateway trust serve did not start: {log.read_text()}")


@pytest.fixture(scope="module")
def trust(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trust]:
    root = tmp_path_factory.mktemp("trust")
    ca_dir, services = root / "ca", root / "services"
    for args in (
        ("pki", "init", str(ca_dir)),
        ("pki", "issue-service", "--ca", str(ca_dir), "--kind", "ocsp", "--out-dir", str(services)),
        ("pki", "issue-service", "--ca", str(ca_dir), "--kind", "tsa", "--out-dir", str(services)),
    ):
        result = gateway(*args)
        assert result.returncode == 0, result.stderr
    # The services run on encrypted keys, as a deployment's must (docs/adr/0053).
    passphrase = root / "key-passphrase"
    passphrase.write_text("trust services passphrase\n")
    passphrase.chmod(0o600)
    keys = [str(services / "ocsp.key"), str(services / "tsa.key")]
    encrypted = gateway("keys", "encrypt", "--passphrase-file", str(passphrase), *keys)
    assert encrypted.returncode == 0, encrypted.stderr
    proc, url = start_trust(
        [
            "--key-passphrase-file",
            str(passphrase),
            "--port",
            "0",
            "--ca",
            str(ca_dir),
            "--ocsp-cert",
            str(services / "ocsp.pem"),
            "--ocsp-key",
            str(services / "ocsp.key"),
            "--tsa-cert",
            str(services / "tsa.pem"),
            "--tsa-key",
            str(services / "tsa.key"),
        ],
        root / "trust.log",
    )
    try:
        yield Trust(
            url,
            root,
            ca_dir,
            ca_dir / "ca.pem",
            services / "ocsp.pem",
            services / "tsa.pem",
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert "Traceback" not in (root / "trust.log").read_text()


def ocsp_query(trust: Trust, *target: str | Path) -> subprocess.CompletedProcess[str]:
    """``openssl ocsp`` against the running responder, trusting only the test CA."""
    return openssl(
        "ocsp",
        "-issuer",
        trust.ca_pem,
        *target,
        "-url",
        f"{trust.url}/ocsp",
        "-CAfile",
        trust.ca_pem,
        "-no_nonce",
        "-resp_text",
    )


def openssl_time(output: str, label: str) -> datetime:
    match = re.search(rf"{label}: (\w{{3}} +\d+ [\d:]+ \d{{4}}) GMT", output)
    assert match, output
    return datetime.strptime(match.group(1), "%b %d %H:%M:%S %Y").replace(tzinfo=UTC)


# --- OCSP -------------------------------------------------------------------------------------


def test_openssl_sees_good_then_revoked_without_a_restart(trust: Trust) -> None:
    leaf = trust.leaf("ss-revoked")

    before = ocsp_query(trust, "-cert", leaf)
    assert before.returncode == 0, before.stderr
    assert "Response verify OK" in before.stderr
    assert f"{leaf}: good" in before.stdout
    # nextUpdate - thisUpdate is the freshness window (docs/trust-services.md).
    this_update = openssl_time(before.stdout, "This Update")
    assert openssl_time(before.stdout, "Next Update") - this_update == timedelta(hours=1)
    assert abs(datetime.now(UTC) - this_update) < timedelta(minutes=1)

    revoked = gateway(
        "pki", "revoke", "--ca", str(trust.ca_dir), "--cert", str(leaf), "--reason", "keyCompromise"
    )
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked serial" in revoked.stdout

    after = ocsp_query(trust, "-cert", leaf)
    assert after.returncode == 0, after.stderr
    assert "Response verify OK" in after.stderr
    assert f"{leaf}: revoked" in after.stdout
    assert "Reason: keyCompromise" in after.stdout
    assert "Revocation Time:" in after.stdout


def test_openssl_accepts_sha256_cert_ids_and_its_own_nonce(trust: Trust) -> None:
    """The responder echoes any CertID hash; it ignores nonces (as X-Road's does), which
    OpenSSL reports as a warning while still verifying the answer."""
    leaf = trust.leaf("ss-sha256")
    sha256 = ocsp_query(trust, "-sha256", "-cert", leaf)
    assert "Response verify OK" in sha256.stderr
    assert f"{leaf}: good" in sha256.stdout
    assert "Hash Algorithm: sha256" in sha256.stdout

    with_nonce = openssl(
        "ocsp",
        "-issuer",
        trust.ca_pem,
        "-cert",
        leaf,
        "-url",
        f"{trust.url}/ocsp",
        "-CAfile",
        trust.ca_pem,
    )
    assert with_nonce.returncode == 0, with_nonce.stderr
    assert "WARNING: no nonce in response" in with_nonce.stderr
    assert "Response verify OK" in with_nonce.stderr
    assert f"{leaf}: good" in with_nonce.stdout


def test_an_unknown_serial_is_unknown(trust: Trust) -> None:
    result = ocsp_query(trust, "-serial", "0x5eed0fdeadbeef")
    assert "Response verify OK" in result.stderr
    assert "0x5eed0fdeadbeef: unknown" in result.stdout


def test_the_responder_certificate_is_itself_good(trust: Trust) -> None:
    result = ocsp_query(trust, "-cert", trust.ocsp_pem)
    assert "Response verify OK" in result.stderr
    assert f"{trust.ocsp_pem}: good" in result.stdout


def test_get_form_checked_by_openssl(trust: Trust, tmp_path: Path) -> None:
    leaf_pem = trust.leaf("ss-get")
    leaf, ca = load_certificate(leaf_pem), load_certificate(trust.ca_pem)
    request = (
        ocsp.OCSPRequestBuilder().add_certificate(leaf, ca, hashes.SHA1()).build()
    ).public_bytes(serialization.Encoding.DER)

    # RFC 6960 A.1: GET {url}/{url-encoding of base-64 encoding of the DER request}.
    response = httpx.get(
        f"{trust.url}/ocsp/{quote(base64.b64encode(request).decode(), safe='')}", timeout=10
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/ocsp-response"
    assert response.headers["cache-control"] == "no-cache"
    answer = tmp_path / "get.der"
    answer.write_bytes(response.content)
    checked = openssl(
        "ocsp",
        "-respin",
        answer,
        "-issuer",
        trust.ca_pem,
        "-cert",
        leaf_pem,
        "-CAfile",
        trust.ca_pem,
        "-no_nonce",
    )
    assert "Response verify OK" in checked.stderr, checked.stderr
    assert f"{leaf_pem}: good" in checked.stdout
    status = verify_ocsp_response(response.content, leaf, ca, datetime.now(UTC))
    assert status.responder == load_certificate(trust.ocsp_pem)


def test_get_form_with_slash_and_plus_in_the_base64(trust: Trust) -> None:
    """'/' must survive routing and '+' must not turn into a space, encoded or not."""
    ca = load_certificate(trust.ca_pem)
    name_hash, key_hash = issuer_hashes(ca, hashes.SHA1())
    for serial in range(1, 10_000):
        der = (
            ocsp.OCSPRequestBuilder()
            .add_certificate_by_hash(name_hash, key_hash, serial, hashes.SHA1())
            .build()
            .public_bytes(serialization.Encoding.DER)
        )
        encoded = base64.b64encode(der).decode()
        if "/" in encoded and "+" in encoded:
            break
    else:
        pytest.fail("no request whose base64 holds both '/' and '+'")

    for path in (quote(encoded, safe=""), encoded):
        response = httpx.get(f"{trust.url}/ocsp/{path}", timeout=10)
        answer = ocsp.load_der_ocsp_response(response.content)
        assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL, path
        assert answer.serial_number == serial
        assert answer.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


def _ocsp_status(body: bytes) -> ocsp.OCSPResponseStatus:
    return ocsp.load_der_ocsp_response(body).response_status


def test_malformed_requests_get_an_ocsp_malformed_request(trust: Trust) -> None:
    malformed = ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    for body in (b"", b"not an OCSP request", b"\x30\x03\x02\x01\x01"):
        response = httpx.post(
            f"{trust.url}/ocsp",
            content=body,
            headers={"Content-Type": "application/ocsp-request"},
            timeout=10,
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/ocsp-response"
        assert _ocsp_status(response.content) is malformed, body
    for path in ("!!!not-base64!!!", quote(base64.b64encode(b"garbage").decode(), safe="")):
        response = httpx.get(f"{trust.url}/ocsp/{path}", timeout=10)
        assert _ocsp_status(response.content) is malformed, path


def test_wrong_content_type_is_415(trust: Trust) -> None:
    for path, content_type in (
        ("/ocsp", "text/plain"),
        ("/ocsp", "application/timestamp-query"),
        ("/tsa", "application/ocsp-request"),
        ("/tsa", None),
    ):
        headers = {"Content-Type": content_type} if content_type else {}
        response = httpx.post(f"{trust.url}{path}", content=b"\x30\x00", headers=headers)
        assert response.status_code == 415, (path, content_type)
        assert "send the request as application/" in response.text


def test_oversize_requests_are_413(trust: Trust) -> None:
    """aiohttp enforces client_max_size (16 KiB) while reading, with or without a length."""
    big = b"\x30" * (17 * 1024)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 1024):
            yield big[start : start + 1024]

    for path, content_type in (
        ("/ocsp", "application/ocsp-request"),
        ("/tsa", "application/timestamp-query"),
    ):
        for content in (big, chunks()):
            response = httpx.post(
                f"{trust.url}{path}",
                content=content,
                headers={"Content-Type": content_type},
                timeout=10,
            )
            assert response.status_code == 413, path


def test_health_names_both_services(trust: Trust) -> None:
    response = httpx.get(f"{trust.url}/health", timeout=10)
    assert response.json() == {"ocsp": True, "tsa": True}


# --- TSA --------------------------------------------------------------------------------------


def _stamp(trust: Trust, query: Path, reply: Path) -> None:
    response = httpx.post(
        f"{trust.url}/tsa",
        content=query.read_bytes(),
        headers={"Content-Type": "application/timestamp-query"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/timestamp-reply"
    reply.write_bytes(response.content)


def test_openssl_query_reply_and_verify(trust: Trust, tmp_path: Path) -> None:
    data, other = tmp_path / "data.bin", tmp_path / "other.bin"
    data.write_bytes(b"Anna Schmidt, Lippstadt, 2025-03-01")
    other.write_bytes(b"Anna Schmidt, Soest, 2025-03-01")
    query, reply = tmp_path / "q.tsq", tmp_path / "reply.tsr"
    made = openssl("ts", "-query", "-data", data, "-sha256", "-cert", "-out", query)
    assert made.returncode == 0, made.stderr

    _stamp(trust, query, reply)

    verified = openssl(
        "ts",
        "-verify",
        "-data",
        data,
        "-in",
        reply,
        "-CAfile",
        trust.ca_pem,
        "-untrusted",
        trust.tsa_pem,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "Verification: OK" in verified.stdout
    by_query = openssl("ts", "-verify", "-queryfile", query, "-in", reply, "-CAfile", trust.ca_pem)
    assert "Verification: OK" in by_query.stdout, by_query.stderr

    text = openssl("ts", "-reply", "-in", reply, "-text")
    assert "Status: Granted." in text.stdout
    assert f"Policy OID: {DEFAULT_POLICY_OID}" in text.stdout
    assert "Hash Algorithm: sha256" in text.stdout

    nonce = parse_timestamp_request(query.read_bytes()).nonce
    assert nonce is not None
    stamp = verify_timestamp_response(
        reply.read_bytes(),
        load_certificate(trust.tsa_pem),
        message_imprint(data.read_bytes()),
        now=datetime.now(UTC),
        expected_nonce=nonce,
        issuer=load_certificate(trust.ca_pem),
        expected_policy=DEFAULT_POLICY_OID,
    )
    assert abs(stamp.gen_time - datetime.now(UTC)) < timedelta(minutes=1)

    wrong = openssl(
        "ts",
        "-verify",
        "-data",
        other,
        "-in",
        reply,
        "-CAfile",
        trust.ca_pem,
        "-untrusted",
        trust.tsa_pem,
    )
    assert wrong.returncode != 0
    assert "Verification: FAILED" in wrong.stdout
    assert "message imprint mismatch" in wrong.stderr


def test_without_cert_req_the_reply_verifies_with_the_tsa_certificate_given(
    trust: Trust, tmp_path: Path
) -> None:
    data, query, reply = tmp_path / "data.bin", tmp_path / "q.tsq", tmp_path / "reply.tsr"
    data.write_bytes(b"tree head")
    openssl("ts", "-query", "-data", data, "-sha512", "-no_nonce", "-out", query)

    _stamp(trust, query, reply)

    bare = openssl("ts", "-verify", "-data", data, "-in", reply, "-CAfile", trust.ca_pem)
    assert bare.returncode != 0, "no certificate in the token, none given: cannot verify"
    verified = openssl(
        "ts",
        "-verify",
        "-data",
        data,
        "-in",
        reply,
        "-CAfile",
        trust.ca_pem,
        "-untrusted",
        trust.tsa_pem,
    )
    assert "Verification: OK" in verified.stdout, verified.stderr


def test_queries_the_tsa_cannot_honour_are_rejections_openssl_can_read(
    trust: Trust, tmp_path: Path
) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"tree head")
    cases = {
        "sha1": (["-sha1"], "unrecognized or unsupported algorithm"),
        "policy": (["-sha256", "-tspolicy", "1.2.3.4"], "policy is not supported"),
    }
    for name, (options, failure) in cases.items():
        query, reply = tmp_path / f"{name}.tsq", tmp_path / f"{name}.tsr"
        openssl("ts", "-query", "-data", data, *options, "-out", query)
        _stamp(trust, query, reply)
        text = openssl("ts", "-reply", "-in", reply, "-text")
        assert "Status: Rejected." in text.stdout, name
        assert failure in text.stdout, text.stdout

    garbage, reply = tmp_path / "garbage.tsq", tmp_path / "garbage.tsr"
    garbage.write_bytes(b"not a query")
    _stamp(trust, garbage, reply)
    text = openssl("ts", "-reply", "-in", reply, "-text")
    assert "Status: Rejected." in text.stdout
    assert "wrong format" in text.stdout


# --- start-up and revocation refusals ---------------------------------------------------------


def _careless_tsa(
    trust: Trust,
    name: str,
    eku: list[x509.ObjectIdentifier],
    critical: bool,
    *,
    valid_from: timedelta = timedelta(minutes=-5),
    valid_to: timedelta = timedelta(days=30),
) -> tuple[Path, Path]:
    """A TSA key and certificate signed by the test CA, with the EKU and validity given
    (relative to now) instead of what ``gateway pki issue-service`` would choose."""
    ca_key = load_private_key(trust.ca_dir / "ca.key")
    ca = load_certificate(trust.ca_pem)
    key = generate_key()
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + valid_from)
        .not_valid_after(now + valid_to)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(eku), critical=critical)
        .sign(ca_key, hashes.SHA256())
    )
    key_path, cert_path = trust.root / f"{name}.key", trust.root / f"{name}.pem"
    write_private_key(key_path, key)
    write_certificate(cert_path, cert)
    return key_path, cert_path


@pytest.mark.parametrize(
    ("eku", "critical", "mention"),
    [
        ([ExtendedKeyUsageOID.TIME_STAMPING], False, "must be critical"),
        (
            [ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.SERVER_AUTH],
            True,
            "only extended key usage",
        ),
    ],
    ids=["not-critical", "extra-purpose"],
)
def test_serve_refuses_a_tsa_certificate_outside_rfc_3161(
    trust: Trust, eku: list[x509.ObjectIdentifier], critical: bool, mention: str
) -> None:
    key, cert = _careless_tsa(trust, f"careless-tsa-{mention[:4]}", eku, critical)
    result = gateway(
        "trust", "serve", "--port", "0", "--tsa-cert", str(cert), "--tsa-key", str(key),
        "--development",
    )  # fmt: skip
    assert_clean_refusal(result, "gateway: error:", "TSA certificate", mention)
    assert result.stdout == ""


def test_serve_refuses_an_expired_tsa_certificate_and_a_bad_policy(trust: Trust) -> None:
    key, cert = _careless_tsa(
        trust,
        "expired-tsa",
        [ExtendedKeyUsageOID.TIME_STAMPING],
        True,
        valid_from=timedelta(days=-60),
        valid_to=timedelta(days=-30),
    )
    expired = gateway(
        "trust", "serve", "--port", "0", "--tsa-cert", str(cert), "--tsa-key", str(key),
        "--development",
    )  # fmt: skip
    assert_clean_refusal(expired, "gateway: error:", "is not valid now")

    bad_policy = gateway(
        "trust", "serve", "--port", "0", "--policy", "my-policy",
        "--tsa-cert", str(trust.tsa_pem), "--tsa-key", str(trust.tsa_pem.with_suffix(".key")),
        "--key-passphrase-file", str(trust.root / "key-passphrase"),
    )  # fmt: skip
    assert_clean_refusal(bad_policy, "gateway: error:", "'my-policy' is not a dotted OID")


def test_serve_reports_a_busy_port_in_one_line(trust: Trust) -> None:
    port = trust.url.rsplit(":", 1)[1]
    result = gateway(
        "trust",
        "serve",
        "--port",
        port,
        "--tsa-cert",
        str(trust.tsa_pem),
        "--tsa-key",
        str(trust.tsa_pem.with_suffix(".key")),
        "--key-passphrase-file",
        str(trust.root / "key-passphrase"),
    )
    assert_clean_refusal(result, "gateway: error: cannot serve on 127.0.0.1:")


def test_serve_refuses_a_plain_key_and_a_wrong_passphrase(trust: Trust) -> None:
    """The services' keys follow the node's rule: encrypted PKCS#8, a plain key only in
    a development set-up, and a wrong passphrase named as such, never shown."""
    key, cert = _careless_tsa(trust, "plain-tsa", [ExtendedKeyUsageOID.TIME_STAMPING], True)
    plain = gateway("trust", "serve", "--port", "0", "--tsa-cert", str(cert), "--tsa-key", str(key))
    assert_clean_refusal(
        plain,
        f"{key} is an unencrypted private key",
        f"gateway keys encrypt {key}",
        "--development",
    )
    wrong = trust.root / "wrong-passphrase"
    wrong.write_text("not the passphrase\n")
    wrong.chmod(0o600)
    tsa_key = trust.tsa_pem.with_suffix(".key")
    refused = gateway(
        "trust", "serve", "--port", "0", "--tsa-cert", str(trust.tsa_pem),
        "--tsa-key", str(tsa_key), "--key-passphrase-file", str(wrong),
    )  # fmt: skip
    assert_clean_refusal(refused, str(tsa_key), "passphrase")
    assert "not the passphrase" not in refused.stderr


def test_revoke_refusals_are_clear_and_change_nothing(trust: Trust) -> None:
    leaf_pem = trust.leaf("ss-refusals")
    leaf = load_certificate(leaf_pem)
    ca_dir = str(trust.ca_dir)

    first = gateway(
        "pki", "revoke", "--ca", ca_dir, "--cert", str(leaf_pem), "--reason", "superseded"
    )
    assert first.returncode == 0, first.stderr
    database = (trust.ca_dir / "revoked.json").read_bytes()
    recorded = load_revocations(trust.ca_dir)[leaf.serial_number]

    # Another CA's certificate with the very same serial number must not revoke ours.
    other_key = generate_key()
    other_ca = create_root_ca("Another CA", other_key, datetime.now(UTC))
    twin = (
        x509.CertificateBuilder()
        .subject_name(leaf.subject)
        .issuer_name(other_ca.subject)
        .public_key(generate_key().public_key())
        .serial_number(leaf.serial_number)
        .not_valid_before(leaf.not_valid_before_utc)
        .not_valid_after(leaf.not_valid_after_utc)
        .sign(other_key, hashes.SHA256())
    )
    twin_pem = trust.root / "twin.pem"
    write_certificate(twin_pem, twin)

    refusals = {
        "foreign": (
            ["--cert", str(twin_pem), "--reason", "keyCompromise"],
            ("gateway: error:", "was not issued by the CA"),
        ),
        "unknown-serial": (
            ["--serial", "5eed0fdeadbeef", "--reason", "keyCompromise"],
            ("gateway: error:", "5eed0fdeadbeef was not issued by the CA"),
        ),
        "unknown-reason": (
            ["--cert", str(leaf_pem), "--reason", "stolenLaptop"],
            ("invalid choice: 'stolenLaptop'", "keyCompromise"),
        ),
        "removeFromCRL": (
            ["--cert", str(leaf_pem), "--reason", "removeFromCRL"],
            ("invalid choice: 'removeFromCRL'",),
        ),
        "twice": (
            ["--cert", str(leaf_pem), "--reason", "keyCompromise"],
            ("gateway: error:", "already revoked since", "(superseded)"),
        ),
        "twice-by-serial": (
            ["--serial", f"{leaf.serial_number:x}", "--reason", "superseded"],
            ("already revoked since",),
        ),
    }
    for name, (args, mentions) in refusals.items():
        result = gateway("pki", "revoke", "--ca", ca_dir, *args)
        assert result.returncode == 2, name
        assert_clean_refusal(result, *mentions)

    assert (trust.ca_dir / "revoked.json").read_bytes() == database
    entries = [
        e for e in json.loads(database)["revoked"] if e["serial"] == f"{leaf.serial_number:x}"
    ]
    assert entries == [
        {
            "serial": f"{leaf.serial_number:x}",
            "time": recorded.time.isoformat(),
            "reason": "superseded",
        }
    ]
    answer = ocsp_query(trust, "-cert", leaf_pem)
    assert f"{leaf_pem}: revoked" in answer.stdout
    assert "Reason: superseded" in answer.stdout


def test_a_damaged_revocation_database_is_an_internal_error_not_good(trust: Trust) -> None:
    leaf = trust.leaf("ss-damaged-db")
    database = trust.ca_dir / "revoked.json"
    original = database.read_bytes() if database.exists() else None
    database.write_text('{"format": 1, "revoked": [{"serial": "zz"')
    try:
        answer = ocsp_query(trust, "-cert", leaf)
    finally:
        if original is None:
            database.unlink()
        else:
            database.write_bytes(original)
    assert "Responder Error: internalerror (2)" in answer.stdout + answer.stderr
    assert ": good" not in answer.stdout
    assert f"{leaf}: good" in ocsp_query(trust, "-cert", leaf).stdout


def test_revocation_reaches_the_responder_by_serial_too(trust: Trust) -> None:
    leaf_pem = trust.leaf("ss-by-serial")
    serial = load_certificate(leaf_pem).serial_number
    # As openssl x509 -serial / a browser shows it: colon-separated bytes.
    colons = serial.to_bytes((serial.bit_length() + 7) // 8, "big").hex(":")
    result = gateway(
        "pki", "revoke", "--ca", str(trust.ca_dir), "--serial", colons, "--reason", "cACompromise"
    )
    assert result.returncode == 0, result.stderr
    answer = ocsp_query(trust, "-cert", leaf_pem)
    assert "Response verify OK" in answer.stderr
    assert f"{leaf_pem}: revoked" in answer.stdout
    assert "Reason: cACompromise" in answer.stdout


def test_the_tsa_digest_helper_matches_openssl(tmp_path: Path) -> None:
    """``message_imprint`` is what ``openssl ts -query -data`` puts in the query."""
    data, query = tmp_path / "data.bin", tmp_path / "q.tsq"
    data.write_bytes(b"x" * 1000)
    openssl("ts", "-query", "-data", data, "-sha384", "-out", query)
    parsed = parse_timestamp_request(query.read_bytes())
    assert parsed.hash_algorithm == "sha384"
    assert parsed.imprint == message_imprint(data.read_bytes(), "sha384")
    assert parsed.imprint == hashlib.sha384(b"x" * 1000).digest()
