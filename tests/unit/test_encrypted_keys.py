"""Encrypted private key files: written, opened, refused, converted in place.

The passphrase never appears in a message; a key encrypted in place leaves no plain
copy beside it and keeps mode 0600 (docs/adr/0041).
"""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from gateway.keys.files import (
    KeyFileError,
    encrypt_key_file,
    is_encrypted_key_file,
    keep_backup,
    load_private_key,
    write_private_key,
)
from gateway.keys.passphrase import (
    PASSPHRASE_ENV,
    PassphraseError,
    read_passphrase_file,
    resolve_passphrase,
)
from gateway.pki.keys import generate_key, public_key_der

PASSPHRASE = b"Pumpernickel-Westfalen-2026"


def _secret(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_an_encrypted_key_opens_with_its_passphrase_only(tmp_path: Path) -> None:
    key = generate_key()
    path = tmp_path / "auth.key"
    write_private_key(path, key, PASSPHRASE)
    data = path.read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert is_encrypted_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_key_der(load_private_key(path, PASSPHRASE)) == public_key_der(key)
    with pytest.raises(KeyFileError, match="no passphrase was given") as locked:
        load_private_key(path)
    assert str(path) in str(locked.value)


def test_a_wrong_passphrase_is_named_as_such_and_never_shown(tmp_path: Path) -> None:
    path = tmp_path / "sign.key"
    write_private_key(path, generate_key(), PASSPHRASE)
    wrong = b"Schwarzbrot-falsch-4711"
    with pytest.raises(KeyFileError) as caught:
        load_private_key(path, wrong)
    message = str(caught.value)
    assert "wrong passphrase" in message and str(path) in message
    assert wrong.decode() not in message and PASSPHRASE.decode() not in message


def test_a_plain_key_still_loads_for_the_callers_rule_to_judge(tmp_path: Path) -> None:
    path = tmp_path / "plain.key"
    key = generate_key()
    write_private_key(path, key)
    assert not is_encrypted_key_file(path)
    assert public_key_der(load_private_key(path, PASSPHRASE)) == public_key_der(key)


def test_encrypt_in_place_keeps_the_key_and_its_mode_and_leaves_no_plain_copy(
    tmp_path: Path,
) -> None:
    key = generate_key()
    path = tmp_path / "auth.key"
    write_private_key(path, key)
    plain = path.read_bytes()
    inode = path.stat().st_ino

    assert encrypt_key_file(path, PASSPHRASE) == 0

    assert sorted(p.name for p in tmp_path.iterdir()) == ["auth.key"]
    assert path.stat().st_ino != inode
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert is_encrypted_key_file(path) and path.read_bytes() != plain
    assert public_key_der(load_private_key(path, PASSPHRASE)) == public_key_der(key)
    with pytest.raises(KeyFileError, match="already encrypted"):
        encrypt_key_file(path, PASSPHRASE)


def test_encrypt_in_place_reports_a_backup_that_still_holds_the_plain_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sign.key"
    write_private_key(path, generate_key())
    backup = keep_backup(path, "20261207T000000Z")
    plain = backup.read_bytes()
    assert encrypt_key_file(path, PASSPHRASE) == 1
    assert backup.read_bytes() == plain  # the backup is not destroyed, only reported
    assert is_encrypted_key_file(path)


def test_the_passphrase_file_must_be_the_owners_alone(tmp_path: Path) -> None:
    good = _secret(tmp_path / "ok", PASSPHRASE + b"\n")
    assert read_passphrase_file(good) == PASSPHRASE
    loose = _secret(tmp_path / "loose", PASSPHRASE, 0o644)
    with pytest.raises(PassphraseError, match="chmod 600") as caught:
        read_passphrase_file(loose)
    assert PASSPHRASE.decode() not in str(caught.value)
    with pytest.raises(PassphraseError, match="empty"):
        read_passphrase_file(_secret(tmp_path / "empty", b"\n"))


def test_the_passphrase_comes_from_file_then_environment_then_a_terminal(
    tmp_path: Path,
) -> None:
    file = _secret(tmp_path / "p", b"aus-der-datei")
    env = {PASSPHRASE_ENV: "aus-der-umgebung"}
    assert resolve_passphrase(file, environ=env) == b"aus-der-datei"
    assert resolve_passphrase(None, environ=env) == b"aus-der-umgebung"
    asked = resolve_passphrase(None, environ={}, prompt=lambda _: "getippt", interactive=True)
    assert asked == b"getippt"
    with pytest.raises(PassphraseError, match=PASSPHRASE_ENV):
        resolve_passphrase(None, environ={}, prompt=lambda _: "nie", interactive=False)


def test_gateway_keys_encrypt_round_trip(tmp_path: Path) -> None:
    key = generate_key()
    path = tmp_path / "internal-tls.key"
    write_private_key(path, key)
    secret = _secret(tmp_path / "passphrase", PASSPHRASE + b"\n")
    command = [sys.executable, "-m", "gateway", "keys", "encrypt", str(path)]
    done = subprocess.run(
        [*command, "--passphrase-file", str(secret)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert f"encrypted {path}" in done.stdout
    assert public_key_der(load_private_key(path, PASSPHRASE)) == public_key_der(key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = subprocess.run(
        [*command, "--passphrase-file", str(secret)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert again.returncode != 0 and "already encrypted" in again.stderr
    assert PASSPHRASE.decode() not in again.stderr + again.stdout


def test_openssls_older_encrypted_pem_counts_as_encrypted(tmp_path: Path) -> None:
    key = generate_key()
    path = tmp_path / "legacy.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(PASSPHRASE),
        )
    )
    assert is_encrypted_key_file(path)
    assert public_key_der(load_private_key(path, PASSPHRASE)) == public_key_der(key)
    with pytest.raises(KeyFileError, match="already encrypted"):
        encrypt_key_file(path, PASSPHRASE)
