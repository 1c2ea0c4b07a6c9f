"""The CA's revocation database: one JSON file next to ``issued/``, read at every lookup.

Why a JSON file and not a database: the CA directory is already the unit an operator
backs up and moves, a development CA revokes a handful of certificates in its life, and
a file replaced atomically (write a temporary file, fsync, rename, fsync the directory)
is never seen half-written by the OCSP responder reading it concurrently. Writers take
an exclusive ``flock`` on a side file, so two ``gateway pki revoke`` runs cannot lose
each other's entry.

Statuses follow RFC 6960: *good* means "issued by this CA and not revoked", *revoked*
carries the time and reason, and *unknown* means "this CA never issued that serial";
the ``issued/`` copies the CA writes at issuance are the record of what it issued.
A damaged database raises :class:`RevocationError` rather than reading as empty, so a
responder answers ``internalError`` instead of calling a revoked certificate good. The
statuses themselves are ``gateway.pki.status``.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.fsutil import replace_atomically
from gateway.keys.files import load_certificate
from gateway.pki.status import (
    GOOD,
    REVOCATION_REASONS,
    UNKNOWN,
    CertStatus,
    RevocationError,
    Revoked,
    serial_hex,
)
from gateway.trust.ca_store import CA_CERT_NAME, ISSUED_DIR_NAME

REVOKED_DB_NAME = "revoked.json"
_LOCK_NAME = ".revoked.lock"
_FORMAT = 1


def _issued_path(ca_dir: Path, serial: int) -> Path:
    return ca_dir / ISSUED_DIR_NAME / f"{serial_hex(serial)}.pem"


def _parse_db(path: Path, raw: bytes) -> dict[int, Revoked]:
    try:
        doc: Any = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise ValueError(f"expected format {_FORMAT}")
        entries: dict[int, Revoked] = {}
        for item in doc["revoked"]:
            serial = int(item["serial"], 16)
            time = datetime.fromisoformat(item["time"])
            if time.tzinfo is None:
                raise ValueError(f"revocation time of {item['serial']} has no time zone")
            if serial in entries:
                raise ValueError(f"serial {item['serial']} is listed twice")
            entries[serial] = Revoked(time.astimezone(UTC), x509.ReasonFlags(item["reason"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise RevocationError(f"revocation database {path} is damaged: {exc}") from None
    return entries


def load_revocations(ca_dir: Path) -> dict[int, Revoked]:
    """Every revocation by serial; a CA that never revoked anything has no file yet."""
    path = ca_dir / REVOKED_DB_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    return _parse_db(path, raw)


def status_of(ca_dir: Path, serial: int) -> CertStatus:
    """What the CA in ``ca_dir`` says about ``serial`` right now (read from disk each call)."""
    revoked = load_revocations(ca_dir).get(serial)
    if revoked is not None:
        return revoked
    if serial > 0 and _issued_path(ca_dir, serial).is_file():
        return GOOD
    return UNKNOWN


def _dump_db(entries: dict[int, Revoked]) -> bytes:
    doc = {
        "format": _FORMAT,
        "revoked": [
            {
                "serial": serial_hex(serial),
                "time": entries[serial].time.isoformat(),
                "reason": entries[serial].reason.value,
            }
            for serial in sorted(entries)
        ],
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


@contextmanager
def _locked(ca_dir: Path) -> Iterator[None]:
    with (ca_dir / _LOCK_NAME).open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _serial_of_target(ca_dir: Path, target: int | x509.Certificate) -> int:
    """The serial to revoke, refusing anything this CA did not issue.

    A certificate is compared byte for byte with the CA's own copy: another CA's
    certificate that happens to share the serial must not revoke ours.
    """
    if isinstance(target, int):
        serial = target
        if not _issued_path(ca_dir, serial).is_file():
            raise RevocationError(
                f"serial {serial_hex(serial)} was not issued by the CA in {ca_dir} "
                f"(no {ISSUED_DIR_NAME}/{serial_hex(serial)}.pem)"
            )
        return serial
    serial = target.serial_number
    issued = _issued_path(ca_dir, serial)
    der = serialization.Encoding.DER
    if not issued.is_file() or load_certificate(issued).public_bytes(der) != target.public_bytes(
        der
    ):
        raise RevocationError(
            f"certificate {target.subject.rfc4514_string()} (serial {serial_hex(serial)}) "
            f"was not issued by the CA in {ca_dir}"
        )
    return serial


def revoke(
    ca_dir: Path,
    target: int | x509.Certificate,
    reason: x509.ReasonFlags,
    now: datetime,
) -> Revoked:
    """Record that ``target`` (a serial or a certificate) is revoked as of ``now``.

    Revoking twice is refused rather than overwritten: the first revocation time is
    what relying parties have already seen, and moving it would rewrite history.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    if reason not in REVOCATION_REASONS:
        raise RevocationError(f"{reason.value} is not a reason to revoke a certificate")
    if not (ca_dir / CA_CERT_NAME).is_file():
        raise FileNotFoundError(f"{ca_dir} is not a CA directory (no {CA_CERT_NAME})")
    serial = _serial_of_target(ca_dir, target)
    entry = Revoked(now.astimezone(UTC).replace(microsecond=0), reason)
    with _locked(ca_dir):
        entries = load_revocations(ca_dir)
        previous = entries.get(serial)
        if previous is not None:
            raise RevocationError(
                f"serial {serial_hex(serial)} is already revoked since "
                f"{previous.time.isoformat()} ({previous.reason.value})"
            )
        entries[serial] = entry
        replace_atomically(ca_dir / REVOKED_DB_NAME, _dump_db(entries))
    return entry
