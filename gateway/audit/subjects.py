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

Reads the log file read-only, so a running node can keep writing.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from gateway.core.envelope import EnvelopeError
from gateway.core.logtree import SUBJECTS_SALT_SIZE, entry_leaf, subjects_commitment
from gateway.core.merkle import leaf_hash
from gateway.node.messagelog import MessageLogError, logged_entry
from gateway.node.tracker import ReadDetails, read_details

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


# The first 19 columns are the message log's own entry columns, in its order, so
# ``logged_entry`` recomputes the leaf exactly as the node does; the salt comes last.
_ENTRIES: Final = (
    "SELECT id, logged_at, role, kind, message_id, xroad_id, client, service, created,"
    " CAST(header AS BLOB), CAST(body AS BLOB), signature, cert_ref, ocsp_ref, leaf_index,"
    " CAST(leaf_hash AS BLOB), body_sha256, body_omitted, subjects_sha256, subjects_salt"
    " FROM message_log ORDER BY id"
)


_REQUEST_OF: Final = (
    "SELECT CAST(header AS BLOB), body_omitted FROM message_log WHERE message_id = ?"
    " AND client = ? AND role = 'provider' AND kind = 'request' ORDER BY id LIMIT 1"
)


@contextlib.contextmanager
def _reader(path: Path) -> Iterator[sqlite3.Connection]:
    if not path.is_file():
        raise SubjectsCheckError(f"{path} does not exist")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        yield conn
    finally:
        conn.close()


def _salt(text: object) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        salt = bytes.fromhex(text)
    except ValueError:
        return None
    return salt if len(salt) == SUBJECTS_SALT_SIZE and salt.hex() == text else None


def _leaf_matches(row: tuple[object, ...]) -> bool:
    """Whether the entry's stored fields recompute to its stored leaf hash."""
    try:
        entry = logged_entry(row)
    except MessageLogError:
        return False
    stored = row[15]
    return isinstance(stored, bytes) and leaf_hash(entry_leaf(entry)) == stored


def _stored_reads(conn: sqlite3.Connection) -> dict[int, ReadDetails] | None:
    """Every ``data_subject_read`` row by entry id; None in a file without the table."""
    if (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'data_subject_read'"
        ).fetchone()
        is None
    ):
        return None
    return {
        int(e): ReadDetails(str(m), str(p), int(s), u, i)
        for e, m, p, s, u, i in conn.execute(
            "SELECT entry_id, method, path, status, user_id, issue FROM data_subject_read"
        )
    }


def _read_matches(
    conn: sqlite3.Connection, row: tuple[object, ...], reads: dict[int, ReadDetails]
) -> bool:
    """Whether an entry's ``data_subject_read`` row says what its signed headers say.

    Checkable only while the headers are in the log: once archived, the row stands for
    them (docs/data-tracker.md, section 3) and the archive bundle holds the originals.
    """
    if row[17] == "archived":
        return True
    request = conn.execute(_REQUEST_OF, (row[4], row[6])).fetchone()
    if request is None or request[1] == "archived":
        return True  # nothing left on the node to compare with
    response = row[9]
    if not isinstance(response, bytes):
        return False
    try:
        expected = read_details(bytes(request[0]), response)
    except EnvelopeError:
        return False
    return reads.get(int(str(row[0]))) == expected


def check_subjects(path: Path) -> SubjectsReport:
    """Recompute every entry's subjects commitment from its rows; report mismatches."""
    report = SubjectsReport()
    with _reader(path) as conn:
        try:
            present = {str(c[1]) for c in conn.execute("PRAGMA table_info(message_log)")}
            if not present:
                raise SubjectsCheckError(f"{path} is not a message log")
            subjects: dict[int, list[str]] = defaultdict(list)
            for entry_id, subject in conn.execute("SELECT entry_id, subject FROM data_subject"):
                subjects[int(entry_id)].append(str(subject))
            if "subjects_salt" not in present:
                # A log file no node has opened since the commitments existed.
                report.unchecked_rows = sum(len(v) for v in subjects.values())
                return report
            reads = _stored_reads(conn)
            seen: set[int] = set()
            for row in conn.execute(_ENTRIES):
                entry_id = int(row[0])
                seen.add(entry_id)
                rows = subjects.get(entry_id, [])
                stored, salt_text = row[18], row[19]
                if salt_text is None and stored is None:
                    report.unchecked_rows += len(rows)
                    continue

                report.checked += 1
                report.with_subjects += bool(rows)
                salt = _salt(salt_text)
                reason = None
                if salt is None or not isinstance(stored, str):
                    reason = "salt"
                elif subjects_commitment(salt, rows) != stored:
                    reason = "rows"
                elif row[17] != "archived" and not _leaf_matches(row):
                    reason = "leaf"
                elif rows and reads is not None and not _read_matches(conn, row, reads):
                    reason = "read"
                if reason is not None:
                    index = None if row[14] is None else int(row[14])
                    report.mismatches.append(
                        SubjectsMismatch(entry_id, index, str(row[4]), reason, len(rows))
                    )
            for entry_id in sorted(set(subjects) - seen):
                report.mismatches.append(
                    SubjectsMismatch(entry_id, None, "", "orphan", len(subjects[entry_id]))
                )
        except sqlite3.DatabaseError as exc:
            raise SubjectsCheckError(f"{path}: {exc}") from None
    return report
