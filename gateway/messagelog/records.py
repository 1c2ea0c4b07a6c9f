"""What the message log writes and reads back: its record types and its errors.

The storage boundary (:mod:`gateway.messagelog.store`) speaks in these types; they are
kept apart from it so that a backend, the writer and the readers share one definition of
each record without the protocols. Two record types describe an entry:
:class:`LogRecord` is what the node hands in, without what the log assigns itself;
:class:`StoredEntry` is what is read back, every column. ``gateway.core.logtree.LoggedEntry``
is not a third shape of the log but the Merkle leaf's input (pure, in core), which
:meth:`StoredEntry.leaf_entry` derives; the audit bundle's ``EntryItem`` is that file
format's record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from gateway.core.adminrecord import AdminRecord
from gateway.core.envelope import RequestHeader, ResponseHeader
from gateway.core.logtree import LoggedEntry, StampedTreeHead
from gateway.messagelog.schema_names import Kind, Role

__all__ = [
    "ARCHIVED",
    "DELETED",
    "GONE",
    "MAX_OPERATIONAL_ROWS",
    "AdminReceipt",
    "ArchivedEntry",
    "CosignatureRow",
    "EntrySelection",
    "Expired",
    "ExportEvidence",
    "ForeignVersion",
    "LogNotFoundError",
    "LogRecord",
    "LogStats",
    "LogStoreError",
    "MessageLogError",
    "NotProvableError",
    "OpRecord",
    "ReadDetails",
    "ReplayError",
    "SettingsConflict",
    "SignedHead",
    "SignedHeadRecord",
    "StoredAdminRecord",
    "StoredEntry",
    "StoredForeignVersion",
    "StoredSettings",
    "StoredStatus",
    "StoredTreeHead",
    "StoredVersion",
    "TimestampBacklog",
    "TimestampStatus",
    "TreeHeadRecord",
    "TreeSnapshot",
    "UsageRow",
    "WitnessAlertRow",
    "details_of",
    "read_details",
]


ARCHIVED = "archived"
"""``body_omitted`` of an entry whose header, body and signature moved to an archive
bundle (``gateway log archive``)."""

DELETED = "deleted"
"""``body_omitted`` of an entry whose header, body and signature the node's retention
deleted (docs/adr/0046-retention-that-runs-itself.md): kept nowhere by the node, the
leaf hash and body digest stay so the proofs of the entries around it still verify."""

GONE: Final = (ARCHIVED, DELETED)
"""The ``body_omitted`` values of an entry whose content the node no longer holds."""


@dataclass(frozen=True, slots=True)
class Expired:
    """What one retention pass deleted: entries' content, data-tracker rows, and replay
    keys past the message window."""

    entries: int
    tracker_rows: int
    seen_rows: int = 0
    """``seen_request`` rows deleted: replay keys of messages the time check refuses
    anyway, not evidence (the log entries are)."""


class LogStoreError(Exception):
    """The log file is missing, is not a message log, or cannot be read or written."""


class LogNotFoundError(LogStoreError, FileNotFoundError):
    """There is no log where one was named."""


class NotProvableError(Exception):
    """No proof (of time, inclusion or consistency) can be built; the message says why."""


# -- what is written ----------------------------------------------------------------------


class MessageLogError(Exception):
    """The log entry could not be made durable, so the exchange must not succeed."""


class ReplayError(Exception):
    """The client already sent a request with this id; nothing was written for it."""


class SettingsConflict(MessageLogError):
    """A settings change was made on a version that is no longer the newest: another
    process of the node's cluster recorded one meanwhile. Nothing was written; the
    caller applies its change again on top of the newest version (docs/adr/0050)."""


@dataclass(frozen=True, slots=True)
class ReadDetails:
    """What the data tracker shows of one read beyond the log row's own columns.

    Taken from the signed request and response headers; stored as a
    ``data_subject_read`` row so it outlives the headers when they are archived.
    """

    method: str
    path: str
    status: int
    user_id: str | None
    issue: str | None


def details_of(request: RequestHeader, status: int) -> ReadDetails:
    """The tracker's view of one exchange: its signed request and the registry's status."""
    return ReadDetails(request.method, request.path or "/", status, request.user_id, request.issue)


def read_details(request: bytes, response: bytes) -> ReadDetails:
    """The tracker's view of one exchange from its signed header bytes (EnvelopeError)."""
    return details_of(RequestHeader.from_bytes(request), ResponseHeader.from_bytes(response).status)


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One message to log: an entry without the fields the log assigns itself (its id,
    ``logged_at``, leaf and digests); read back, it is a ``StoredEntry``."""

    role: Role
    kind: Kind
    message_id: str
    xroad_id: str
    client: str
    service: str
    created: str
    header: bytes
    body: bytes
    signature: str
    cert_ref: str
    ocsp_ref: str = ""
    subjects: tuple[str, ...] = ()
    """Data subjects the message disclosed (``data_subject`` rows, same transaction);
    the entry's leaf commits to them through a salted digest (``subjects_sha256``), so
    a removed or altered row is detectable. See docs/data-tracker.md."""
    read: ReadDetails | None = None
    """What the data tracker shows of the read (a response with ``subjects``), as the
    caller took it from the headers it signed; stored as a ``data_subject_read`` row so
    it survives archiving. None: taken from the stored headers instead (slower)."""
    body_sha256: str | None = None
    """The lower-case hex SHA-256 of ``body`` when the caller has it already: the node
    passes the digest its signed header names, which it computed from these bytes or
    checked against them. The writer then does not hash the body a second time (for a
    large body, the largest cost of the write after the disk's). None: the writer
    computes it."""


@dataclass(frozen=True, slots=True)
class TreeSnapshot:
    """The Merkle tree over every committed entry: what a tree head is made from."""

    tree_size: int
    root_hash: bytes
    last_entry_id: int
    """Id of the entry at leaf ``tree_size - 1`` (0 for the empty tree)."""


@dataclass(frozen=True, slots=True)
class TimestampBacklog:
    """How far timestamping lags behind the log, for the timestamper's decisions."""

    tree_size: int
    stamped_size: int
    """Size of the latest timestamped tree head (0 if there is none)."""
    oldest_pending: datetime | None
    """When the first entry not covered by a tree head was logged; None if all are."""
    last_stamp: datetime | None
    """genTime of the latest tree head."""

    @property
    def pending(self) -> int:
        return self.tree_size - self.stamped_size


@dataclass(frozen=True, slots=True)
class TreeHeadRecord:
    """A tree head the TSA has timestamped, ready to store.

    ``tree_size``, ``root_hash`` and ``last_entry_id`` must come from a
    :meth:`LogWriter.tree_snapshot` of this log; ``document`` is the exact byte string
    whose SHA-256 the token's imprint is.
    """

    tree_size: int
    root_hash: bytes
    last_entry_id: int
    document: bytes
    gen_time: datetime
    token: bytes
    tsa_name: str
    tsa_cert_der: bytes
    signed: SignedHeadRecord | None = None
    """The member key's signature over this head, stored in the same transaction."""


@dataclass(frozen=True, slots=True)
class SignedHeadRecord:
    """A signed tree head (``gateway.core.treehead``) with its signer's evidence."""

    document: bytes
    signature: str
    cert_ref: str
    cert_der: bytes
    jws_header: str
    ocsp_ref: str = ""
    ocsp_der: bytes = b""


@dataclass(frozen=True, slots=True)
class LogStats:
    """Counters that show whether group commit is actually sharing commits.

    ``units`` counts appends whose records were committed (replays excluded);
    ``largest_batch`` is the most units handled in one transaction; ``inline_commits``
    the transactions a lone append ran on its caller's thread (``inline_commit.py``).
    """

    commits: int = 0
    units: int = 0
    rows: int = 0
    largest_batch: int = 0
    failed_batches: int = 0
    inline_commits: int = 0


# -- what is read back ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One ``message_log`` row as read back: every column, in the table's order.

    ``role`` and ``kind`` are the enums; they compare equal to the stored strings.
    ``body`` is empty when ``body_omitted`` says why (``metadata``, ``size``,
    ``archived``); ``leaf_index`` and ``leaf_hash`` are None only in a log written
    before the Merkle tree, until a node opens it once.
    """

    id: int
    logged_at: str
    role: Role
    kind: Kind
    message_id: str
    xroad_id: str
    client: str
    service: str
    created: str
    header: bytes
    body: bytes
    signature: str
    cert_ref: str
    ocsp_ref: str = ""
    leaf_index: int | None = None
    leaf_hash: bytes | None = None
    body_sha256: str | None = None
    body_omitted: str = ""
    subjects_salt: str | None = None
    subjects_sha256: str | None = None

    def leaf_entry(self) -> LoggedEntry:
        """The fields the entry's Merkle leaf commits to (``gateway.core.logtree``).

        A digest-only entry (docs/message-log.md section 1.1) commits to its stored
        body digest instead of the (empty) body.
        """
        return LoggedEntry(
            role=str(self.role),
            kind=str(self.kind),
            message_id=self.message_id,
            xroad_id=self.xroad_id,
            client=self.client,
            service=self.service,
            created=self.created,
            logged_at=self.logged_at,
            header=self.header,
            body=self.body,
            signature=self.signature,
            cert_ref=self.cert_ref,
            ocsp_ref=self.ocsp_ref,
            body_digest=self.body_sha256 if self.body_omitted else None,
            subjects_sha256=self.subjects_sha256,
        )


@dataclass(frozen=True, slots=True)
class StoredTreeHead:
    """One row of ``tree_head``: a tree head the TSA timestamped."""

    id: int
    tree_size: int
    root_hash: bytes
    last_entry_id: int
    document: bytes
    gen_time: str
    token: bytes
    tsa_name: str
    tsa_cert_ref: str
    stored_at: str

    def stamped(self) -> StampedTreeHead:
        return StampedTreeHead(self.tree_size, self.root_hash, self.document, self.token)


@dataclass(frozen=True, slots=True)
class TimestampStatus:
    """Entries in the log versus entries covered by its latest tree head."""

    tree_size: int
    stamped_size: int
    oldest_pending: str | None

    @property
    def pending(self) -> int:
        return self.tree_size - self.stamped_size


@dataclass(frozen=True, slots=True)
class SignedHead:
    """One row of ``signed_tree_head``: the member key's signature over a tree head."""

    tree_size: int
    document: bytes
    signature: str
    cert_ref: str
    ocsp_ref: str


@dataclass(frozen=True, slots=True)
class CosignatureRow:
    """One row of ``cosignature`` (see ``gateway.messagelog.schema.Cosignature``)."""

    log_node: str
    witness: str
    tree_size: int
    document: bytes
    signature: str
    cosignature: str
    cert_ref: str
    ocsp_ref: str
    stored_at: str


@dataclass(frozen=True, slots=True)
class WitnessAlertRow:
    """One row of ``witness_alert``."""

    id: int
    peer: str
    code: str
    detail: str
    evidence: str
    detected_at: str


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One applied configuration version: its serial, when it was applied, and its
    signed files (named as ``gateway.conf.tufclient.SIGNED_FILES``)."""

    id: int
    serial: int
    applied_at: str
    files: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class ForeignVersion:
    """A federated instance's configuration version as the node verified it: the
    instance, its serial, until when it is valid (RFC 3339), the fingerprint of the TUF
    root it verified under, and its signed files (named as ``SIGNED_FILES``)."""

    instance: str
    serial: int
    expires: str
    root_sha256: str
    files: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class StoredForeignVersion:
    """One row of the log's foreign configuration history, in the order applied."""

    id: int
    applied_at: str
    document_sha256: str
    version: ForeignVersion


@dataclass(frozen=True, slots=True)
class StoredStatus:
    """A good OCSP response for one of this node's certificates, as the log keeps it."""

    cert_ref: str
    der: bytes
    fetched_at: datetime
    fetched_from: str


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One provider-side response entry that named a data subject, with its request's
    signed header (the data tracker parses both again while they are in the log)."""

    entry_id: int
    logged_at: str
    client: str
    service: str
    message_id: str
    xroad_id: str
    response_header: bytes
    request_header: bytes
    leaf_index: int | None
    archived: bool
    """The response's or the request's content moved to an archive bundle."""
    stored: ReadDetails | None
    """The entry's ``data_subject_read`` row; None if it has none (a read archived
    before the log kept its details apart from the headers)."""
    deleted: bool = False
    """The node's retention deleted the content (``archived`` is then true as well)."""


