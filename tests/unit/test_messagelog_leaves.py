"""The writer's short ways to an entry's leaf, its subjects commitment and an operational
record's row give exactly what the definitions give, on arbitrary values: the log's
leaves and rows are a contract with auditors, and a shortcut that drifted would make
every proof after it fail."""

from __future__ import annotations

from dataclasses import astuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.logtree import LoggedEntry, entry_leaf, subjects_commitment
from gateway.core.merkle import leaf_hash
from gateway.messagelog import Kind, LogRecord, Role
from gateway.messagelog.leaves import commitment, new_leaf, op_rows
from gateway.messagelog.records import OpRecord

text = st.text(max_size=40)  # any Unicode, quotes, backslashes and "%s" included
hex64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


@settings(max_examples=300, deadline=None)
@given(salt=st.binary(min_size=16, max_size=16), subjects=st.lists(text, max_size=4))
def test_commitment_is_the_definition(salt: bytes, subjects: list[str]) -> None:
    assert commitment(salt, tuple(subjects)) == subjects_commitment(salt, subjects)


@settings(max_examples=50, deadline=None)
@given(salt=st.binary(max_size=40).filter(lambda b: len(b) != 16), empty=st.booleans())
def test_a_salt_of_the_wrong_size_is_refused_as_the_definition_refuses_it(
    salt: bytes, empty: bool
) -> None:
    subjects = () if empty else ("DE-IDNR-1",)
    with pytest.raises(ValueError) as ours:
        commitment(salt, subjects)
    with pytest.raises(ValueError) as theirs:
        subjects_commitment(salt, subjects)
    assert str(ours.value) == str(theirs.value)


@settings(max_examples=300, deadline=None)
@given(
    role=st.sampled_from(list(Role)),
    kind=st.sampled_from(list(Kind)),
    fields=st.lists(text, min_size=8, max_size=8),
    header=st.binary(max_size=200),
    body=st.binary(max_size=200),
    digest=hex64,
    subjects_sha256=hex64,
)
def test_new_leaf_is_the_leaf_of_the_stored_entry(
    role: Role,
    kind: Kind,
    fields: list[str],
    header: bytes,
    body: bytes,
    digest: str,
    subjects_sha256: str,
) -> None:
    message_id, xroad_id, client, service, created, logged_at, signature, refs = fields
    record = LogRecord(
        role=role,
        kind=kind,
        message_id=message_id,
        xroad_id=xroad_id,
        client=client,
        service=service,
        created=created,
        header=header,
        body=body,
        signature=signature,
        cert_ref=refs,
        ocsp_ref=refs[::-1],
    )
    stored = LoggedEntry(
        str(role),
        str(kind),
        message_id,
        xroad_id,
        client,
        service,
        created,
        logged_at,
        header,
        body,
        signature,
        refs,
        refs[::-1],
        digest,
        subjects_sha256,
    )
    assert new_leaf(record, logged_at, digest, subjects_sha256) == leaf_hash(entry_leaf(stored))


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(text, min_size=10, max_size=10),
    sizes=st.lists(st.integers(min_value=0, max_value=2**40), min_size=3, max_size=3),
    succeeded=st.booleans(),
)
def test_op_rows_are_astuple(texts: list[str], sizes: list[int], succeeded: bool) -> None:
    side, node, peer, client, service, message_id, xroad_id, came, went, code = texts
    record = OpRecord(
        side, node, peer, client, service, message_id, xroad_id, came, went,
        sizes[0], sizes[1], sizes[2], succeeded, code,
    )  # fmt: skip
    assert op_rows([record, record]) == [astuple(record), astuple(record)]
