"""TUF keys in a PKCS#11 token (SoftHSM2, in process): signing, the key ring, the
holder's public key file and the central's token file (docs/adr/0053)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, Root, Timestamp

from gateway.central.onlinekeys import (
    ONLINE_TOKEN_NAME,
    OnlineToken,
    online_keyring,
    read_online_token,
    write_online_token,
)
from gateway.central.repo import KeyStore, RepoError
from gateway.keys.pkcs11 import TokenError, generate_token_key
from gateway.keys.tuftoken import (
    TokenKeyring,
    TokenTufSigner,
    load_public_key_document,
    public_key_document,
)
from tests.softhsm import SOFTHSM_MODULE, make_soft_token


def test_token_keys_sign_tuf_metadata_a_client_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = make_soft_token(tmp_path, monkeypatch, "tuf-unit")
    ring = TokenKeyring(token.ref(""), token.pin)
    try:
        store = KeyStore(tmp_path / "keys", ring)
        first, second = store.generate(), store.generate()
        with pytest.raises(RepoError, match="ECDSA P-256 keys, not 'ed25519'"):
            store.generate("ed25519")
        assert not (tmp_path / "keys").exists()  # nothing written as a file
        assert set(store.signers()) == {first.public_key.keyid, second.public_key.keyid}

        root = Root()
        root.add_key(first.public_key, Timestamp.type)
        md = Metadata(Timestamp())
        md.sign(store.signers()[first.public_key.keyid])
        root.verify_delegate(Timestamp.type, md.signed_bytes, md.signatures)  # TUF's check
        md.signed.version += 1  # what was signed is what is checked
        with pytest.raises(UnsignedMetadataError, match="signed by 0/1 keys"):
            root.verify_delegate(Timestamp.type, md.signed_bytes, md.signatures)
    finally:
        ring.close()


def test_a_holders_public_key_file_cannot_carry_another_keys_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = make_soft_token(tmp_path, monkeypatch, "tuf-holder")
    signer = TokenTufSigner(generate_token_key(token.ref("root-1"), token.pin))
    try:
        path = tmp_path / "root-1.json"
        path.write_text(json.dumps(public_key_document(signer)))
        assert load_public_key_document(path) == signer.public_key
        document = json.loads(path.read_text())
        document["keyid"] = "0" * 64
        path.write_text(json.dumps(document))
        with pytest.raises(TokenError, match="does not match its key data"):
            load_public_key_document(path)
    finally:
        signer.close()


def test_the_centrals_token_file_and_its_pin_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert read_online_token(tmp_path) is None  # online keys are files
    token = make_soft_token(tmp_path / "hsm", monkeypatch, "tuf-central-unit")
    loose = tmp_path / "loose-pin"
    loose.write_text(token.pin)
    loose.chmod(0o644)
    central = tmp_path / "central"
    central.mkdir()
    write_online_token(central, OnlineToken(SOFTHSM_MODULE, token.label, loose))
    assert read_online_token(central) == OnlineToken(SOFTHSM_MODULE, token.label, loose)
    with pytest.raises(FileExistsError):
        write_online_token(central, OnlineToken(SOFTHSM_MODULE, token.label, loose))
    with pytest.raises(RepoError, match="chmod 600"):
        online_keyring(central)
    (central / ONLINE_TOKEN_NAME).write_text(
        f'module = "{SOFTHSM_MODULE}"\ntoken = "{token.label}"\npin = "x"\n'
    )
    with pytest.raises(RepoError, match=r"unknown keys \['pin'\]"):
        read_online_token(central)
    (central / ONLINE_TOKEN_NAME).write_text(
        f'module = "{SOFTHSM_MODULE}"\ntoken = "{token.label}"\npin_env = "GW_UNIT_PIN"\n'
    )
    monkeypatch.setenv("GW_UNIT_PIN", "999999")
    with pytest.raises(RepoError, match=r"PIN of token 'tuf-central-unit' \(from \$GW_UNIT_PIN\)"):
        online_keyring(central)
    monkeypatch.setenv("GW_UNIT_PIN", token.pin)
    ring = online_keyring(central)
    assert ring is not None
    assert online_keyring(central) is ring  # one login per process
