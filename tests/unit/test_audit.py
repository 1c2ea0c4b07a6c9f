"""The audit bundle: export from a real log, verify offline, refuse every alteration.

The log is written through the node's own ``MessageLog`` with really signed headers,
real OCSP responses and tree heads stamped by an in-process RFC 3161 TSA
(``gateway.sandbox.bench.audit.build_log``). Property tests mutate the parsed bundle (entries,
proofs, tree heads) at random and require a refusal every time; the untouched bundle
must always pass. Third-party checks: ``openssl ts -verify`` on the exported tokens,
``openssl ocsp`` on the OCSP responses, PyJWT on the detached JWS.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import sqlite3
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.audit.anchor import AuditAnchorError, anchor_json, load_anchor
from gateway.audit.bundle import Bundle, BundleFormatError, EntryItem, HeadItem, encode_bundle
from gateway.audit.bundle_read import read_bundle
from gateway.audit.export import ExportError, Selection, export_bundle
from gateway.audit.parallel import verify_file
from gateway.audit.proofs import TreeLevels
from gateway.audit.verify import (
    AuditError,
    AuditFailure,
    AuditTrustAnchor,
    SignatureTask,
    check_signatures_serial,
    verify_bundle,
)
from gateway.core import merkle
from gateway.core.canonical import canonical_json
from gateway.core.logtree import LEAF_TYPE, encode_leaf, subjects_commitment
from gateway.pki.ca import create_root_ca, issue_service_certificate, make_service_csr
from gateway.pki.keys import generate_key
from gateway.pki.profiles import ServiceKind
from gateway.sandbox.bench.audit import START, SUBJECT, SyntheticLog, build_log

ENTRIES = 30
HEAD_EVERY = 8


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> SyntheticLog:
    return build_log(tmp_path_factory.mktemp("auditlog"), ENTRIES, head_every=HEAD_EVERY)


@pytest.fixture(scope="module")
def bundle_file(log: SyntheticLog) -> Path:
    out = log.db.parent / "all.jsonl"
    export_bundle(log.db, out, Selection(all=True), now=START + timedelta(days=1))
    return out


@pytest.fixture(scope="module")
def pristine(bundle_file: Path) -> Bundle:
    with bundle_file.open("rb") as handle:
        return read_bundle(handle)


def fresh(bundle: Bundle) -> Bundle:
    return dataclasses.replace(
        bundle,
        certificates=list(bundle.certificates),
        ocsp=list(bundle.ocsp),
        heads=list(bundle.heads),
        entries=list(bundle.entries),
    )


def refused(bundle: Bundle, anchor: AuditTrustAnchor) -> AuditError:
    with pytest.raises(AuditError) as caught:
        verify_bundle(bundle, anchor)
    return caught.value


# -- the happy path ---------------------------------------------------------------------


def test_a_whole_log_exports_and_verifies(log: SyntheticLog, pristine: Bundle) -> None:
    report = verify_bundle(pristine, log.anchor)
    assert report.entries == ENTRIES
    assert report.signatures == ENTRIES
    assert report.tree_heads == len(pristine.heads) == -(-ENTRIES // HEAD_EVERY)
    assert (report.first_leaf, report.last_leaf) == (0, ENTRIES - 1)
    assert pristine.manifest.node == "DE-NRW/GOV/05974028/ss1"
    # every entry proves into the first tree head covering it
    for entry in pristine.entries:
        assert entry.proof_size == next(
            h.tree_size for h in pristine.heads if h.tree_size > entry.leaf_index
        )


def test_the_file_round_trips_byte_for_byte(bundle_file: Path, pristine: Bundle) -> None:
    assert b"".join(encode_bundle(pristine)) == bundle_file.read_bytes()


def test_a_message_id_selection_holds_request_and_response(
    log: SyntheticLog, pristine: Bundle, tmp_path: Path
) -> None:
    message_id = pristine.entries[5].message_id
    out = tmp_path / "one.jsonl"
    result = export_bundle(log.db, out, Selection(message_id=message_id), now=START, bodies=False)
    with out.open("rb") as handle:
        bundle = read_bundle(handle)
    assert result.entries == 2
    assert [e.kind for e in bundle.entries] == ["request", "response"]
    assert all(e.body is None for e in bundle.entries)
    assert bundle.heads[0].consistency_from is None
    verify_bundle(bundle, log.anchor)


def test_a_time_range_selection_verifies(
    log: SyntheticLog, pristine: Bundle, tmp_path: Path
) -> None:
    since = START + timedelta(milliseconds=40)
    until = START + timedelta(milliseconds=90)
    out = tmp_path / "range.jsonl"
    export_bundle(log.db, out, Selection(since=since, until=until), now=START)
    with out.open("rb") as handle:
        bundle = read_bundle(handle)
    assert bundle.entries and all(since.isoformat()[:19] <= e.logged_at for e in bundle.entries)
    verify_bundle(bundle, log.anchor)


def test_export_needs_a_selection(log: SyntheticLog, tmp_path: Path) -> None:
    with pytest.raises(ExportError):
        export_bundle(log.db, tmp_path / "x.jsonl", Selection(), now=START)


def test_export_refuses_a_log_with_a_missing_leaf(log: SyntheticLog, tmp_path: Path) -> None:
    copy = tmp_path / "gap.sqlite"
    with sqlite3.connect(log.db) as source, sqlite3.connect(copy) as target:
        source.backup(target)
        target.execute("DELETE FROM message_log WHERE leaf_index = 3")
    with pytest.raises(ExportError, match="leaf 3 is missing"):
        export_bundle(copy, tmp_path / "x.jsonl", Selection(all=True), now=START)


def test_chunks_in_worker_processes_give_the_same_verdict(
    log: SyntheticLog, pristine: Bundle, bundle_file: Path, tmp_path: Path
) -> None:
    report = verify_file(bundle_file, log.anchor, jobs=2, chunk=7)
    assert report == verify_bundle(pristine, log.anchor)
    lines = bundle_file.read_bytes().splitlines(keepends=True)
    # damage two entries in different chunks: the earlier one must be named
    for victim in (-12, -3):
        at = lines[victim].index(b'"header":"') + 30
        other = b"B" if lines[victim][at : at + 1] == b"A" else b"A"
        lines[victim] = lines[victim][:at] + other + lines[victim][at + 1 :]
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes(b"".join(lines))
    with damaged.open("rb") as handle:
        expected = refused(read_bundle(handle), log.anchor)
    for jobs in (1, 2):
        with pytest.raises(AuditError) as caught:
            verify_file(damaged, log.anchor, jobs=jobs, chunk=7)
        assert (caught.value.reason, caught.value.piece) == (expected.reason, expected.piece)
        assert caught.value.piece.startswith(f"entry {json.loads(lines[-12])['id']} ")


def test_a_bad_signature_is_reported_for_its_entry(log: SyntheticLog, pristine: Bundle) -> None:
    class FailsAtSeven:
        def __init__(self) -> None:
            self.tasks: list[SignatureTask] = []

        def submit(self, tasks: list[SignatureTask]) -> None:
            self.tasks.extend(tasks)

        def first_failure(self) -> int | None:
            return 7

    checker = FailsAtSeven()
    with pytest.raises(AuditError) as caught:
        verify_bundle(pristine, log.anchor, checker=checker)
    assert caught.value.reason is AuditFailure.SIGNATURE
    assert caught.value.piece.startswith(f"entry {pristine.entries[7].id} ")
    # and the real checker finds a forged signature among real ones
    task = checker.tasks[7]
    forged = dataclasses.replace(task, signature=_flip(task.signature, 40))
    assert check_signatures_serial(checker.tasks[:7]) is None
    assert check_signatures_serial([*checker.tasks[:7], forged]) == task.position


# -- specific refusals with their reason codes ----------------------------------------------


def test_a_changed_body_is_named(log: SyntheticLog, pristine: Bundle) -> None:
    bad = fresh(pristine)
    victim = bad.entries[3]
    assert victim.body is not None or victim.kind == "request"
    bad.entries[3] = dataclasses.replace(victim, body=(victim.body or b"") + b" ")
    error = refused(bad, log.anchor)
    assert error.reason is AuditFailure.BODY_MISMATCH
    assert error.piece.startswith(f"entry {victim.id} (leaf 3")


def test_a_recomputed_leaf_that_the_tree_does_not_hold_is_not_included(
    log: SyntheticLog, pristine: Bundle
) -> None:
    bad = fresh(pristine)
    victim = bad.entries[4]
    bad.entries[4] = dataclasses.replace(
        victim, logged_at=victim.logged_at.replace("08:00", "07:59")
    )
    assert refused(bad, log.anchor).reason is AuditFailure.LEAF_MISMATCH


def test_an_untrusted_tsa_is_refused(log: SyntheticLog, pristine: Bundle) -> None:
    key = generate_key()
    ca_key = generate_key()
    other_ca = create_root_ca("Other CA", ca_key, START - timedelta(days=1))
    other = issue_service_certificate(
        make_service_csr(key, "Other TSA"),
        ServiceKind.TSA,
        ca_key,
        other_ca,
        START - timedelta(days=1),
    )
    error = refused(pristine, AuditTrustAnchor(log.anchor.cas, (other,)))
    assert error.reason is AuditFailure.UNTRUSTED_TSA
    assert error.piece == f"tree head {pristine.heads[0].tree_size}"


def test_an_untrusted_ca_is_refused(log: SyntheticLog, pristine: Bundle) -> None:
    other = create_root_ca("Other CA", generate_key(), START - timedelta(days=1))
    # Tree heads are checked before entries: the first signed head's chain fails first.
    error = refused(pristine, AuditTrustAnchor((other,), log.anchor.tsas))
    assert error.reason is AuditFailure.HEAD_SIGNATURE
    assert error.piece == f"tree head {pristine.heads[0].tree_size}"
    error = refused(_unsigned(pristine), AuditTrustAnchor((other,), log.anchor.tsas))
    assert error.reason is AuditFailure.CERTIFICATE
    assert error.piece.startswith(f"entry {pristine.entries[0].id} ")


def test_ocsp_must_be_fresh_at_the_signing_time(log: SyntheticLog, pristine: Bundle) -> None:
    # thisUpdate is one minute before the first entry (and the first head) was signed
    strict = dataclasses.replace(log.anchor, ocsp_freshness=timedelta(seconds=30))
    error = refused(pristine, strict)
    assert error.reason is AuditFailure.HEAD_SIGNATURE
    assert "stale" in error.detail
    error = refused(_unsigned(pristine), strict)
    assert error.reason is AuditFailure.OCSP
    assert "stale" in error.detail


def _unsigned(bundle: Bundle) -> Bundle:
    """The bundle as a log from before signed tree heads would give it."""
    unsigned = fresh(bundle)
    unsigned.heads[:] = [
        dataclasses.replace(h, signed=None, cosignatures=()) for h in unsigned.heads
    ]
    unsigned.manifest = dataclasses.replace(unsigned.manifest, signed_heads=(), cosignatures=0)
    return unsigned


def test_signed_heads_and_cosignatures_are_checked(log: SyntheticLog, pristine: Bundle) -> None:
    report = verify_bundle(pristine, log.anchor)
    assert report.signed_heads == len(pristine.heads) == report.cosignatures
    assert verify_bundle(_unsigned(pristine), log.anchor).signed_heads == 0
    bad = fresh(pristine)
    head = bad.heads[1]
    assert head.signed is not None and bad.heads[0].signed is not None
    # The owner's signature over the previous head does not sign this one.
    bad.heads[1] = dataclasses.replace(
        head, signed=dataclasses.replace(head.signed, signature=bad.heads[0].signed.signature)
    )
    error = refused(bad, log.anchor)
    assert (error.reason, error.piece) == (
        AuditFailure.HEAD_SIGNATURE,
        f"tree head {head.tree_size}",
    )
    # A witness co-signature made with the log owner's own key is no witness.
    bad = fresh(pristine)
    witness = dataclasses.replace(head.cosignatures[0], cosignature=head.signed.signature)
    bad.heads[1] = dataclasses.replace(head, cosignatures=(witness,))
    assert refused(bad, log.anchor).reason is AuditFailure.COSIGNATURE


def test_a_missing_ocsp_response_is_refused(log: SyntheticLog, pristine: Bundle) -> None:
    bad = _unsigned(pristine)
    bad.ocsp = bad.ocsp[:1]
    bad.manifest = dataclasses.replace(bad.manifest, ocsp_responses=1)
    error = refused(bad, log.anchor)
    assert error.reason is AuditFailure.OCSP
    assert "not in the bundle" in error.detail


def test_a_rewritten_history_breaks_consistency(log: SyntheticLog, pristine: Bundle) -> None:
    bad = fresh(pristine)
    head = bad.heads[2]
    bad.heads[2] = dataclasses.replace(head, consistency=(*head.consistency[:-1], bytes(32)))
    error = refused(bad, log.anchor)
    assert error.reason is AuditFailure.CONSISTENCY
    assert error.piece == f"tree head {head.tree_size}"


def test_a_head_stamped_before_its_entries_were_logged_is_refused(
    log: SyntheticLog, pristine: Bundle
) -> None:
    # entries claim a later logged_at: the leaf changes, so make the claim consistently
    # through a log written with tree heads stamped an hour early instead
    from gateway.sandbox.bench.audit import stamp

    bad = _unsigned(pristine)  # a signed head would also have to name that early time
    head = bad.heads[0]
    early = START - timedelta(hours=1)
    token = stamp(head.document, log.tsa_cert, log.tsa_key, early, 99)
    bad.heads[0] = dataclasses.replace(head, token=token, gen_time=early.isoformat())
    error = refused(bad, log.anchor)
    assert error.reason is AuditFailure.LOGGED_AFTER_HEAD
    assert error.piece.startswith(f"entry {bad.entries[0].id} ")


def test_unsigned_parts_of_a_token_cannot_change(log: SyntheticLog, pristine: Bundle) -> None:
    # The NULL parameters of the sha256 identifiers and the embedded TSA certificate are
    # outside the token's signature; a changed byte there must still be refused.
    token = pristine.heads[0].token
    sha256_null = bytes.fromhex("0609608648016503040201") + b"\x05\x00"
    nulls = [
        i + len(sha256_null) - 2 for i in range(len(token)) if token.startswith(sha256_null, i)
    ]
    cert_at = token.index(log.tsa_cert.public_bytes(Encoding.DER))
    assert len(nulls) >= 2
    for at in [*nulls, cert_at + 200]:
        bad = fresh(pristine)
        bad.heads[0] = dataclasses.replace(bad.heads[0], token=_flip(token, at))
        error = refused(bad, log.anchor)
        assert (error.reason, error.piece) == (AuditFailure.TIMESTAMP, f"tree head {HEAD_EVERY}")


def test_a_whole_log_bundle_must_be_complete(log: SyntheticLog, pristine: Bundle) -> None:
    bad = fresh(pristine)
    del bad.entries[-1]
    bad.manifest = dataclasses.replace(bad.manifest, entries=((0, ENTRIES - 2),))
    assert refused(bad, log.anchor).reason is AuditFailure.INCOMPLETE


def test_a_damaged_line_names_its_entry(bundle_file: Path) -> None:
    lines = bundle_file.read_bytes().splitlines(keepends=True)
    victim = lines[-3]
    entry_id = json.loads(victim)["id"]
    lines[-3] = victim.replace(b'"header":"', b'"header":"!', 1)
    with pytest.raises(BundleFormatError) as caught:
        read_bundle(lines)
    assert caught.value.entry_id == entry_id


def test_the_anchor_file_forms(log: SyntheticLog, tmp_path: Path) -> None:
    loaded = load_anchor(log.anchor_path)
    assert loaded.cas == log.anchor.cas and loaded.tsas == log.anchor.tsas
    pem = tmp_path / "anchor.pem"
    pem.write_bytes(log.ca.public_bytes(Encoding.PEM) + log.tsa_cert.public_bytes(Encoding.PEM))
    loaded = load_anchor(pem)
    assert loaded.cas == (log.ca,) and loaded.tsas == (log.tsa_cert,)
    only_ca = tmp_path / "ca.json"
    only_ca.write_bytes(anchor_json([log.ca], []))
    with pytest.raises(AuditAnchorError):
        load_anchor(only_ca)


# -- third-party tools ------------------------------------------------------------------


def test_openssl_verifies_the_exported_tokens(
    log: SyntheticLog, pristine: Bundle, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(log.ca.public_bytes(Encoding.PEM))
    tsa = tmp_path / "tsa.pem"
    tsa.write_bytes(log.tsa_cert.public_bytes(Encoding.PEM))
    for head in pristine.heads:
        (tmp_path / "head.json").write_bytes(head.document)
        (tmp_path / "token.tst").write_bytes(head.token)
        result = subprocess.run(
            [
                "openssl",
                "ts",
                "-verify",
                "-data",
                str(tmp_path / "head.json"),
                "-in",
                str(tmp_path / "token.tst"),
                "-token_in",
                "-CAfile",
                str(ca),
                "-untrusted",
                str(tsa),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Verification: OK" in result.stdout


def test_openssl_reads_the_ocsp_responses(pristine: Bundle, tmp_path: Path) -> None:
    for response in pristine.ocsp:
        (tmp_path / "r.der").write_bytes(response.der)
        result = subprocess.run(
            ["openssl", "ocsp", "-respin", str(tmp_path / "r.der"), "-resp_text", "-noverify"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "Cert Status: good" in result.stdout


def test_a_jose_library_verifies_the_detached_jws(pristine: Bundle) -> None:
    for entry in pristine.entries[:4]:
        header = json.loads(base64.urlsafe_b64decode(entry.signature.split(".")[0] + "=="))
        from cryptography import x509

        cert = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        # RFC 7515 appendix F: put the base64url payload back between the dots
        protected, _, signature = entry.signature.split(".")
        payload = base64.urlsafe_b64encode(entry.header).rstrip(b"=").decode()
        decoded = jwt.api_jws.PyJWS().decode_complete(
            f"{protected}.{payload}.{signature}", key, algorithms=["ES256"]
        )
        assert decoded["payload"] == entry.header


def test_a_jose_library_verifies_signed_tree_heads_and_cosignatures(pristine: Bundle) -> None:
    """The same JWS form as messages: the payload is the signed tree-head document."""
    from cryptography import x509

    head = pristine.heads[0]
    assert head.signed is not None and head.cosignatures
    for jws in (head.signed.signature, *(c.cosignature for c in head.cosignatures)):
        protected, _, signature = jws.split(".")
        header = json.loads(base64.urlsafe_b64decode(protected + "=="))
        key = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0])).public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        payload = base64.urlsafe_b64encode(head.signed.document).rstrip(b"=").decode()
        decoded = jwt.api_jws.PyJWS().decode_complete(
            f"{protected}.{payload}.{signature}", key, algorithms=["ES256"]
        )
        assert json.loads(decoded["payload"])["tree_size"] == head.tree_size


# -- proofs -----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 80), st.data())
def test_tree_levels_give_the_same_proofs_as_merkle(size: int, data: st.DataObject) -> None:
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size)]
    levels = TreeLevels(leaves)
    tree_size = data.draw(st.integers(1, size))
    index = data.draw(st.integers(0, tree_size - 1))
    old = data.draw(st.integers(0, tree_size))
    assert levels.inclusion(index, tree_size) == merkle.inclusion_proof(index, tree_size, leaves)
    assert levels.consistency(old, tree_size) == merkle.consistency_proof(old, tree_size, leaves)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 64), st.lists(st.integers(0, 63), min_size=1, max_size=12), st.data())
def test_the_shared_inclusion_checker_agrees_with_merkle(
    size: int, picks: list[int], data: st.DataObject
) -> None:
    leaves = [os.urandom(32) for _ in range(size)]
    root = merkle.tree_hash(leaves)
    checker = merkle.InclusionChecker()
    for pick in picks:
        index = pick % size
        proof = tuple(merkle.inclusion_proof(index, size, leaves))
        if data.draw(st.booleans()) and proof:
            at = data.draw(st.integers(0, len(proof) - 1))
            proof = (*proof[:at], os.urandom(32), *proof[at + 1 :])
            with pytest.raises(merkle.MerkleError):
                checker.verify(leaves[index], index, size, proof, root)
        else:
            checker.verify(leaves[index], index, size, proof, root)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(), min_size=13, max_size=13))
def test_the_fast_leaf_encoding_is_canonical_json(values: list[str]) -> None:
    names = (
        "role",
        "kind",
        "message_id",
        "xroad_id",
        "client",
        "service",
        "created",
        "logged_at",
        "header_sha256",
        "body_sha256",
        "signature_sha256",
        "cert_ref",
        "ocsp_ref",
    )
    fields = dict(zip(names, values, strict=True))
    try:
        expected = canonical_json({"type": LEAF_TYPE, **fields})
    except UnicodeEncodeError:  # a lone surrogate: neither encoding accepts it
        with pytest.raises(UnicodeEncodeError):
            encode_leaf(**fields)
        return
    assert encode_leaf(**fields) == expected


# -- mutations --------------------------------------------------------------------------

_ENTRY_TEXT = (
    "logged_at",
    "role",
    "kind",
    "message_id",
    "xroad_id",
    "client",
    "service",
    "created",
    "signature",
    "cert_ref",
    "ocsp_ref",
    "body_sha256",
)


def _flip(data: bytes, at: int) -> bytes:
    at %= len(data)
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _other_text(text: str, at: int) -> str:
    if not text:
        return "0" * 64
    at %= len(text)
    swap = "1" if text[at] == "0" else "0"
    return text[:at] + swap + text[at + 1 :]


def _mutate_entry(bundle: Bundle, draw: Callable[..., int], kind: str) -> None:
    if len(bundle.entries) < 2:
        return
    i = draw(0, len(bundle.entries) - 1)
    e = bundle.entries[i]
    n = draw(0, 10_000)
    if kind == "text":
        name = _ENTRY_TEXT[n % len(_ENTRY_TEXT)]
        changes: dict[str, Any] = {name: _other_text(getattr(e, name), n)}
        bundle.entries[i] = dataclasses.replace(e, **changes)
    elif kind == "bytes":
        name = ("header", "body", "leaf_hash")[n % 3]
        value = getattr(e, name)
        changed = _flip(value, n) if value else b"x"
        bytes_changes: dict[str, Any] = {name: changed}
        bundle.entries[i] = dataclasses.replace(e, **bytes_changes)
    elif kind == "leaf_index":
        bundle.entries[i] = dataclasses.replace(e, leaf_index=e.leaf_index + 1 + n % 3)
    elif kind == "subjects":
        # Another commitment (as if subjects were added or removed) or none at all (as if
        # the entry were passed off as one logged before commitments existed).
        if e.subjects_sha256 is None:
            changed_digest: str | None = "0" * 64
        elif n % 2:
            changed_digest = _other_text(e.subjects_sha256, n)
        else:
            changed_digest = None
        bundle.entries[i] = dataclasses.replace(e, subjects_sha256=changed_digest)
    elif kind == "proof":
        if not e.inclusion or n % 4 == 0:
            bundle.entries[i] = dataclasses.replace(e, inclusion=(*e.inclusion, bytes(32)))
        elif n % 4 == 1:
            bundle.entries[i] = dataclasses.replace(e, inclusion=e.inclusion[:-1])
        elif n % 4 == 2:
            bundle.entries[i] = dataclasses.replace(e, proof_size=e.proof_size + HEAD_EVERY)
        else:
            at = n % len(e.inclusion)
            path = list(e.inclusion)
            path[at] = _flip(path[at], n)
            bundle.entries[i] = dataclasses.replace(e, inclusion=tuple(path))
    elif kind == "delete":
        del bundle.entries[i]
    elif kind == "truncate":
        del bundle.entries[i if i else 1 :]
    elif kind == "swap":
        j = (i + 1 + n % (len(bundle.entries) - 1)) % len(bundle.entries)
        bundle.entries[i], bundle.entries[j] = bundle.entries[j], bundle.entries[i]
    elif kind == "insert_copy":
        bundle.entries.insert(draw(0, len(bundle.entries)), e)
    elif kind == "insert_forged":
        bundle.entries.insert(i + 1, dataclasses.replace(e, leaf_index=e.leaf_index + 1))
        bundle.entries[i + 2 :] = [
            dataclasses.replace(x, leaf_index=x.leaf_index + 1) for x in bundle.entries[i + 2 :]
        ]


def _mutate_head(bundle: Bundle, draw: Callable[..., int], kind: str) -> None:
    if len(bundle.heads) < 2:
        return
    i = draw(0, len(bundle.heads) - 1)
    h: HeadItem = bundle.heads[i]
    n = draw(0, 10_000)
    if kind == "head_root":
        bundle.heads[i] = dataclasses.replace(h, root_hash=_flip(h.root_hash, n))
    elif kind == "head_token":
        bundle.heads[i] = dataclasses.replace(h, token=_flip(h.token, n))
    elif kind == "head_document":
        bundle.heads[i] = dataclasses.replace(h, document=h.document.replace(b"ss1", b"ss2"))
    elif kind == "head_time":
        bundle.heads[i] = dataclasses.replace(h, gen_time=_other_text(h.gen_time, 18))
    elif kind == "head_consistency":
        if h.consistency_from is None:
            bundle.heads[i] = dataclasses.replace(h, consistency_from=0)
        elif h.consistency:
            at = n % len(h.consistency)
            path = list(h.consistency)
            path[at] = _flip(path[at], n)
            bundle.heads[i] = dataclasses.replace(h, consistency=tuple(path))
        else:
            bundle.heads[i] = dataclasses.replace(h, consistency=(bytes(32),))
    elif kind == "head_delete":
        del bundle.heads[i]
    elif kind == "head_swap":
        j = (i + 1) % len(bundle.heads)
        bundle.heads[i], bundle.heads[j] = bundle.heads[j], bundle.heads[i]
    elif kind == "sth_signature" and h.signed is not None:
        # Another signature by the same key (a neighbour head's), or a flipped byte.
        j = (i + 1) % len(bundle.heads)
        other = bundle.heads[j].signed  # None if an earlier mutation stripped it
        signature = (
            other.signature
            if n % 2 and other is not None and j != i
            else _other_text(h.signed.signature, n)
        )
        bundle.heads[i] = dataclasses.replace(
            h, signed=dataclasses.replace(h.signed, signature=signature)
        )
    elif kind == "sth_document" and h.signed is not None:
        document = h.signed.document.replace(b'"tree_size":', b'"tree_size":1', 1)
        bundle.heads[i] = dataclasses.replace(
            h, signed=dataclasses.replace(h.signed, document=document)
        )
    elif kind == "sth_strip":
        bundle.heads[i] = dataclasses.replace(h, signed=None, cosignatures=())
    elif kind == "cosignature" and h.cosignatures:
        c = h.cosignatures[0]
        changed = (
            dataclasses.replace(c, cosignature=_other_text(c.cosignature, n))
            if n % 3 == 0
            else dataclasses.replace(c, witness="DE-NRW/GOV/05974028/ss2")
            if n % 3 == 1
            else dataclasses.replace(c, cosignature=h.signed.signature if h.signed else "")
        )
        bundle.heads[i] = dataclasses.replace(h, cosignatures=(changed, *h.cosignatures[1:]))
    elif kind == "cosignature_copy" and h.cosignatures:
        bundle.heads[i] = dataclasses.replace(h, cosignatures=h.cosignatures * 2)


ENTRY_MUTATIONS = (
    "text",
    "subjects",
    "bytes",
    "leaf_index",
    "proof",
    "delete",
    "truncate",
    "swap",
    "insert_copy",
    "insert_forged",
)
HEAD_MUTATIONS = (
    "head_root",
    "head_token",
    "head_document",
    "head_time",
    "head_consistency",
    "head_delete",
    "head_swap",
    "sth_signature",
    "sth_document",
    "sth_strip",
    "cosignature",
    "cosignature_copy",
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.sampled_from(ENTRY_MUTATIONS + HEAD_MUTATIONS), min_size=1, max_size=3), st.data()
)
def test_every_mutated_bundle_is_refused_and_the_untouched_one_accepted(
    log: SyntheticLog, pristine: Bundle, kinds: list[str], data: st.DataObject
) -> None:
    bundle = fresh(pristine)

    def draw(low: int, high: int) -> int:
        return data.draw(st.integers(low, max(low, high)))

    for kind in kinds:
        if kind in HEAD_MUTATIONS:
            _mutate_head(bundle, draw, kind)
        else:
            _mutate_entry(bundle, draw, kind)
    if bundle.entries == pristine.entries and bundle.heads == pristine.heads:
        return  # two mutations undid each other (a swap swapped back)
    with pytest.raises(AuditError):
        verify_bundle(bundle, log.anchor)


def test_entry_items_keep_the_leaf_fields(pristine: Bundle) -> None:
    # the leaf covers every field the mutations edit, except the row id (informational)
    covered = {f.name for f in dataclasses.fields(EntryItem)} - {"id"}
    assert (
        set(_ENTRY_TEXT)
        | {"header", "body", "leaf_hash", "leaf_index", "inclusion", "proof_size"}
        | {"subjects_sha256"}
        == covered
    )


# -- data-subject commitments ----------------------------------------------------------


def test_entries_carry_the_subjects_commitment_but_not_subjects_or_salt(
    log: SyntheticLog, bundle_file: Path, pristine: Bundle
) -> None:
    with sqlite3.connect(log.db) as conn:
        salts = dict(conn.execute("SELECT id, subjects_salt FROM message_log").fetchall())
    text = bundle_file.read_text("utf-8")
    assert SUBJECT not in text
    assert not any(salt in text for salt in salts.values())
    for entry in pristine.entries:
        named = [SUBJECT] if entry.kind == "response" else []
        salt = bytes.fromhex(salts[entry.id])
        assert entry.subjects_sha256 == subjects_commitment(salt, named)
    assert '"subjects_sha256":' in text.splitlines()[-1]


@pytest.mark.parametrize("change", ["other", "absent"])
def test_a_changed_subjects_commitment_is_refused(
    log: SyntheticLog, pristine: Bundle, change: str
) -> None:
    bundle = fresh(pristine)
    e = bundle.entries[3]
    assert e.subjects_sha256 is not None
    digest = None if change == "absent" else _other_text(e.subjects_sha256, 5)
    bundle.entries[3] = dataclasses.replace(e, subjects_sha256=digest)
    error = refused(bundle, log.anchor)
    assert error.reason is AuditFailure.LEAF_MISMATCH


def test_a_bundle_record_with_a_malformed_commitment_is_refused(bundle_file: Path) -> None:
    lines = bundle_file.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[-1])
    record["subjects_sha256"] = "XYZ"
    lines[-1] = json.dumps(record).encode() + b"\n"
    with pytest.raises(BundleFormatError, match="subjects_sha256"):
        read_bundle(lines)


def test_a_log_from_before_subject_commitments_exports_and_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries with version 1 leaves (no salt, no commitment) still verify."""
    from gateway.messagelog import leaves
    from gateway.messagelog import sqlite_commit as messagelog

    # The writer as it was: a version 1 leaf and no salt or commitment stored.
    v2_leaf = leaves.new_leaf
    monkeypatch.setattr(
        leaves,
        "new_leaf",
        lambda r, logged_at, digest, _subjects: v2_leaf(r, logged_at, digest, None),
    )
    monkeypatch.setattr(
        messagelog,
        "_INSERT_ENTRY",
        messagelog._INSERT_ENTRY.replace(
            "?, ?)", "(CASE WHEN ? IS NULL THEN 1 END), (CASE WHEN ? IS NULL THEN 1 END))"
        ),
    )
    old = build_log(tmp_path, 6, head_every=4)
    monkeypatch.undo()
    with sqlite3.connect(old.db) as conn:
        assert conn.execute(
            "SELECT count(*) FROM message_log WHERE subjects_salt IS NULL"
            " AND subjects_sha256 IS NULL"
        ).fetchone() == (6,)
    out = tmp_path / "old.jsonl"
    export_bundle(old.db, out, Selection(all=True), now=START + timedelta(days=1))
    assert b"subjects_sha256" not in out.read_bytes()
    with out.open("rb") as handle:
        bundle = read_bundle(handle)
    assert verify_bundle(bundle, old.anchor).entries == 6
    # Claiming a commitment for an old entry changes its leaf version: refused.
    bundle.entries[1] = dataclasses.replace(bundle.entries[1], subjects_sha256="0" * 64)
    assert refused(bundle, old.anchor).reason is AuditFailure.LEAF_MISMATCH


