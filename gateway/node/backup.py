"""``gateway node backup`` and ``restore``: one signed, encrypted file with a whole node.

What a node needs to come back on a fresh machine is its directory (node.toml, the API
keys file, the registered client certificates, its key and certificate files, the global
configuration state) and its message log, which also holds the settings in force. The
backup is a tar of the directory of node.toml, with the log replaced by a consistent
snapshot taken with SQLite's online backup API (the node may keep running), signed with
the node's signing key and encrypted to a backup key (``gateway.backupfile``). Files
keep their modes, so key files stay 0600 and encrypted key files stay encrypted.

A log in PostgreSQL is not in the file: ``pg_dump`` is the tool for it
(docs/deployment.md, Backup and restore), and the backup says so rather than pretending.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.backupdir import tar_directory, untar_into
from gateway.backupfile import BackupError, open_backup, seal_backup, spki_sha256
from gateway.core.encoding import format_time
from gateway.keys.backupkeys import load_backup_key, load_backup_recipient
from gateway.messagelog import body_segment_dir, snapshot_sqlite
from gateway.node.config import load_config
from gateway.node.startup import signing_key, unlock_keys

__all__ = ["BackupResult", "backup_node", "restore_node"]


@dataclass(frozen=True, slots=True)
class BackupResult:
    files: int
    bytes: int
    signer_sha256: str
    """Pin it to restore: ``gateway node restore --signer SHA256``."""
    left_out: list[str]
    """Files node.toml names outside its directory, or a PostgreSQL log: not in the file."""


def backup_node(
    config_path: Path, out: Path, recipient_path: Path, *, now: datetime
) -> BackupResult:
    """Write the backup of the node configured by ``config_path`` to ``out``."""
    if out.exists():
        raise BackupError(f"{out} exists; a backup is never overwritten")
    config = load_config(config_path)
    base = config_path.resolve().parent
    if not config.signing:
        raise BackupError("node.toml has no [[signing]] key to sign the backup with")
    entry = config.signing[0]
    key = signing_key(entry, unlock_keys(config))  # an encrypted key file (docs/adr/0041)
    recipient = load_backup_recipient(recipient_path)
    left_out = []
    named = [config.node.auth_cert, config.node.auth_key, config.node.api_keys]
    named += [p for s in config.signing for p in (s.cert, s.key) if p is not None]
    named += [config.logging.data_key] if config.logging.data_key else []  # sealed rows need it
    for path in named:
        if path is not None and base not in Path(path).resolve().parents:
            left_out.append(str(path))
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=out.parent) as scratch:
        replaced: dict[Path, Path] = {}
        skip: set[Path] = {out.resolve()}
        log_file = config.node.messagelog
        if log_file is None:
            left_out.append("the message log in PostgreSQL (back it up with pg_dump)")
        else:
            snapshot = Path(scratch) / "messagelog.sqlite"
            snapshot_sqlite(log_file, snapshot)
            resolved = Path(log_file).resolve()
            if base in resolved.parents:
                replaced[resolved] = snapshot
            else:
                left_out.append(str(log_file))
            # Large bodies live beside the file (ADR 0071); append-only, so the segments
            # tarred after the snapshot hold every byte its rows name.
            if base not in resolved.parents and body_segment_dir(resolved).exists():
                left_out.append(str(body_segment_dir(resolved)))
        skip.add(Path(scratch).resolve())
        payload, count = tar_directory(base, replaced, skip)
    header = {
        "kind": "node",
        "of": config.node.id,
        "created": format_time(now),
        "config": config_path.name,
        "left_out": left_out,
    }
    if isinstance(key, ec.EllipticCurvePrivateKey):
        file_key = key

        def sign(data: bytes) -> bytes:
            return file_key.sign(data, ec.ECDSA(hashes.SHA256()))
    else:
        sign = key.sign
    sealed = seal_backup(payload, header, recipient, key.public_key(), sign)
    out.write_bytes(sealed)
    out.chmod(0o600)
    return BackupResult(count, len(sealed), spki_sha256(key.public_key()), left_out)


def restore_node(
    backup: Path, to: Path, key_path: Path, *, signer_sha256: str | None = None
) -> tuple[dict[str, object], int]:
    """Check, decrypt and unpack a node backup into the fresh directory ``to``."""
    opened = open_backup(
        backup.read_bytes(), load_backup_key(key_path), signer_sha256=signer_sha256
    )
    if opened.header.get("kind") != "node":
        raise BackupError(f"{backup} is a backup of a {opened.header.get('kind')}, not a node")
    return opened.header, untar_into(opened.payload, to)
