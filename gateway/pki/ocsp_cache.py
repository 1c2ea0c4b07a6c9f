"""Verified OCSP responses, remembered so each one is parsed and its signature checked once.

A node hands the same OCSP response to its peers with every message until it refreshes
(X-Road: every 1200 s), so a receiver sees one response thousands of times. Parsing the
ASN.1 and verifying the responder's signature per message would cost more than the
message's own JWS check; the outcome of those steps cannot change for the same bytes
about the same certificate. What does change is time: a response that was fresh goes
stale, passes its nextUpdate, or its delegated responder's certificate expires. So the
cache keeps, per (certificate, response as transmitted), either the refusal or the few
times a good response is bounded by, and every use re-checks those against ``now``:
one dict lookup and a handful of comparisons.

Pure: ``now`` is always passed in, nothing here touches the network or the clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from gateway.core.encoding import EncodingError, b64url, b64url_decode
from gateway.pki.ocsp import (
    DEFAULT_FRESHNESS,
    DEFAULT_SKEW,
    OcspError,
    OcspFailure,
    VerifiedStatus,
    verify_ocsp_response,
)

DEFAULT_MAX_ENTRIES = 4096
"""Per node this is far more than needed: one entry per peer certificate and refresh."""

MAX_ENCODED_LENGTH = 64 * 1024
"""The node-to-node header-field limit; a longer value is no OCSP response we accept."""

Verify = Callable[[bytes, x509.Certificate, x509.Certificate, datetime, timedelta], VerifiedStatus]
"""``verify_ocsp_response``'s shape; injectable so tests can count the expensive calls."""

SubjectLoader = Callable[[], tuple[x509.Certificate, x509.Certificate]]
"""Returns (certificate, its issuer); only called on a cache miss."""


def _default_verify(
    der: bytes,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    now: datetime,
    freshness: timedelta,
) -> VerifiedStatus:
    return verify_ocsp_response(der, cert, issuer, now, freshness)


@dataclass(frozen=True, slots=True)
class OcspEvidence:
    """A response that verified as *good*: what travels, what is logged, what bounds it.

    ``encoded`` is the header value (base64url without padding), ``ref`` the SHA-256
    (hex) of ``der`` under which the message log stores it.
    """

    encoded: str
    der: bytes
    ref: str
    serial_number: int
    this_update: datetime
    next_update: datetime | None
    produced_at: datetime
    responder_valid_from: datetime
    responder_valid_until: datetime

    def check_time(self, now: datetime, freshness: timedelta, skew: timedelta) -> None:
        """The time rules of ``verify_ocsp_response``, in its order and with its reasons.

        Also re-checks the responder certificate's validity: a delegated responder that
        has expired since the response was first verified must not keep vouching.
        """
        if self.this_update > now + skew:
            raise OcspError(
                OcspFailure.NOT_YET_VALID,
                f"thisUpdate {self.this_update.isoformat()} is more than "
                f"{skew.total_seconds():g} s ahead of {now.isoformat()}",
            )
        if self.this_update < now - freshness:
            raise OcspError(
                OcspFailure.STALE,
                f"thisUpdate {self.this_update.isoformat()} is older than "
                f"{freshness.total_seconds():g} s at {now.isoformat()}",
            )
        if self.next_update is not None and self.next_update < now:
            raise OcspError(
                OcspFailure.EXPIRED, f"nextUpdate {self.next_update.isoformat()} has passed"
            )
        if not self.responder_valid_from <= now <= self.responder_valid_until:
            raise OcspError(
                OcspFailure.UNAUTHORISED_RESPONDER,
                f"the responder certificate is not valid at {now.isoformat()} (valid "
                f"{self.responder_valid_from.isoformat()} to "
                f"{self.responder_valid_until.isoformat()})",
            )


@dataclass(frozen=True, slots=True)
class _Refusal:
    reason: OcspFailure
    detail: str


def find_issuer(
    cert: x509.Certificate, candidates: Iterable[x509.Certificate]
) -> x509.Certificate | None:
    """The candidate that actually signed ``cert`` (name and key), or ``None``.

    OCSP CertIDs hash the issuer's name and key, so the issuer must be the exact
    certificate, not merely one with a matching name.
    """
    for candidate in candidates:
        if candidate.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(candidate)
        except (InvalidSignature, ValueError, TypeError):
            continue
        return candidate
    return None