# -- the command line -------------------------------------------------------------------


def test_the_audit_commands(
    log: SyntheticLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import main

    ca, tsa = tmp_path / "ca.pem", tmp_path / "tsa.pem"
    ca.write_bytes(log.ca.public_bytes(Encoding.PEM))
    tsa.write_bytes(log.tsa_cert.public_bytes(Encoding.PEM))
    anchor = tmp_path / "anchor.json"
    main(["audit", "anchor", "--ca", str(ca), "--tsa-cert", str(tsa), "--out", str(anchor)])
    assert load_anchor(anchor).cas == (log.ca,)
    bundle = tmp_path / "range.jsonl"
    main(
        [
            "audit",
            "export",
            "--db",
            str(log.db),
            "--out",
            str(bundle),
            "--from",
            "2025-06-01T08:00:00Z",
            "--to",
            "2025-06-01T08:00:00.100Z",
        ]
    )
    assert "entries" in capsys.readouterr().out
    main(["audit", "verify", str(bundle), "--anchor", str(anchor), "--jobs", "1"])
    assert capsys.readouterr().out.startswith("OK ")
    lines = bundle.read_bytes().splitlines(keepends=True)
    lines[-1] = lines[-1].replace(b'"kind":"response"', b'"kind":"request"')
    lines[-1] = lines[-1].replace(b'"kind":"request"', b'"kind":"requesx"')
    bundle.write_bytes(b"".join(lines))
    with pytest.raises(SystemExit) as exit_status:
        main(["audit", "verify", str(bundle), "--anchor", str(anchor)])
    assert exit_status.value.code == 1
    assert f"FAIL entry {json.loads(lines[-1])['id']} " in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_status:
        main(
            [
                "audit",
                "export",
                "--db",
                str(log.db),
                "--out",
                str(bundle),
                "--all",
                "--message-id",
                "x",
            ]
        )
    assert exit_status.value.code == 2


def test_the_bench_command_measures(capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    main(["audit", "bench", "--entries", "40", "--jobs", "1"])
    out = capsys.readouterr().out
    assert "for 40 entries with 1 process(es)" in out
    assert "its 40 signatures alone" in out


def test_the_verifier_is_pure() -> None:
    """The format, proofs and verifier import no database, network, node or clock code."""
    import ast

    import gateway.audit

    forbidden = (
        "gateway.node",
        "gateway.store",
        "gateway.messagelog",
        "gateway.conf",
        "sqlite3",
        "sqlmodel",
        "sqlalchemy",
        "socket",
        "ssl",
        "asyncio",
        "aiohttp",
        "httpx",
    )
    root = Path(gateway.audit.__file__).parent
    checked = ("bundle.py", "proofs.py", "verify.py", "entries.py", "heads.py")
    for name in (*checked, "signatures.py", "verdict.py"):
        tree = ast.parse((root / name).read_text("utf-8"))
        for node in ast.walk(tree):
            modules = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for module in modules:
                assert not module.startswith(forbidden), f"{name} imports {module}"
            if isinstance(node, ast.Attribute) and node.attr in ("now", "utcnow", "time"):
                assert not (
                    isinstance(node.value, ast.Name) and node.value.id in ("datetime", "time")
                ), name
