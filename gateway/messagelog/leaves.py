"""A new entry's leaf and the rows of its batch, as both backends' writers compute them.

The writer thread commits every exchange of a node, so what it does per entry is paid
once per message on each node. This module computes the same values the definitions in
``gateway.core.logtree`` give (the leaf, the subjects commitment) and the same rows
``dataclasses.astuple`` gives, without their generic work per call:

* the subjects commitment of an entry without data subjects, most entries, is the
  SHA-256 of one fixed document with the entry's salt in it. The document's bytes
  around the salt are taken once from ``canonical_json`` itself (``_EMPTY``), so they
  cannot drift from the definition; an entry with subjects goes through
  ``subjects_commitment`` as before;
* the leaf is encoded by ``encode_leaf`` from the record's fields, without building a
  ``LoggedEntry`` first;
* an operational record's row is read by one ``attrgetter`` over its fields, in their
  declared order, instead of ``astuple``'s deep copy of every value (all of them are
  str, int or bool).

``tests/unit/test_messagelog_leaves.py`` compares each with the definition it stands
for, on arbitrary values.

A subtree's row is keyed by :func:`subtree_key` (``merkle_subtree.node``), so the rows a
commit writes are the table's last keys (docs/adr/0072-fewer-pages-per-log-commit.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import fields
from operator import attrgetter
from typing import Final

from gateway.core.canonical import canonical_json
from gateway.core.logtree import SUBJECTS_SALT_SIZE, SUBJECTS_TYPE, encode_leaf, subjects_commitment
from gateway.core.merkle import leaf_hash
from gateway.messagelog.records import LogRecord, OpRecord

__all__ = ["commitment", "new_leaf", "op_rows", "subtree_key", "subtree_rows"]


def _empty_document() -> tuple[bytes, bytes]:
    """The canonical subjects document of no subjects, split around its salt."""
    placeholder = "0123456789abcdef" * (SUBJECTS_SALT_SIZE // 8)
    document = canonical_json({"type": SUBJECTS_TYPE, "salt": placeholder, "subjects": []})
    before, after = document.split(placeholder.encode("ascii"))
    return before, after


_EMPTY: Final = _empty_document()


def commitment(salt: bytes, subjects: tuple[str, ...]) -> str:
    """``subjects_commitment(salt, subjects)``; for no subjects, without a JSON walk."""
    if subjects or len(salt) != SUBJECTS_SALT_SIZE:
        return subjects_commitment(salt, subjects)  # and its refusal of a bad salt
    before, after = _EMPTY
    return hashlib.sha256(before + salt.hex().encode("ascii") + after).hexdigest()


def new_leaf(r: LogRecord, logged_at: str, body_digest: str, subjects_sha256: str | None) -> bytes:
    """The leaf hash of a new entry: ``leaf_hash(entry_leaf(LoggedEntry(...)))`` over
    the record as logged at ``logged_at``, its body committed to by ``body_digest``
    (and, as ``encode_leaf`` has it, a version 1 leaf for ``subjects_sha256`` None)."""
    return leaf_hash(
        encode_leaf(
            role=str(r.role),
            kind=str(r.kind),
            message_id=r.message_id,
            xroad_id=r.xroad_id,
            client=r.client,
            service=r.service,
            created=r.created,
            logged_at=logged_at,
            header_sha256=hashlib.sha256(r.header).hexdigest(),
            body_sha256=body_digest,
            signature_sha256=hashlib.sha256(r.signature.encode("utf-8")).hexdigest(),
            cert_ref=r.cert_ref,
            ocsp_ref=r.ocsp_ref,
            subjects_sha256=subjects_sha256,
        )
    )


_OP_FIELDS: Final = attrgetter(*(f.name for f in fields(OpRecord)))


def op_rows(records: Sequence[OpRecord]) -> list[tuple[object, ...]]:
    """Each record's values in field order (the column order of ``operational_data``'s
    INSERT), as ``astuple`` gives them."""
    return [_OP_FIELDS(r) for r in records]


def subtree_key(level: int, position: int) -> int:
    """``merkle_subtree.node`` of the subtree at ``level`` and ``position``: the number of
    leaves at which it is complete, ``(position + 1) << level``, times 64, plus its level.

    A leaf completes its subtrees (itself, then the ones its carries close) all at one
    leaf count, and the count only grows, so each commit's subtrees are the largest keys
    of the table, in the order they are written: one page at the end of one B-tree per
    commit, where a key of ``(level, position)`` put each level's rows on a page of its
    own. One key per subtree: a level is below 64 and the count below 2**57, so the key
    fits a signed 64-bit integer (a log of 2**57 leaves is far beyond any disk)."""
    return (((position + 1) << level) << 6) | level


def subtree_rows(subtrees: Sequence[tuple[int, int, bytes]]) -> list[tuple[int, int, int, bytes]]:
    """``(node, level, position, hash)`` rows of ``CompactTree.append``'s subtrees."""
    return [((((p + 1) << lv) << 6) | lv, lv, p, h) for lv, p, h in subtrees]
