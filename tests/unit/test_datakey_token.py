"""The node's data key kept by an AES key in a PKCS#11 token (SoftHSM2, in process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.core.encoding import b64url, b64url_decode
from gateway.keys.datakey import DataKeyError
from gateway.keys.datakey_token import create_token_data_key, load_token_data_key
from gateway.keys.pkcs11 import generate_token_key
from tests.softhsm import make_soft_token


def test_the_token_keeps_the_data_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = make_soft_token(tmp_path / "hsm", monkeypatch, "node-data")
    path = tmp_path / "data.key"
    made = create_token_data_key(path, token.ref("data-kek"), token.pin)
    assert path.stat().st_mode & 0o777 == 0o600
    sealed = made.seal(b"Schmidt", "body")
    loaded = load_token_data_key(path, token.ref("data-kek"), token.pin)
    assert loaded.key_id == made.key_id
    assert loaded.open(sealed, "body") == b"Schmidt"

    with pytest.raises(DataKeyError, match="never overwritten"):
        create_token_data_key(path, token.ref("data-kek-2"), token.pin)
    with pytest.raises(DataKeyError, match="already holds a key labelled 'data-kek'"):
        create_token_data_key(tmp_path / "other.key", token.ref("data-kek"), token.pin)
    with pytest.raises(
        DataKeyError, match="kept by key 'data-kek' in token 'node-data', not by key 'other'"
    ):
        load_token_data_key(path, token.ref("other"), token.pin)
    with pytest.raises(DataKeyError, match=r"PIN of token 'node-data' \(from .*\) is wrong"):
        load_token_data_key(path, token.ref("data-kek"), "999999")

    document = json.loads(path.read_text())
    wrapped = bytearray(b64url_decode(document["wrapped_key"]))
    wrapped[0] ^= 1
    document["wrapped_key"] = b64url(bytes(wrapped))
    altered = tmp_path / "altered.key"
    altered.write_text(json.dumps(document))
    with pytest.raises(DataKeyError, match="does not decrypt the data key"):
        load_token_data_key(altered, token.ref("data-kek"), token.pin)


def test_a_signing_key_and_the_data_key_share_the_tokens_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PKCS#11 logs a whole process in: opening the data key while a signing key of the
    same token is logged in neither fails nor logs the signing key out."""
    token = make_soft_token(tmp_path / "hsm", monkeypatch, "node-both")
    path = tmp_path / "data.key"
    create_token_data_key(path, token.ref("data-kek"), token.pin)
    signing = generate_token_key(token.ref("sign"), token.pin)
    try:
        load_token_data_key(path, token.ref("data-kek"), token.pin)
        assert len(signing.sign(b"header")) > 64  # still logged in: a DER signature
    finally:
        signing.close()
