"""The central's online TUF key files: encrypted under a passphrase, or plain only in a
central marked as a development set-up (gateway.central.keyfiles, docs/adr/0053)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.central.errors import CentralError
from gateway.central.keyfiles import DEVELOPMENT_NAME
from gateway.central.repo import RepoError
from gateway.central.service import Central, InitOptions
from gateway.keys.files import load_certificate
from gateway.trust.ca_store import init_ca

PASSPHRASE = b"central online keys"


def _options(tmp_path: Path, **kwargs: object) -> InitOptions:
    ca_dir = tmp_path / "ca"
    ca = init_ca(ca_dir, "Test CA", datetime.now(UTC)) if not ca_dir.exists() else None
    if ca is None:
        ca = load_certificate(ca_dir / "ca.pem")
    return InitOptions(instance="DE-NRW", ca_cert=ca, ocsp_urls=(), public_url="http://x", **kwargs)  # type: ignore[arg-type]


def test_online_key_files_are_encrypted_and_need_their_passphrase_to_sign(
    tmp_path: Path,
) -> None:
    with pytest.raises(CentralError, match="need a passphrase"):
        Central.init(tmp_path / "plain", _options(tmp_path))
    directory = tmp_path / "c"
    Central.init(directory, _options(tmp_path, key_passphrase=PASSPHRASE))
    keys = list((directory / "keys").glob("*.pem"))
    assert len(keys) == 4  # root, targets, snapshot, timestamp
    for key in keys:
        assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert not (directory / DEVELOPMENT_NAME).exists()

    reader = Central(directory)  # reading needs no key
    assert reader.repo().root_json()["signed"]
    with pytest.raises(CentralError, match="is encrypted and no passphrase was given"):
        reader.republish()  # undone: nothing is published unsigned
    with pytest.raises(CentralError, match="wrong passphrase"):
        Central(directory, key_passphrase=b"not it").republish()
    serial = Central(directory, key_passphrase=PASSPHRASE).republish()
    assert serial > 1


def test_plain_key_files_only_in_a_central_marked_as_development(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    central = Central.init(directory, _options(tmp_path, development=True))
    assert (directory / DEVELOPMENT_NAME).exists()
    assert central.republish() > 1
    (directory / DEVELOPMENT_NAME).unlink()
    with pytest.raises(RepoError, match=r"is an unencrypted private key.*gateway keys encrypt"):
        Central(directory).repo()
