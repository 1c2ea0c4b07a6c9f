"""Check the data tracker's index against the commitments in the log's Merkle leaves.

The ``data_subject`` rows say whose data each provider-side answer disclosed; the
citizen's data tracker (``findUsage``) reads nothing else. They are an index, so a
person with write access to the database could delete one and a read would vanish from
that person's tracker. Each entry logged since subject commitments existed carries a
per-entry salt and ``subjects_sha256 = subjects_commitment(salt, subjects)``, and its
Merkle leaf (version 2) commits to that digest, which the timestamped, signed and
witnessed tree heads fix. This module recomputes the commitment of every such entry from
its rows and its salt, and the leaf from the entry's stored fields, and reports each
entry where either no longer matches: a row was removed, added or altered, or the stored
digest was changed to cover that up. It also compares each entry's ``data_subject_read``
row, which the tracker shows once archiving has emptied the headers, with the signed
headers while they are still in the log.

What it cannot see: an entry logged before the commitments (salt NULL, version 1 leaf);
its rows are counted as unchecked. An archived entry's leaf cannot be recomputed here
(its content is in the archive bundle, which ``gateway audit verify`` checks); its rows
are still checked against its stored digest.

Reads the log through its ``LogStore`` (for a SQLite file, read-only, so a running node
can keep writing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gateway.core.envelope import EnvelopeError
from gateway.core.logtree import SUBJECTS_SALT_SIZE, entry_leaf, subjects_commitment
from gateway.core.merkle import leaf_hash
from gateway.messagelog import (
    DELETED,
    GONE,
    LogNotFoundError,
    LogStore,
    LogStoreError,
    ReadDetails,
    StoredEntry,
    open_store,
)
from gateway.messagelog.tracker import read_details

__all__ = ["SubjectsCheckError", "SubjectsMismatch", "SubjectsReport", "check_subjects"]


class SubjectsCheckError(Exception):
    """The log file cannot be checked at all (missing, or not a message log)."""


@dataclass(frozen=True, slots=True)
class SubjectsMismatch:
    """One entry whose data-subject rows or commitment no longer match its leaf."""

    entry_id: int
    leaf_index: int | None
    message_id: str
    reason: str
    """``rows`` (the rows do not recompute to the stored digest: removed, added or
    altered), ``leaf`` (the stored digest or another field no longer recomputes to the
    stored leaf hash), ``salt`` (a malformed salt or digest column), ``read`` (the
    entry's ``data_subject_read`` row, which the tracker shows once the headers are
    archived, is missing or differs from its signed headers), or ``orphan`` (rows that
    point at no version 2 entry)."""
    rows: int
    """How many ``data_subject`` rows the entry has now."""


@dataclass(slots=True)
class SubjectsReport:
    """The outcome of :func:`check_subjects`."""

    checked: int = 0
    """Entries whose commitment was recomputed (every entry with a salt)."""
    with_subjects: int = 0
    """Of those, entries that have data-subject rows."""
    unchecked_rows: int = 0
    """Rows of entries logged before the commitments existed: not tamper-evident."""
    mismatches: list[SubjectsMismatch] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.mismatches


def _salt(text: object) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        salt = bytes.fromhex(text)
    except ValueError:
        return None
    return salt if len(salt) == SUBJECTS_SALT_SIZE and salt.hex() == text else None


def _leaf_matches(entry: StoredEntry) -> bool:
    """Whether the entry's stored fields recompute to its stored leaf hash."""
    stored = entry.leaf_hash
    return stored is not None and leaf_hash(entry_leaf(entry.leaf_entry())) == stored


def _read_matches(store: LogStore, entry: StoredEntry, reads: dict[int, ReadDetails]) -> bool:
    """Whether an entry's ``data_subject_read`` row says what its signed headers say.

    Checkable only while the headers are in the log: once archived, the row stands for
    them (docs/data-tracker.md, section 3) and the archive bundle holds the originals.
    """
    if entry.body_omitted in GONE:
        return True
    request = store.provider_request(entry.message_id, entry.client)
    if request is None or request[1] in GONE:
        return True  # nothing left on the node to compare with
    try:
        expected = read_details(request[0], entry.header)
    except EnvelopeError:
        return False
    return reads.get(entry.id) == expected


def check_subjects(path: LogStore | Path | str) -> SubjectsReport:
    """Recompute every entry's subjects commitment from its rows; report mismatches."""
    report = SubjectsReport()
    store = open_store(path)
    try:
        entries = store.entries()
        subjects = store.data_subjects()
        reads = store.data_subject_reads()
    except LogNotFoundError:
        raise SubjectsCheckError(f"{store.location} does not exist") from None
    except LogStoreError as exc:
        raise SubjectsCheckError(f"{store.location}: {exc}") from None
    seen: set[int] = set()
    try:
        for entry in entries:
            seen.add(entry.id)
            rows = subjects.get(entry.id, [])
            stored, salt_text = entry.subjects_sha256, entry.subjects_salt
            if salt_text is None and stored is None:
                # Logged before the commitments (or a file no node has opened since).
                report.unchecked_rows += len(rows)
                continue
            if entry.body_omitted == DELETED and not rows:
                # The node's retention deleted its tracker rows with its content
                # (docs/adr/0046-retention-that-runs-itself.md); the leaf is all that is left.
                continue

            report.checked += 1
            report.with_subjects += bool(rows)
            salt = _salt(salt_text)
            reason = None
            if salt is None or stored is None:
                reason = "salt"
            elif subjects_commitment(salt, rows) != stored:
                reason = "rows"
            elif entry.body_omitted not in GONE and not _leaf_matches(entry):
                reason = "leaf"
            elif rows and reads is not None and not _read_matches(store, entry, reads):
                reason = "read"
            if reason is not None:
                report.mismatches.append(
                    SubjectsMismatch(
                        entry.id, entry.leaf_index, entry.message_id, reason, len(rows)
                    )
                )
    except LogStoreError as exc:
        raise SubjectsCheckError(f"{store.location}: {exc}") from None
    for entry_id in sorted(set(subjects) - seen):
        report.mismatches.append(
            SubjectsMismatch(entry_id, None, "", "orphan", len(subjects[entry_id]))
        )
    return report
