"""Member signing keys in a PKCS#11 token, against a real SoftHSM2 token.

The key is generated on the token by ``gateway node token init-key``, its CSR is signed
by the token and verified by OpenSSL, a certificate issued from it lets a ``Signer``
over the token key make JWS signatures the project's verifier accepts, and a wrong PIN
fails with a message that names its source and never the PIN.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from gateway.cli import main
from gateway.core.envelope import EnvelopeError
from gateway.core.ids import MemberId
from gateway.core.jws import SignatureVerifier, Signer
from gateway.keys.pkcs11 import (
    TokenError,
    TokenKeyRef,
    TokenSigningKey,
    generate_token_key,
    load_token_key,
    read_pin,
)
from gateway.node.config import SigningKey
from gateway.pki.ca import create_root_ca, issue_certificate
from gateway.pki.csr import make_csr_signed_by
from gateway.pki.keys import generate_key
from gateway.pki.profiles import CertificateError, CertKind
from tests.softhsm import SOFTHSM_MODULE, SoftToken, make_soft_token

MEMBER = MemberId.parse("DE-NRW/GOV/05974028")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _spki(key: TokenSigningKey | x509.CertificateSigningRequest) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SoftToken:
    return make_soft_token(tmp_path / "hsm", monkeypatch, "member-signing")


def _init_key(token: SoftToken, csr: Path, *pin: str) -> None:
    main(
        [
            "node",
            "token",
            "init-key",
            "--module",
            str(SOFTHSM_MODULE),
            "--token",
            token.label,
            "--key-label",
            "sign-2026",
            "--member",
            str(MEMBER),
            "--org",
            "Stadt Lippstadt",
            "--csr",
            str(csr),
            *(pin or ("--pin-file", str(token.pin_file))),
        ]
    )


def test_key_generated_on_the_token_signs_its_csr_and_verifying_signatures(
    token: SoftToken, tmp_path: Path
) -> None:
    csr_path = tmp_path / "sign.csr"
    _init_key(token, csr_path)
    verified = subprocess.run(
        ["openssl", "req", "-verify", "-noout", "-in", str(csr_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert verified.returncode == 0, verified.stderr
    assert "verify OK" in verified.stdout + verified.stderr

    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    key = load_token_key(token.ref("sign-2026"), token.pin)
    assert _spki(key) == _spki(csr)
    ca_key = generate_key()
    root = create_root_ca("Token Test CA", ca_key, NOW)
    cert = issue_certificate(csr, CertKind.SIGN, ca_key, root, NOW)

    signer = Signer(MEMBER, key, [cert])
    verifier = SignatureVerifier([root])
    jws = signer.sign(b'{"payload":1}')
    assert verifier.verify(jws, b'{"payload":1}', NOW).signer == MEMBER
    with pytest.raises(EnvelopeError, match="does not verify"):
        verifier.verify(jws, b'{"payload":2}', NOW)
    # The token's DER signature itself verifies with the certificate's public key.
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(key.sign(b"data"), b"data", ec.ECDSA(hashes.SHA256()))
    key.close()


def test_the_private_key_never_leaves_the_token(token: SoftToken) -> None:
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    generate_token_key(token.ref("sign-2026"), token.pin).close()
    with (
        pkcs11.lib(str(SOFTHSM_MODULE))
        .get_token(token_label=token.label)
        .open(user_pin=token.pin) as session
    ):
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="sign-2026")
        assert private[Attribute.SENSITIVE] is True
        assert private[Attribute.EXTRACTABLE] is False


def test_a_wrong_pin_fails_clearly_without_the_pin(
    token: SoftToken, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    generate_token_key(token.ref("sign-2026"), token.pin).close()
    wrong = tmp_path / "wrong-pin"
    wrong.write_text("97531864\n")
    ref = TokenKeyRef(SOFTHSM_MODULE, token.label, "sign-2026", pin_file=wrong)
    with pytest.raises(TokenError) as caught:
        load_token_key(ref, read_pin(ref))
    message = str(caught.value)
    assert "PIN" in message and "wrong" in message and str(wrong) in message
    assert "97531864" not in message and token.pin not in message

    with pytest.raises(SystemExit) as exited:
        _init_key(token, tmp_path / "other.csr", "--pin-file", str(wrong))
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "PIN" in err and "wrong" in err
    assert "97531864" not in err and token.pin not in err
    assert not (tmp_path / "other.csr").exists()


def test_an_existing_key_label_is_never_replaced(token: SoftToken) -> None:
    first = generate_token_key(token.ref("sign-2026"), token.pin)
    before = _spki(first)
    first.close()
    with pytest.raises(TokenError, match="already holds a key labelled 'sign-2026'"):
        generate_token_key(token.ref("sign-2026"), token.pin)
    again = load_token_key(token.ref("sign-2026"), token.pin)
    assert _spki(again) == before
    again.close()


def test_unknown_token_or_key_is_named(token: SoftToken) -> None:
    with pytest.raises(TokenError, match="no token labelled 'elsewhere'"):
        load_token_key(TokenKeyRef(SOFTHSM_MODULE, "elsewhere", "sign-2026"), token.pin)
    with pytest.raises(TokenError, match="no private and public key labelled 'missing'"):
        load_token_key(token.ref("missing"), token.pin)


def test_pin_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from_env = TokenKeyRef(SOFTHSM_MODULE, "t", "k", pin_env="GW_TEST_TOKEN_PIN")
    monkeypatch.setenv("GW_TEST_TOKEN_PIN", "4711")
    assert read_pin(from_env) == "4711"
    monkeypatch.delenv("GW_TEST_TOKEN_PIN")
    with pytest.raises(TokenError, match="from the environment variable GW_TEST_TOKEN_PIN"):
        read_pin(from_env)
    prompted = TokenKeyRef(SOFTHSM_MODULE, "t", "k")
    assert read_pin(prompted, prompt=lambda _: "0815", interactive=True) == "0815"
    with pytest.raises(TokenError, match="set pin_file or pin_env"):
        read_pin(prompted, prompt=lambda _: "0815", interactive=False)
    with pytest.raises(TokenError, match="cannot read the PIN file"):
        read_pin(TokenKeyRef(SOFTHSM_MODULE, "t", "k", pin_file=tmp_path / "absent"))


def test_csr_from_a_signer_that_is_not_the_key_is_refused() -> None:
    key, other = generate_key(), generate_key()
    with pytest.raises(CertificateError, match="does not match its public key"):
        make_csr_signed_by(
            key.public_key(),
            lambda data: other.sign(data, ec.ECDSA(hashes.SHA256())),
            CertKind.SIGN,
            MEMBER,
        )
    good = make_csr_signed_by(
        key.public_key(),
        lambda data: key.sign(data, ec.ECDSA(hashes.SHA256())),
        CertKind.SIGN,
        MEMBER,
        "Stadt Lippstadt",
    )
    assert good.is_signature_valid
    assert good.subject.rfc4514_string() == f"CN={MEMBER},O=Stadt Lippstadt"


def test_a_signing_entry_names_a_key_file_or_a_token_never_both() -> None:
    token = {"module": str(SOFTHSM_MODULE), "label": "t", "key_label": "k", "pin_env": "PIN"}
    entry = SigningKey.model_validate({"member": str(MEMBER), "cert": "s.pem", "token": token})
    assert entry.key is None and entry.token is not None
    assert entry.key_source() == "key 'k' in token 't'"
    for fields in ({"key": "s.key", "token": token}, {}):
        with pytest.raises(ValidationError, match="exactly one of key"):
            SigningKey.model_validate({"member": str(MEMBER), "cert": "s.pem", **fields})
    with pytest.raises(ValidationError, match="pin_file or pin_env, not both"):
        SigningKey.model_validate(
            {"member": str(MEMBER), "cert": "s.pem", "token": {**token, "pin_file": "p"}}
        )


def test_the_management_api_points_a_token_key_to_init_key() -> None:
    from gateway.core.errors import Code, GatewayError
    from gateway.node.config import NodeConfig
    from gateway.node.keyadmin import make_csr

    token = {"module": str(SOFTHSM_MODULE), "label": "t", "key_label": "k", "pin_env": "PIN"}
    config = NodeConfig.model_validate(
        {
            "node": {
                "id": f"{MEMBER}/ss1",
                "messagelog": "log.sqlite",
                "auth_cert": "auth.pem",
                "auth_key": "auth.key",
            },
            "signing": [{"member": str(MEMBER), "cert": "sign.pem", "token": token}],
            "globalconf": {"anchor": "anchor.json"},
        }
    )
    with pytest.raises(GatewayError) as refused:
        make_csr(config, MEMBER, new_key=True)
    assert refused.value.code is Code.KEY_NOT_FOUND
    assert "key 'k' in token 't'" in str(refused.value)
    assert "gateway node token init-key" in str(refused.value)
