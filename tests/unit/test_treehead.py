"""Signed tree heads and co-signatures (gateway.core.treehead): the document's one
spelling, who may sign it, and split-view detection between two heads of one node."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.ids import MemberId, NodeId
from gateway.core.jws import SignatureVerifier, Signer
from gateway.core.merkle import consistency_proof, leaf_hash, tree_hash
from gateway.core.treehead import (
    STH_TYPE,
    SignedTreeHead,
    TreeHeadError,
    TreeHeadFailure,
    check_extends,
    parse_sth,
    sign_sth,
    sth_document,
    verify_sth_signature,
)
from gateway.pki.ca import create_root_ca, issue_certificate, make_csr
from gateway.pki.keys import generate_key
from gateway.pki.profiles import CertKind

ISSUED = datetime(2025, 1, 1, tzinfo=UTC)
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
STAMP = datetime(2025, 6, 1, 11, 59, 30, 123456, tzinfo=UTC)
OWNER = MemberId("DE-NRW", "GOV", "05974028")
WITNESS = MemberId("DE-NRW", "GOV", "05974040")
NODE = "DE-NRW/GOV/05974028/ss1"

CA_KEY = generate_key()
CA = create_root_ca("Test Root", CA_KEY, ISSUED, days=3650)


def _signer(member: MemberId) -> Signer:
    key = generate_key()
    cert = issue_certificate(
        make_csr(key, CertKind.SIGN, member), CertKind.SIGN, CA_KEY, CA, ISSUED, days=365
    )
    return Signer(member, key, [cert])


OWNER_SIGNER = _signer(OWNER)
WITNESS_SIGNER = _signer(WITNESS)
VERIFIER = SignatureVerifier([CA])


def _leaves(n: int, fork: int | None = None) -> list[bytes]:
    """n leaf hashes; with ``fork``, leaf ``fork`` differs (another history)."""
    return [leaf_hash(f"entry {i}{'!' if i == fork else ''}".encode()) for i in range(n)]


def _head(leaves: list[bytes]) -> SignedTreeHead:
    return SignedTreeHead(NODE, len(leaves), tree_hash(leaves), STAMP)


def test_the_document_has_one_spelling_and_reads_back() -> None:
    root = hashlib.sha256(b"root").digest()
    document = sth_document(NODE, 7, root, STAMP)
    assert document == (
        b'{"node":"DE-NRW/GOV/05974028/ss1","root_hash":"'
        + root.hex().encode()
        + b'","timestamp":"2025-06-01T11:59:30.123456Z","tree_size":7,"type":"'
        + STH_TYPE.encode()
        + b'"}'
    )
    head = parse_sth(document)
    assert head == SignedTreeHead(NODE, 7, root, STAMP)
    assert head.member == OWNER


@pytest.mark.parametrize(
    "document",
    [
        b'{"node":"DE-NRW/GOV/05974028/ss1","root_hash":"'
        + b"ab" * 32
        + b'","timestamp":"2025-06-01T11:59:30Z","tree_size":7,"type":"'
        + STH_TYPE.encode()
        + b'"}',  # the time in another spelling
        b'{"node":"x","root_hash":"'
        + b"ab" * 32
        + b'","timestamp":"2025-06-01T11:59:30.000000Z","tree_size":7,"type":"'
        + STH_TYPE.encode()
        + b'"}',  # not a node id
        b'{"node":"DE-NRW/GOV/05974028/ss1","root_hash":"'
        + b"AB" * 32
        + b'","timestamp":"2025-06-01T11:59:30.000000Z","tree_size":7,"type":"'
        + STH_TYPE.encode()
        + b'"}',  # upper-case hex
        b'{"node":"DE-NRW/GOV/05974028/ss1","root_hash":"'
        + b"ab" * 32
        + b'","tree_size":7,"type":"gateway-tree-head/v1"}',  # the TSA's document
        b'{"type": "gateway-signed-tree-head/v1"}',  # not canonical
    ],
)
def test_anything_but_the_canonical_document_is_malformed(document: bytes) -> None:
    with pytest.raises(TreeHeadError) as caught:
        parse_sth(document)
    assert caught.value.reason is TreeHeadFailure.MALFORMED


def test_owner_signature_and_witness_cosignature_verify_over_the_same_bytes() -> None:
    document = sth_document(NODE, 3, tree_hash(_leaves(3)), STAMP)
    signature = sign_sth(OWNER_SIGNER, document)
    cosignature = sign_sth(WITNESS_SIGNER, document)
    head, verified = verify_sth_signature(VERIFIER, document, signature, NOW, signer=OWNER)
    assert head.tree_size == 3 and verified.signer == OWNER
    _, co = verify_sth_signature(VERIFIER, document, cosignature, NOW, signer=WITNESS)
    assert co.signer == WITNESS


def test_a_signature_by_another_member_is_refused() -> None:
    document = sth_document(NODE, 3, tree_hash(_leaves(3)), STAMP)
    with pytest.raises(TreeHeadError) as caught:
        verify_sth_signature(
            VERIFIER, document, sign_sth(WITNESS_SIGNER, document), NOW, signer=OWNER
        )
    assert caught.value.reason is TreeHeadFailure.SIGNER


def test_a_changed_document_or_an_untrusted_root_is_refused() -> None:
    document = sth_document(NODE, 3, tree_hash(_leaves(3)), STAMP)
    signature = sign_sth(OWNER_SIGNER, document)
    other = sth_document(NODE, 3, tree_hash(_leaves(3, fork=1)), STAMP)
    with pytest.raises(TreeHeadError) as caught:
        verify_sth_signature(VERIFIER, other, signature, NOW, signer=OWNER)
    assert caught.value.reason is TreeHeadFailure.SIGNATURE
    stranger = create_root_ca("Other Root", generate_key(), ISSUED, days=3650)
    with pytest.raises(TreeHeadError) as caught:
        verify_sth_signature(SignatureVerifier([stranger]), document, signature, NOW, signer=OWNER)
    assert caught.value.reason is TreeHeadFailure.SIGNATURE


def test_sign_refuses_to_sign_something_that_is_not_a_tree_head() -> None:
    with pytest.raises(TreeHeadError):
        sign_sth(OWNER_SIGNER, b'{"type":"gateway-log-leaf/v1"}')


@settings(max_examples=60, deadline=None)
@given(old=st.integers(1, 40), grow=st.integers(0, 40))
def test_a_grown_log_extends_its_earlier_head(old: int, grow: int) -> None:
    leaves = _leaves(old + grow)
    proof = consistency_proof(old, old + grow, leaves)
    check_extends(_head(leaves[:old]), _head(leaves), proof)


@settings(max_examples=60, deadline=None)
@given(old=st.integers(1, 40), grow=st.integers(0, 40), data=st.data())
def test_a_forked_history_is_a_split_view(old: int, grow: int, data: st.DataObject) -> None:
    fork = data.draw(st.integers(0, old - 1))
    honest = _leaves(old + grow)
    forked = _leaves(old + grow, fork=fork)
    # The fork's own (valid) proof from its size-old prefix: the honest old head is not it.
    proof = consistency_proof(old, old + grow, forked)
    with pytest.raises(TreeHeadError) as caught:
        check_extends(_head(honest[:old]), _head(forked), proof)
    assert caught.value.reason is TreeHeadFailure.SPLIT_VIEW


def test_a_shrunk_log_is_a_split_view() -> None:
    leaves = _leaves(5)
    with pytest.raises(TreeHeadError) as caught:
        check_extends(_head(leaves), _head(leaves[:3]), [])
    assert caught.value.reason is TreeHeadFailure.SPLIT_VIEW
    assert "went back" in caught.value.detail


def test_heads_of_different_nodes_are_not_compared() -> None:
    other = SignedTreeHead(str(NodeId.parse("DE-NRW/GOV/05974040/ss1")), 1, b"\0" * 32, STAMP)
    with pytest.raises(ValueError):
        check_extends(_head(_leaves(1)), other, [])
