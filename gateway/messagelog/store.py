"""The message log's storage boundary: what is written, what is read back, and by what.

Everything outside the package writes the log through a :class:`LogWriter` and reads it
through a :class:`LogStore`, with the record types below, never through SQL: the node,
its timestamper, witness, auditor API and data tracker, the proof and time-stamp tools,
audit bundle export, archiving and the configuration history. Today one backend
implements both (``gateway.messagelog.writer.MessageLog``, group commit on the node's
SQLite file, and ``gateway.messagelog.sqlite.SqliteLogStore``). A second backend
(PostgreSQL) implements the same two protocols, and :func:`gateway.messagelog.open_log`
/ :func:`gateway.messagelog.open_store` choose it: the node, ``gateway.audit`` and the
CLI do not change (docs/adr/0018-message-log-package.md).

The record types the protocols speak in are in :mod:`gateway.messagelog.records`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from gateway.core.adminrecord import AdminRecord
from gateway.core.jws import Signer
from gateway.messagelog.records import (
    MAX_OPERATIONAL_ROWS,
    AdminReceipt,
    ArchivedEntry,
    CosignatureRow,
    EntrySelection,
    Expired,
    ExportEvidence,
    LogRecord,
    OpRecord,
    ReadDetails,
    SignedHead,
    StoredAdminRecord,
    StoredEntry,
    StoredSettings,
    StoredStatus,
    StoredTreeHead,
    StoredVersion,
    TimestampBacklog,
    TimestampStatus,
    TreeHeadRecord,
    TreeSnapshot,
    UsageRow,
    WitnessAlertRow,
)

__all__ = ["LogStore", "LogWriter"]


@runtime_checkable
class LogStore(Protocol):
    """Reads (and the few maintenance writes) of one node's message log.

    Each call is self-contained and blocking (the node runs them in a worker thread);
    none ever goes through the node's writer, so they can run beside it. Errors are
    :class:`LogStoreError` (no log, unreadable) and :class:`NotProvableError` (the log
    holds no proof of what was asked).
    """

    @property
    def location(self) -> str:
        """Where the log is, for messages."""
        ...

    # -- entries ----------------------------------------------------------------------

    def entries(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        message_id: str | None = None,
        party: str | None = None,
        leaf_index: int | None = None,
    ) -> list[StoredEntry]:
        """Entries in id order with ids above ``after``; ``party`` keeps the exchanges
        a client took part in (as the client, or as the provider subsystem)."""
        ...

    def entry(self, entry_id: int) -> StoredEntry | None: ...

    def count_entries(self) -> int: ...

    def leaves_through(self, last_entry_id: int) -> list[tuple[object, object]]:
        """``(leaf_index, leaf_hash)`` as stored for every entry up to an id, id order."""
        ...

    def leaf_hashes(self, size: int) -> list[bytes]:
        """The first ``size`` leaf hashes, refusing gaps (``NotProvableError``)."""
        ...

    def subtrees(self, names: Collection[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The stored Merkle subtrees with these ``(level, position)`` names, in one read
        (those not stored are left out: the caller refuses the proof)."""
        ...

    def data_subjects(self) -> dict[int, list[str]]:
        """Every ``data_subject`` row, by entry id."""
        ...

    def usage(self, subject: str) -> list[UsageRow]:
        """Provider-side responses that named ``subject``, oldest first."""
        ...

    def data_subject_reads(self) -> dict[int, ReadDetails] | None:
        """Every ``data_subject_read`` row by entry id; None in a log without the table."""
        ...

    def provider_request(self, message_id: str, client: str) -> tuple[bytes, str] | None:
        """The signed header and ``body_omitted`` of the provider-side request entry of
        an exchange, or None if the log has none."""
        ...

    # -- tree heads, signatures, witnessing ---------------------------------------------

    def tree_heads(self) -> list[StoredTreeHead]: ...

    def first_head_covering(self, leaf_index: int) -> StoredTreeHead | None: ...

    def timestamp_status(self) -> TimestampStatus: ...

    def signed_heads(self) -> list[SignedHead]: ...

    def latest_signed_head(self) -> SignedHead | None: ...

    def cosignatures(
        self, *, log_node: str | None = None, witness: str | None = None
    ) -> list[CosignatureRow]: ...

    def witness_alerts(self) -> list[WitnessAlertRow]: ...

    def ocsp_responses(self, refs: Iterable[str]) -> dict[str, bytes]: ...

    # -- export, archive, configuration history, own OCSP -------------------------------

    def export_evidence(self, selection: EntrySelection) -> ExportEvidence:
        """The selected entries with every certificate, OCSP response, signature and
        configuration version a bundle may need, read over one connection."""
        ...

    def archive(self, entries: Sequence[ArchivedEntry]) -> list[int]:
        """Drop the header, body and signature of entries an archive bundle holds; their
        leaf indexes. First every read with data subjects gets its ``data_subject_read``
        row, so the data tracker keeps answering. All or nothing: an entry whose leaf
        changed, or whose read cannot be recorded, fails the whole call."""
        ...

    def seal_rows(self) -> int:
        """Seal the exchange entries stored in the clear (a log written before its node
        had a data key) under the store's key, with their data subjects and tracker
        rows; how many. Leaves and ids do not change (``gateway log encrypt``)."""
        ...

    def expire(
        self, entries_before: str, tracker_before: str, seen_before: str | None = None
    ) -> Expired:
        """The node's retention: blank the header, body and signature of entries logged
        before ``entries_before`` (RFC 3339 with milliseconds), keeping leaf index, leaf
        hash and body digest, and mark them ``deleted``; then delete the data-tracker rows
        of deleted entries logged before ``tracker_before``, and the replay keys
        (``seen_request``) of requests created before ``seen_before``. All or nothing."""
        ...

    def configuration_versions(self) -> list[StoredVersion]: ...

    def own_statuses(self) -> list[StoredStatus]: ...

    def witness_alert_count(self) -> int: ...

    def operational_records(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        client: str | None = None,
        party: str | None = None,
        limit: int = MAX_OPERATIONAL_ROWS,
    ) -> list[OpRecord]:
        """Operational records whose request came in within ``[since, until)`` (RFC 3339
        as the log stores times; either bound open), of ``client`` if given, oldest
        first, at most ``limit``. ``party`` keeps the records a client or provider
        subsystem took part in: its own calls (``client == party``) and calls of its
        services (``service`` starts with ``party + "/"``)."""
        ...

    # -- the admin audit trail and the node's settings ----------------------------------

    def latest_settings(self) -> StoredSettings | None:
        """The node's newest settings version (``MessageLog.append_admin``), or None."""
        ...

    def admin_records(
        self, since: str | None = None, limit: int | None = None
    ) -> list[StoredAdminRecord]:
        """Admin entries logged at or after ``since`` (RFC 3339 as the log stores times),
        oldest first, at most ``limit``; archived ones are in their archive bundle.
        ``LogStoreError`` if a stored record does not parse."""
        ...


