"""The one codec both backends seal and open personal data with (no SQL here).

A ``Sealer`` wraps the node's data key, or none. Exchange entries written with a key
have ``message_log.sealed = 1`` and their header and body sealed; their data subjects
are stored as a lookup tag (``data_subject.subject``) beside the sealed identifier
(``data_subject.sealed``). Admin records (the node's own settings changes, no personal
data) and every entry of a log written before sealing stay as they are, flagged 0, and
are read as before: an older log opens and keeps growing, its new rows sealed.

The leaf is computed from the plaintext by the caller before ``seal_entry``, so nothing
a proof, tree head or bundle shows depends on whether a row was sealed. A sealed row
read without the key, or with the wrong one, is an error, never ciphertext passed off
as a message (docs/message-log.md#at-rest, docs/adr/0048-personal-data-sealed-at-rest.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from gateway.core.atrest import PLAIN, SEALED_V1, AtRestError, DataKey, is_subject_tag
from gateway.messagelog.records import LogStoreError, ReadDetails

__all__ = ["DataKey", "Sealer"]

_HEADER: Final = "message_log.header"
_BODY: Final = "message_log.body"
_SUBJECT: Final = "data_subject.subject"
_READ: Final = "data_subject_read"


class Sealer:
    """Seals what the writer stores and opens what the stores read back."""

    __slots__ = ("key",)

    def __init__(self, key: DataKey | None = None) -> None:
        self.key = key

    def __repr__(self) -> str:
        return f"Sealer({None if self.key is None else self.key.key_id})"

    # -- writing -------------------------------------------------------------------------

    def seal_entry(self, header: bytes, body: bytes, *, admin: bool) -> tuple[bytes, bytes, int]:
        """``(header, body, sealed flag)`` as an entry's row stores them. An empty body
        (digest only) stays empty: there is nothing to hide and archiving blanks both."""
        if self.key is None or admin:
            return header, body, PLAIN
        sealed_body = self.key.seal(body, _BODY) if body else b""
        sealed_header = self.key.seal(header, _HEADER) if header else b""  # archived: empty
        return sealed_header, sealed_body, SEALED_V1

    def subject_rows(self, subjects: Sequence[str]) -> list[tuple[str, bytes | None]]:
        """``(subject column, sealed column)`` of each data subject of a new entry."""
        if self.key is None:
            return [(subject, None) for subject in subjects]
        key = self.key
        return [(key.subject_tag(s), key.seal(s.encode(), _SUBJECT)) for s in subjects]

    def seal_text(self, value: str | None) -> str | None:
        """A ``data_subject_read`` text column as stored: the sealed value in hex when
        there is a key (the row is sealed exactly when its entry is)."""
        if value is None or self.key is None:
            return value
        return self.key.seal(value.encode(), _READ).hex()

    def seal_read(self, details: ReadDetails) -> ReadDetails:
        """The ``data_subject_read`` row of a read as stored: its path, user id and case
        number sealed (the path may name the person)."""
        if self.key is None:
            return details
        return ReadDetails(
            method=details.method,
            path=self.seal_text(details.path) or "",
            status=details.status,
            user_id=self.seal_text(details.user_id),
            issue=self.seal_text(details.issue),
        )

    # -- reading -------------------------------------------------------------------------

    def required(self) -> None:
        """Refuse to seal older rows without a key (``gateway log encrypt``)."""
        if self.key is None:
            raise LogStoreError("sealing a log's older rows needs the node's data key (--data-key)")

    def _key_for(self, what: str) -> DataKey:
        if self.key is None:
            raise LogStoreError(
                f"{what} is sealed at rest: open the log with the node's data key"
                " (--data-key FILE and its passphrase)"
            )
        return self.key

    def open_blob(self, entry_id: object, value: bytes, sealed: object, column: str) -> bytes:
        """A header (``column`` "header") or body as written, from its row."""
        if not sealed or not value:
            return value
        if sealed != SEALED_V1:
            raise LogStoreError(f"entry {entry_id}: unknown sealing version {sealed!r}")
        key = self._key_for(f"entry {entry_id}")
        try:
            return key.open(value, _HEADER if column == "header" else _BODY)
        except AtRestError as exc:
            raise LogStoreError(f"entry {entry_id}: {exc}") from None

    def open_subject(self, entry_id: object, stored: str, sealed: bytes | None) -> str:
        """A data subject's identifier from its row (tag and sealed value, or plain)."""
        if sealed is None:
            return stored
        key = self._key_for(f"the data subjects of entry {entry_id}")
        try:
            return key.open(bytes(sealed), _SUBJECT).decode()
        except AtRestError as exc:
            raise LogStoreError(f"entry {entry_id}: {exc}") from None

    def lookup_sealed(self) -> None:
        """Refuse a data-subject search in a log with sealed subjects without the key."""
        self._key_for("the data subjects of this log")

    def lookup(self, subject: str) -> tuple[str, str]:
        """The ``data_subject.subject`` values that name ``subject``: its tag under this
        key and itself (rows written before sealing). Without a key both are the plain
        value; a tag never equals an identifier, so the two cannot mix up."""
        if self.key is None:
            return subject, subject
        tag = self.key.subject_tag(subject)
        assert is_subject_tag(tag)
        return tag, subject

    def open_text(self, entry_id: object, value: str | None, sealed: object) -> str | None:
        """A ``data_subject_read`` text column as ``seal_text`` stored it; ``sealed`` is
        the flag of the entry the read belongs to."""
        if value is None or not sealed:
            return value
        key = self._key_for(f"the read of entry {entry_id}")
        try:
            return key.open(bytes.fromhex(value), _READ).decode()
        except (AtRestError, ValueError) as exc:
            raise LogStoreError(f"entry {entry_id}: {exc}") from None

    def open_read(self, entry_id: object, details: ReadDetails, sealed: object) -> ReadDetails:
        """A ``data_subject_read`` row as ``seal_read`` stored it."""
        if not sealed:
            return details
        return ReadDetails(
            method=details.method,
            path=self.open_text(entry_id, details.path, sealed) or "",
            status=details.status,
            user_id=self.open_text(entry_id, details.user_id, sealed),
            issue=self.open_text(entry_id, details.issue, sealed),
        )
