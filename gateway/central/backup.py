"""``gateway central backup`` and ``restore``: the central's directory in one signed,
encrypted file.

The central's state is its directory (``gateway.central.service``: the registry
database, the TUF keys and repository, the admin key, the anchor). The backup is a tar
of it with ``central.sqlite`` replaced by a consistent snapshot (SQLite's online backup
API, so the central may keep serving), signed with a backup signing key of the
central's own (``backup-signing.pem``, P-256, made at the first backup, 0600, in the
directory and so in every backup): not a TUF role key, whose signature means "this is
the configuration" to every node. Encrypted to a backup key (``gateway.backupfile``).
"""

from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.backupdir import tar_directory, untar_into
from gateway.backupfile import BackupError, open_backup, seal_backup, spki_sha256
from gateway.central.service import DB_NAME
from gateway.core.encoding import format_time
from gateway.keys.backupkeys import load_backup_key, load_backup_recipient
from gateway.keys.files import load_private_key, write_private_key

__all__ = ["SIGNING_KEY_NAME", "CentralBackup", "backup_central", "restore_central"]

SIGNING_KEY_NAME: Final = "backup-signing.pem"


@dataclass(frozen=True, slots=True)
class CentralBackup:
    files: int
    bytes: int
    signer_sha256: str


def _signing_key(directory: Path) -> ec.EllipticCurvePrivateKey:
    path = directory / SIGNING_KEY_NAME
    if not path.exists():
        write_private_key(path, ec.generate_private_key(ec.SECP256R1()))
    return load_private_key(path)


def backup_central(
    directory: Path, out: Path, recipient_path: Path, *, now: datetime
) -> CentralBackup:
    """Write the backup of the central directory ``directory`` to ``out``."""
    if out.exists():
        raise BackupError(f"{out} exists; a backup is never overwritten")
    database = directory / DB_NAME
    if not database.is_file():
        raise BackupError(f"{directory} is not a central directory (no {DB_NAME})")
    recipient = load_backup_recipient(recipient_path)
    key = _signing_key(directory)
    base = directory.resolve()
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=out.parent) as scratch:
        snapshot = Path(scratch) / DB_NAME
        source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
        try:
            target = sqlite3.connect(snapshot)
            try:
                source.backup(target)
            finally:
                target.close()
        finally:
            source.close()
        payload, count = tar_directory(
            base, {base / DB_NAME: snapshot}, {out.resolve(), Path(scratch).resolve()}
        )
    header = {"kind": "central", "of": base.name, "created": format_time(now)}
    sealed = seal_backup(
        payload,
        header,
        recipient,
        key.public_key(),
        lambda data: key.sign(data, ec.ECDSA(hashes.SHA256())),
    )
    out.write_bytes(sealed)
    out.chmod(0o600)
    return CentralBackup(count, len(sealed), spki_sha256(key.public_key()))


def restore_central(
    backup: Path, to: Path, key_path: Path, *, signer_sha256: str | None = None
) -> tuple[dict[str, object], int]:
    """Check, decrypt and unpack a central backup into the fresh directory ``to``."""
    opened = open_backup(
        backup.read_bytes(), load_backup_key(key_path), signer_sha256=signer_sha256
    )
    if opened.header.get("kind") != "central":
        raise BackupError(f"{backup} is a backup of a {opened.header.get('kind')}, not a central")
    return opened.header, untar_into(opened.payload, to)