@dataclass(frozen=True, slots=True)
class ArchivedEntry:
    """An entry an archive bundle holds: its id, leaf hash and body digest there."""

    entry_id: int
    leaf_hash_hex: str
    body_sha256: str


@dataclass(frozen=True, slots=True)
class EntrySelection:
    """Which entries an export reads: all, one exchange, or a ``logged_at`` range
    (RFC 3339 text with milliseconds, both ends inclusive, either open)."""

    all: bool = False
    message_id: str | None = None
    since: str | None = None
    until: str | None = None


@dataclass(frozen=True, slots=True)
class ExportEvidence:
    """Everything an audit bundle carries besides tree heads and leaves, in one read."""

    entries: list[StoredEntry]
    """The selected entries (archived ones included), id order."""
    archived_before: int
    """One past the largest archived leaf index (0 when nothing was archived)."""
    signed: dict[int, SignedHead]
    cosigned: dict[int, list[CosignatureRow]]
    """Co-signatures over this node's own signed heads, by tree size."""
    signer_certificates: dict[str, tuple[bytes, str]]
    """cert_ref -> (DER, JWS protected header)."""
    ocsp: dict[str, bytes]
    tsa_certificates: dict[str, bytes]
    versions: list[StoredVersion] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OpRecord:
    """One exchange as operational monitoring records it: X-Road's fields, no payload.

    A row of ``operational_data`` without its id. A success's record is committed with
    the exchange's entries (``MessageLog.append(..., operational=...)``), so the records
    of successes match the log one to one; a refusal's is written best effort, in
    batches (``MessageLog.record_operational``). Outside the Merkle tree, pruned after
    the node's retention period (``MessageLog.prune_operational``).
    """

    side: str
    node: str
    peer_node: str
    client: str
    service: str
    message_id: str
    xroad_id: str
    request_in: str
    response_out: str
    request_size: int
    response_size: int
    status: int
    succeeded: bool
    error_code: str


MAX_OPERATIONAL_ROWS: Final = 10_000
"""The most operational records one query returns (narrow ``since`` for more)."""


# -- the node's admin audit trail and settings -----------------------------------------


@dataclass(frozen=True, slots=True)
class AdminReceipt:
    """What ``MessageLog.append_admin`` returns once the change is durable: the entry
    recording it, its leaf in the Merkle tree, and the settings version it stored (None
    when the change came without a settings document)."""

    entry_id: int
    leaf_index: int
    settings_version: int | None


@dataclass(frozen=True, slots=True)
class StoredSettings:
    """The node's settings as the newest ``node_settings`` row holds them."""

    version: int
    document: bytes
    changed_at: str
    """``logged_at`` of the admin entry that recorded the change."""
    entry_id: int


@dataclass(frozen=True, slots=True)
class StoredAdminRecord:
    """An ``admin`` entry read back: where it is in the log and the record it signs."""

    entry_id: int
    leaf_index: int | None
    logged_at: str
    record: AdminRecord
    cert_ref: str
    """SHA-256 of the signing certificate (the node owner's) whose key signed it."""
