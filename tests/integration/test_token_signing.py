"""A node whose member signing key lives in a PKCS#11 token (SoftHSM2), in real processes.

Lippstadt's signing key is generated on a token with ``gateway node token init-key``,
its CSR signed by the token and issued by the federation's CA; the key file is removed
and ``node.toml`` names the token instead. Exchanges with Soest succeed, Lippstadt's
responses and tree heads carry the token key's certificate, and ``gateway audit verify``
accepts Lippstadt's exported log.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.conf.directory import TrustParameters
from gateway.core.jws import SignatureVerifier, cert_ref
from gateway.core.treehead import verify_sth_signature
from gateway.keys.files import load_certificate
from gateway.messagelog.proofs import signed_heads, timestamp_status
from gateway.pki.profiles import CertKind
from gateway.sandbox.localnet import LocalNet, ServiceSpec
from gateway.trust.ca_store import issue_from_csr
from tests.integration.conftest import (
    GEWERBEAMT,
    LIPPSTADT,
    SERVICE,
    SOEST,
    RecordingRegistry,
    call,
)
from tests.softhsm import SOFTHSM_MODULE, SoftToken, make_soft_token

pytestmark = pytest.mark.integration

KEY_LABEL = "lippstadt-sign"


def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def tokennet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[tuple[LocalNet, SoftToken]]:
    root: Path = tmp_path_factory.mktemp("tokennet")
    with pytest.MonkeyPatch.context() as monkeypatch:
        token = make_soft_token(root / "hsm", monkeypatch, "lippstadt")
        now = datetime.now(UTC)
        federation = LocalNet.create(root, [SOEST, LIPPSTADT], now)
        federation.add_service(
            ServiceSpec(
                id=SERVICE,
                url=f"{registry.url}/personen",
                openapi_url=None,
                allowed=(GEWERBEAMT,),
            )
        )
        files = federation.nodes[LIPPSTADT.ags]
        (files.directory / "sign.key").unlink()  # the file key must not be what signs
        csr = files.directory / "sign-token.csr"
        monkeypatch.setenv("GW_TEST_TOKEN_PIN", token.pin)
        made = gateway(
            "node",
            "token",
            "init-key",
            "--module",
            str(SOFTHSM_MODULE),
            "--token",
            token.label,
            "--key-label",
            KEY_LABEL,
            "--member",
            str(LIPPSTADT.member),
            "--org",
            LIPPSTADT.name,
            "--csr",
            str(csr),
            "--pin-env",
            "GW_TEST_TOKEN_PIN",
        )
        assert made.returncode == 0, made.stderr
        issue_from_csr(federation.trust.ca_dir, csr, CertKind.SIGN, files.sign_cert, now)
        federation.write_configs(parameters=TrustParameters(timestamping_interval_seconds=1))
        text = files.config.read_text("utf-8")
        assert 'key = "sign.key"\n' in text
        files.config.write_text(
            text.replace(
                'key = "sign.key"\n',
                f'token = {{ module = "{SOFTHSM_MODULE}", label = "{token.label}", '
                f'key_label = "{KEY_LABEL}", pin_file = "{token.pin_file}" }}\n',
            ),
            "utf-8",
        )
        try:
            federation.start_node(SOEST.ags)
            federation.start_node(LIPPSTADT.ags)
            yield federation, token
        finally:
            federation.stop()


def test_a_node_signs_exchanges_and_tree_heads_through_the_token(
    tokennet: tuple[LocalNet, SoftToken], tmp_path: Path
) -> None:
    net, _ = tokennet
    for _ in range(3):
        response = call(net)
        assert response.status_code == 200, response.text
    db = net.nodes[LIPPSTADT.ags].messagelog
    deadline = time.monotonic() + 20
    while not (
        (status := timestamp_status(db)).tree_size >= 6 and status.pending == 0 and signed_heads(db)
    ):  # a deadline, not a timing claim
        assert time.monotonic() < deadline, "no signed tree head covered Lippstadt's entries"
        time.sleep(0.1)

    token_cert = load_certificate(net.nodes[LIPPSTADT.ags].sign_cert)
    head = signed_heads(db)[-1]
    assert head.cert_ref == cert_ref(token_cert)
    _, verified = verify_sth_signature(
        SignatureVerifier([load_certificate(net.ca_cert)]),
        head.document,
        head.signature,
        datetime.now(UTC),
        signer=LIPPSTADT.member,
    )
    assert verified.certificate == token_cert

    bundle = tmp_path / "lippstadt.jsonl"
    exported = gateway(
        "audit",
        "export",
        "--db",
        str(db),
        "--out",
        str(bundle),
        "--all",
        "--tsa-cert",
        str(net.trust.tsa_cert),
        "--ca",
        str(net.ca_cert),
    )
    assert exported.returncode == 0, exported.stderr
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(net.ca_cert.read_bytes() + net.trust.tsa_cert.read_bytes())
    audited = gateway("audit", "verify", str(bundle), "--anchor", str(anchor))
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert audited.stdout.startswith("OK ")
    assert "tree heads signed by the member" in audited.stdout

    # Lippstadt's three responses in the bundle are signed with the token key's certificate.
    records = [json.loads(line) for line in bundle.read_text("utf-8").splitlines()]
    responses = [r for r in records if r["type"] == "entry" and r["kind"] == "response"]
    assert len(responses) == 3
    assert {r["cert_ref"] for r in responses} == {cert_ref(token_cert)}
