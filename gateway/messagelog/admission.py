"""What one ``append`` may hand the message log, checked before it is queued.

The writer commits many callers' appends in one transaction (group commit, ADR 0006),
so a value the schema or the Merkle leaf encoding rejects would fail every caller of
its batch. Each append is therefore checked here, in the caller's task, and a bad one
fails alone with ``ValueError`` or ``TypeError``: a role or kind outside the enums, a
malformed data subject, a header or body that is not bytes, a leaf field that is not
UTF-8 text, a certificate or OCSP reference that is not the SHA-256 of its DER.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Self

from gateway.core.adminrecord import AdminRecord, admin_message_id
from gateway.core.datasubject import check_subject
from gateway.core.jws import Signer
from gateway.messagelog.records import LogRecord, OpRecord
from gateway.messagelog.schema_names import KINDS, ROLES, Kind, Role

_HEX_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_LEAF_TEXT_FIELDS: Final = (
    "message_id",
    "xroad_id",
    "client",
    "service",
    "created",
    "signature",
    "cert_ref",
    "ocsp_ref",
)


def check_record(record: LogRecord) -> None:
    # Checked before queuing: a value the schema rejects would otherwise fail the whole
    # batch, taking other callers' appends down with it.
    if record.role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {record.role!r}")
    if record.kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {record.kind!r}")
    for subject in record.subjects:
        check_subject(subject)
    if not isinstance(record.header, bytes) or not isinstance(record.body, bytes):
        # sqlite would silently store a str as TEXT and the signed bytes would be lost.
        raise TypeError("header and body must be bytes")
    if record.body_sha256 is not None and not _HEX_SHA256.fullmatch(record.body_sha256):
        raise ValueError("body_sha256 must be a lower-case hex SHA-256")
    # The leaf's text fields, all at once: ``str.join`` takes str values only (a str
    # subclass too, as ``isinstance`` does) and the joined text encodes exactly when
    # each value does (a lone surrogate stays one whatever is beside it). On any doubt
    # the fields are read one by one, which names the first bad field, and decides.
    try:
        "".join(
            (
                record.message_id,
                record.xroad_id,
                record.client,
                record.service,
                record.created,
                record.signature,
                record.cert_ref,
                record.ocsp_ref,
            )
        ).encode("utf-8")
    except (TypeError, UnicodeEncodeError):
        check_leaf_texts(record)


def check_leaf_texts(record: LogRecord) -> None:
    """Each of the leaf's text fields, in order: ``TypeError`` or ``ValueError`` naming
    the first that is not UTF-8 text."""
    for name in _LEAF_TEXT_FIELDS:
        value = getattr(record, name)
        # The writer encodes these into the entry's Merkle leaf (UTF-8 JSON); a value
        # that cannot be encoded must fail this caller, not the batch it would join.
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{name} is not valid Unicode text") from None


_KNOWN_DER: dict[str, bytes] = {}
"""References already checked, with the DER they were checked against: a node sends
and receives the same few certificates and OCSP responses for many exchanges, and
comparing the bytes costs less than hashing them again. Bounded by ``_MAX_KNOWN``."""
_MAX_KNOWN: Final = 4_096


def _is_sha256_of(ref: str, der: bytes) -> bool:
    """Whether ``ref`` is the SHA-256 (hex) of ``der``; remembers a match, so the same
    pair again is a comparison of bytes (a different ``der`` is hashed as ever)."""
    if _KNOWN_DER.get(ref) == der:
        return True
    if hashlib.sha256(der).hexdigest() != ref:
        return False
    if len(_KNOWN_DER) >= _MAX_KNOWN:
        _KNOWN_DER.clear()
    _KNOWN_DER[ref] = bytes(der)
    return True


def check_certs(certs: Mapping[str, tuple[bytes, str]]) -> tuple[tuple[str, bytes, str], ...]:
    checked = []
    for ref, (der, jws_header) in certs.items():
        if not _is_sha256_of(ref, der):
            raise ValueError(f"cert_ref {ref!r} is not the SHA-256 of the certificate DER")
        checked.append((ref, bytes(der), jws_header))
    return tuple(checked)


def check_ocsp(ocsp: Mapping[str, bytes]) -> tuple[tuple[str, bytes], ...]:
    checked = []
    for ref, der in ocsp.items():
        if not _is_sha256_of(ref, der):
            raise ValueError(f"ocsp_ref {ref!r} is not the SHA-256 of the OCSP response DER")
        checked.append((ref, bytes(der)))
    return tuple(checked)


@dataclass(frozen=True, slots=True)
class Append:
    """One ``append`` call's content, checked before it joins a batch."""

    records: tuple[LogRecord, ...]
    certs: tuple[tuple[str, bytes, str], ...]
    ocsp: tuple[tuple[str, bytes], ...]
    replay_key: tuple[str, str, str] | None
    operational: tuple[OpRecord, ...] = ()
    """Operational monitoring records committed with the entries (none for a replay)."""
    admin: bool = False
    """One ``admin`` entry (``MessageLog.append_admin``): its outcome is ``[entry id,
    leaf index]``, followed by the settings version when ``settings`` is given, and
    it names the OCSP response kept for its signer's certificate, if one is."""
    settings: bytes | None = None
    """The node's new settings document, stored with the admin entry."""
    settings_base: int | None = None
    """The settings version ``settings`` was derived from: stored only while it is
    still the newest, else the outcome is ``SettingsConflict`` (nothing written)."""

    @classmethod
    def checked(
        cls,
        records: Sequence[LogRecord],
        certs: Mapping[str, tuple[bytes, str]] | None,
        ocsp: Mapping[str, bytes] | None,
        replay_key: tuple[str, str, str] | None,
        operational: Sequence[OpRecord] = (),
    ) -> Self:
        """Check every record and reference; raise ``ValueError``/``TypeError`` for this
        caller alone rather than failing the batch the append would join."""
        for record in records:
            check_record(record)
            if record.kind == Kind.ADMIN or record.role == Role.NODE:
                raise ValueError("admin entries are logged with append_admin, not append")
        return cls(
            tuple(records),
            check_certs(certs) if certs else (),
            check_ocsp(ocsp) if ocsp else (),
            replay_key,
            tuple(operational),
        )


def admin_append(
    record: AdminRecord, signer: Signer, settings: bytes | None, base: int | None = None
) -> Append:
    """The one-entry append of ``MessageLog.append_admin``: the record as the entry's
    header, signed like a message header, its fields in the columns an exchange's id,
    parties and time take (docs/message-log.md 13)."""
    if settings is not None and not isinstance(settings, bytes):
        raise TypeError("settings must be bytes")
    data = record.to_bytes()
    entry = LogRecord(
        role=Role.NODE,
        kind=Kind.ADMIN,
        message_id=admin_message_id(data),
        xroad_id=record.action,
        client=record.actor,
        service=record.target,
        created=record.created,
        header=data,
        body=b"",
        signature=signer.sign(data),
        cert_ref=signer.cert_ref,
    )
    check_record(entry)
    return Append(
        (entry,),
        check_certs({signer.cert_ref: (signer.cert_der, signer.jws_header)}),
        (),
        None,
        admin=True,
        settings=None if settings is None else bytes(settings),
        settings_base=None if settings is None else base,
    )
