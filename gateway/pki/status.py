"""What a CA says about a certificate (RFC 6960): good, revoked, or unknown.

Statuses follow RFC 6960: *good* means "issued by this CA and not revoked", *revoked*
carries the time and reason, and *unknown* means "this CA never issued that serial".
Also the spellings an operator uses for serials and revocation reasons. Pure: the CA's
revocation database that produces these statuses is ``gateway.trust.revocation``
(docs/adr/0016); the OCSP structures (``gateway.pki.ocsp``) carry them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

# RFC 5280 section 5.3.1: removeFromCRL only un-holds a delta-CRL entry; it is no reason
# to revoke, so it cannot be chosen.
REVOCATION_REASONS: tuple[x509.ReasonFlags, ...] = tuple(
    r for r in x509.ReasonFlags if r is not x509.ReasonFlags.remove_from_crl
)


class RevocationError(ValueError):
    """A revocation that cannot be recorded, or a database that cannot be trusted."""


@dataclass(frozen=True)
class Good:
    """Issued by this CA and not revoked."""


@dataclass(frozen=True)
class Revoked:
    """Revoked at ``time`` (whole seconds, UTC, as OCSP carries it) for ``reason``."""

    time: datetime
    reason: x509.ReasonFlags


@dataclass(frozen=True)
class Unknown:
    """Not issued by this CA, so the CA can say nothing about it."""


CertStatus = Good | Revoked | Unknown
GOOD = Good()
UNKNOWN = Unknown()


def serial_hex(serial: int) -> str:
    """The name the CA files an issued certificate under: lowercase hex, no padding."""
    return f"{serial:x}"


def parse_serial(text: str) -> int:
    """Read a serial as an operator copies it: hex, with or without ``0x`` or colons."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        serial = int(cleaned, 16)
    except ValueError:
        raise RevocationError(f"{text!r} is not a hexadecimal serial number") from None
    if serial <= 0:
        raise RevocationError(f"serial numbers are positive, got {text!r}")
    return serial


def parse_reason(text: str) -> x509.ReasonFlags:
    """Accept the RFC 5280 name (``keyCompromise``) or the Python one (``key_compromise``)."""
    for reason in REVOCATION_REASONS:
        if text in (reason.value, reason.name):
            return reason
    names = ", ".join(r.value for r in REVOCATION_REASONS)
    raise RevocationError(f"unknown revocation reason {text!r}; use one of {names}")