def evidence_from(der: bytes, status: VerifiedStatus, encoded: str | None = None) -> OcspEvidence:
    """Package a verified response with the values per-message checks and the log need."""
    return OcspEvidence(
        encoded=encoded if encoded is not None else b64url(der),
        der=der,
        ref=hashlib.sha256(der).hexdigest(),
        serial_number=status.serial_number,
        this_update=status.this_update,
        next_update=status.next_update,
        produced_at=status.produced_at,
        responder_valid_from=status.responder.not_valid_before_utc,
        responder_valid_until=status.responder.not_valid_after_utc,
    )


class OcspCache:
    """Bounded map (certificate ref, transmitted response) -> verified evidence or refusal.

    ``cert_ref`` is the lower-case hex SHA-256 of the certificate's DER (the same value
    as a TLS fingerprint or a log's cert_ref), so a response can never be checked
    against one certificate and then reused for another. Refusals are remembered too,
    so a peer repeating a forged or revoked response costs a lookup, not a signature
    check; the exception is *not yet valid*, the one refusal that time can cure.
    Eviction is first in, first out: entries are replaced by refreshes long before age
    would matter, and a bound is all that is needed against a peer sending junk.
    """

    def __init__(
        self,
        freshness: timedelta = DEFAULT_FRESHNESS,
        *,
        skew: timedelta = DEFAULT_SKEW,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        verify: Verify = _default_verify,
    ) -> None:
        if freshness <= timedelta(0) or skew < timedelta(0):
            raise ValueError("freshness must be positive and skew not negative")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.freshness = freshness
        self.skew = skew
        self._max = max_entries
        self._verify = verify
        self._entries: dict[tuple[str, str], OcspEvidence | _Refusal] = {}
        self.verifications = 0
        """How many times the expensive path ran (parse + signature check)."""

    def __len__(self) -> int:
        return len(self._entries)

    def check(
        self, cert_ref: str, encoded: str, now: datetime, subject: SubjectLoader
    ) -> OcspEvidence:
        """Accept ``encoded`` (base64url DER, as transmitted) as a good, fresh status now.

        Raises :class:`OcspError` with the exact reason otherwise. ``subject`` supplies
        the certificate and its issuer when the response has not been seen before.
        """
        key = (cert_ref, encoded)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._verify_new(key, encoded, now, subject)
        if isinstance(entry, _Refusal):
            raise OcspError(entry.reason, entry.detail)
        entry.check_time(now, self.freshness, self.skew)
        return entry

    def _verify_new(
        self, key: tuple[str, str], encoded: str, now: datetime, subject: SubjectLoader
    ) -> OcspEvidence | _Refusal:
        entry: OcspEvidence | _Refusal
        if len(encoded) > MAX_ENCODED_LENGTH:
            # Not remembered: a key this size would let junk crowd out the real entries.
            raise OcspError(OcspFailure.MALFORMED, "the OCSP response is too long")
        try:
            der = b64url_decode(encoded)
        except EncodingError:
            entry = _Refusal(OcspFailure.MALFORMED, "the OCSP response is not canonical base64url")
        else:
            cert, issuer = subject()
            self.verifications += 1
            try:
                status = self._verify(der, cert, issuer, now, self.freshness)
            except OcspError as exc:
                if exc.reason is OcspFailure.NOT_YET_VALID:
                    raise
                entry = _Refusal(exc.reason, exc.detail)
            else:
                entry = evidence_from(der, status, encoded)
        self._store(key, entry)
        return entry

    def _store(self, key: tuple[str, str], entry: OcspEvidence | _Refusal) -> None:
        while len(self._entries) >= self._max:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = entry

    def remember(
        self,
        cert_ref: str,
        der: bytes,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        now: datetime,
    ) -> OcspEvidence:
        """Verify a response this node fetched for itself and remember it.

        The same check as for a peer's response, so a node never hands out (or relies
        on) a response its peers would refuse. Raises :class:`OcspError`.
        """
        return self.check(cert_ref, b64url(der), now, lambda: (cert, issuer))
