"""What a row of the SQLite backend becomes: the record types of
:mod:`gateway.messagelog.records`, built from the columns ``sqlite.py`` selects.

Kept apart from the queries so that reading a row (types, defaults of older files, the
enums) has one home beside the SQL that fetches it.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.messagelog.records import (
    CosignatureRow,
    LogStoreError,
    ReadDetails,
    SignedHead,
    StoredEntry,
    StoredTreeHead,
)
from gateway.messagelog.schema_names import Kind, Role
from gateway.messagelog.sealing import Sealer


def text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def stored_entry(row: Sequence[object], sealer: Sealer) -> StoredEntry:
    """An entry from its row (``sealed`` last), its header and body opened by
    ``sealer`` if the row is sealed (both backends select the same columns)."""
    (entry_id, logged_at, role, kind, message_id, xroad_id, client, service, created) = row[:9]
    header, body, leaf_index, leaf_hash = row[9], row[10], row[14], row[15]
    assert isinstance(header, bytes) and isinstance(body, bytes)
    header = sealer.open_blob(entry_id, header, row[20], "header")
    body = sealer.open_blob(entry_id, body, row[20], "body")
    try:
        typed_role, typed_kind = Role(str(role)), Kind(str(kind))
    except ValueError as exc:
        raise LogStoreError(f"entry {entry_id}: {exc}") from None
    return StoredEntry(
        id=int(str(entry_id)),
        logged_at=str(logged_at),
        role=typed_role,
        kind=typed_kind,
        message_id=str(message_id),
        xroad_id=str(xroad_id),
        client=str(client),
        service=str(service),
        created=str(created),
        header=header,
        body=body,
        signature=str(row[11]),
        cert_ref=str(row[12]),
        ocsp_ref=str(row[13]),
        leaf_index=None if leaf_index is None else int(str(leaf_index)),
        leaf_hash=leaf_hash if isinstance(leaf_hash, bytes) else None,
        body_sha256=text_or_none(row[16]),
        body_omitted=str(row[17] or ""),
        subjects_salt=text_or_none(row[18]),
        subjects_sha256=text_or_none(row[19]),
    )


# -- tree heads and signatures --------------------------------------------------------------


def stored_tree_head(row: tuple[object, ...]) -> StoredTreeHead:
    (head_id, size, root, last_id, document, gen_time, token, tsa, cert_ref, stored_at) = row
    assert isinstance(root, bytes) and isinstance(document, bytes) and isinstance(token, bytes)
    return StoredTreeHead(
        int(str(head_id)),
        int(str(size)),
        root,
        int(str(last_id)),
        document,
        str(gen_time),
        token,
        str(tsa),
        str(cert_ref),
        str(stored_at),
    )


def signed_head(row: tuple[object, ...]) -> SignedHead:
    size, document, signature, cert_ref, ocsp_ref = row
    assert isinstance(document, bytes)
    return SignedHead(int(str(size)), document, str(signature), str(cert_ref), str(ocsp_ref))


def cosignature_row(row: tuple[object, ...]) -> CosignatureRow:
    a, b, c, d, e, f, g, h, i = row
    assert isinstance(d, bytes)
    return CosignatureRow(str(a), str(b), int(str(c)), d, str(e), str(f), str(g), str(h), str(i))


# -- the data tracker ---------------------------------------------------------------------


def stored_details(columns: Sequence[object]) -> ReadDetails | None:
    """The ``data_subject_read`` columns of a read; None if it has no row.

    No row means the read was archived before the log kept its details apart: who,
    when, which service and which exchange are still known from the entry's columns,
    the rest only from the archive bundle.
    """
    method, path, status, user_id, issue = columns
    if method is None:
        return None
    return ReadDetails(
        str(method),
        str(path),
        int(str(status)),
        None if user_id is None else str(user_id),
        None if issue is None else str(issue),
    )