@runtime_checkable
class LogWriter(Protocol):
    """The one writer of a node's log, as the node and its services use it.

    Every write is durable when its coroutine returns and raises ``MessageLogError``
    otherwise; entries, their leaves and the tree's frontier commit together, so the
    tree never disagrees with the entries. Created by ``gateway.messagelog.open_log``.
    """

    @property
    def store(self) -> LogStore:
        """The read side of the same log."""
        ...

    def start(self) -> None: ...

    async def close(self) -> None:
        """Finish every write already accepted, then stop."""
        ...

    def seen_since(self, created_after: str) -> list[tuple[str, str, str]]:
        """(client, message id, created) of requests created after a time; before
        ``start()``, to rebuild the replay guard."""
        ...

    async def append(
        self,
        records: Sequence[LogRecord],
        *,
        certs: Mapping[str, tuple[bytes, str]] | None = None,
        ocsp: Mapping[str, bytes] | None = None,
        replay_key: tuple[str, str, str] | None = None,
    ) -> list[int]:
        """Log ``records`` (with the certificates and OCSP responses they refer to) in
        one commit and return their ids; ``ReplayError`` if ``replay_key`` was seen."""
        ...

    # -- the tree and its time stamps (the timestamper) ----------------------------------

    def tree_snapshot(self) -> TreeSnapshot: ...

    def backlog(self) -> TimestampBacklog: ...

    def notify_when_pending(self, threshold: int, callback: Callable[[], None]) -> None: ...

    async def append_tree_head(self, head: TreeHeadRecord) -> int: ...

    # -- the admin audit trail -------------------------------------------------------------

    async def append_admin(
        self,
        record: AdminRecord,
        signer: Signer,
        settings: bytes | None = None,
        base: int | None = None,
    ) -> AdminReceipt:
        """Log one admin change as its own signed leaf and store ``settings`` as the new
        settings version in the same commit; ``MessageLogError`` if not durable,
        ``SettingsConflict`` if version ``base`` is no longer the newest."""
        ...

    # -- side tables ----------------------------------------------------------------------

    async def record_configuration(
        self, files: Sequence[tuple[str, bytes]], serial: int, applied_at: str
    ) -> bool: ...

    async def keep_own_status(self, ref: str, status: StoredStatus | None) -> None: ...

    async def add_cosignature(
        self, row: CosignatureRow, cert: tuple[str, bytes, str], ocsp_der: bytes
    ) -> None: ...

    async def add_witness_alert(
        self, peer: str, code: str, detail: str, evidence: str, detected_at: str
    ) -> None: ...
