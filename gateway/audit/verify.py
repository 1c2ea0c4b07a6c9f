"""Offline verification of an audit bundle against a trust anchor.

Pure: the bundle, the anchor (trusted CA and TSA certificates, the OCSP freshness
window) and a signature checker go in; an :class:`AuditReport` comes out, or an
:class:`AuditError` naming the first bad piece with a stable :class:`AuditFailure`.
No database, network or clock: every time check uses a time the bundle itself carries
(an entry's signed ``created``, a token's genTime), so a verdict never depends on when
or where it is computed.

Speed: everything that depends only on a certificate, a chain or an OCSP response is
checked once per distinct value and only its time window is re-checked per entry; an
inclusion proof stops hashing at the first node an earlier proof into the same tree
head already authenticated (then compares the rest of the path byte for byte); the
ES256 verifications, the dominant cost, are collected and checked in batches by a
pluggable checker. Entries can be verified in chunks in other processes with the same
verdict (:func:`prepare`, :func:`verify_chunk`, :func:`finish`, driven by
``gateway.audit.parallel``). Checks run in bundle order and stop at the first failure;
a deferred signature failure at or before the scan's first failure wins.

This module checks the manifest, the references and the entries; the tree heads are
checked in ``heads.py``, the batched signatures in ``signatures.py``, and the verdict's
types live in ``verdict.py`` (re-exported here, the verifier's public interface). A
signed header's JWS chain is parsed by ``gateway.core.jws.parse_jws_chain`` and an
inclusion proof checked by ``gateway.core.merkle.InclusionChecker``, as on the node.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.audit.bundle import Bundle, EntryItem, HeadItem
from gateway.audit.configuration import (
    ConfigSnapshot,
    InForce,
    InForceRun,
    SnapshotError,
    in_force_runs,
    merge_runs,
    verify_snapshot,
    verify_versions,
)
from gateway.audit.entries import EntryVerifier, check_entries
from gateway.audit.signatures import (
    SerialChecker,
    SignatureChecker,
    SignatureTask,
    check_signatures_serial,
)
from gateway.audit.verdict import AuditError, AuditFailure, AuditReport, AuditTrustAnchor
from gateway.core.encoding import format_time

__all__ = [
    "AuditError",
    "AuditFailure",
    "AuditReport",
    "AuditTrustAnchor",
    "ChunkOutcome",
    "EntryContext",
    "SignatureTask",
    "check_signatures_serial",
    "finish",
    "prepare",
    "verify_bundle",
    "verify_chunk",
]

_ECDSA_SHA256: Final = ec.ECDSA(hashes.SHA256())


def prepare(bundle: Bundle, anchor: AuditTrustAnchor) -> EntryContext:
    """Check everything but the entries: the manifest's counts, references, tree heads.

    Returns what verifying entries needs, picklable, so that chunks of entries can be
    verified in other processes (``gateway.audit.parallel``).
    """
    verifier = EntryVerifier(bundle, anchor, SerialChecker())
    verifier.manifest()
    verifier.references()
    versions = check_versions(bundle)
    snapshot = versions[-1].snapshot if versions else check_configuration(bundle)
    verifier.tree_heads()
    return EntryContext(
        bundle=Bundle(bundle.manifest, heads=list(bundle.heads)),
        ca_ders=tuple(c.public_bytes(Encoding.DER) for c in anchor.cas),
        tsa_ders=tuple(c.public_bytes(Encoding.DER) for c in anchor.tsas),
        ocsp_freshness=anchor.ocsp_freshness,
        ocsp=dict(verifier.ocsp),
        heads=[verifier.heads[size] for size in verifier.head_sizes],
        configuration=snapshot,
        versions=versions,
    )


def check_versions(bundle: Bundle) -> tuple[InForce, ...]:
    """The bundle's configuration versions, as the manifest lists them, verified offline
    one by one and as a sequence (``gateway.audit.configuration.verify_versions``).
    None for a bundle from before configuration history (see ``check_configuration``)."""
    claimed = bundle.manifest.configurations
    if not claimed:
        return ()
    if bundle.manifest.configuration:
        raise AuditError(
            AuditFailure.MANIFEST_MISMATCH,
            "configuration",
            "the manifest lists both a single snapshot and configuration versions",
        )
    listed = [(position, name) for position, v in enumerate(claimed) for name in v.files]
    carried = [(c.version, c.name) for c in bundle.configuration]
    if carried != listed:
        raise AuditError(
            AuditFailure.MANIFEST_MISMATCH,
            "configuration",
            f"the manifest lists {listed}, the bundle {carried}",
        )
    versions: list[tuple[int, str, dict[str, bytes]]] = []
    for position, v in enumerate(claimed):
        files = {c.name: c.data for c in bundle.configuration if c.version == position}
        if len(files) != len(v.files):
            raise AuditError(
                AuditFailure.CONFIGURATION,
                f"configuration version {position}",
                "a file is listed twice",
            )
        versions.append((v.serial, v.applied_at, files))
    try:
        return verify_versions(versions)
    except SnapshotError as exc:
        raise AuditError(AuditFailure.CONFIGURATION, "configuration", str(exc)) from None


def check_configuration(bundle: Bundle) -> ConfigSnapshot | None:
    """The bundle's configuration snapshot, as the manifest lists it, verified offline."""
    names = tuple(c.name for c in bundle.configuration)
    if names != bundle.manifest.configuration:
        raise AuditError(
            AuditFailure.MANIFEST_MISMATCH,
            "configuration",
            f"the manifest lists {list(bundle.manifest.configuration)}, the bundle {list(names)}",
        )
    if any(c.version is not None for c in bundle.configuration):
        raise AuditError(
            AuditFailure.MANIFEST_MISMATCH,
            "configuration",
            "a configuration record names a version the manifest does not list",
        )
    if not names:
        return None
    files = {c.name: c.data for c in bundle.configuration}
    if len(files) != len(names):
        raise AuditError(AuditFailure.CONFIGURATION, "configuration", "a file is listed twice")
    try:
        return verify_snapshot(files)
    except SnapshotError as exc:
        raise AuditError(AuditFailure.CONFIGURATION, "configuration", str(exc)) from None


_CANONICAL_TIME: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@dataclass(frozen=True)
class EntryContext:
    """The verified state entries are checked against (see :func:`prepare`)."""

    bundle: Bundle
    """The manifest and tree heads only."""
    ca_ders: tuple[bytes, ...]
    tsa_ders: tuple[bytes, ...]
    ocsp_freshness: timedelta
    ocsp: dict[str, bytes]
    heads: list[tuple[HeadItem, datetime]]
    configuration: ConfigSnapshot | None = None
    versions: tuple[InForce, ...] = ()

    def in_force(self, entries: Sequence[EntryItem]) -> list[InForceRun]:
        """Which carried version each of ``entries`` was logged under (none carried:
        no runs). Per entry one bisect over the few versions' applied-times, on the
        canonical text (a ``logged_at`` in another spelling is parsed first)."""
        if not self.versions:
            return []
        applied = [format_time(v.applied_at) for v in self.versions]
        canonical = _CANONICAL_TIME.fullmatch
        return in_force_runs(
            applied,
            (
                (
                    e.id,
                    e.logged_at
                    if canonical(e.logged_at)
                    else format_time(datetime.fromisoformat(e.logged_at)),
                )
                for e in entries
            ),
        )

    def verifier(self) -> EntryVerifier:
        anchor = AuditTrustAnchor(
            tuple(x509.load_der_x509_certificate(d) for d in self.ca_ders),
            tuple(x509.load_der_x509_certificate(d) for d in self.tsa_ders),
            self.ocsp_freshness,
        )
        verifier = EntryVerifier(self.bundle, anchor, SerialChecker())
        verifier.ocsp = dict(self.ocsp)
        for head, gen_time in self.heads:
            verifier.heads[head.tree_size] = (head, gen_time)
            verifier.head_sizes.append(head.tree_size)
        return verifier


@dataclass(frozen=True)
class ChunkOutcome:
    """What a chunk of entries verified to: picklable, errors as plain values."""

    keys: list[tuple[int, int]]
    signatures: int
    error: tuple[str, str, str] | None
    """(reason, piece, detail) of the chunk's first failure."""
    in_force: list[InForceRun] = field(default_factory=list)
    """The chunk's runs of entries under one configuration version."""
    admin_records: int = 0
    """How many of the chunk's entries are admin records."""


def verify_chunk(
    context: EntryContext, verifier: EntryVerifier | None, start: int, entries: Sequence[EntryItem]
) -> ChunkOutcome:
    """Verify one chunk of entries against ``context`` (in this or a worker process)."""
    verifier = verifier or context.verifier()
    before, admin_before = verifier.signatures, verifier.admin_records
    verifier.checker = SerialChecker()
    error = check_entries(verifier, start, entries)
    return ChunkOutcome(
        [(e.leaf_index, e.id) for e in entries],
        verifier.signatures - before,
        None if error is None else (error.reason.value, error.piece, error.detail),
        [] if error is not None else context.in_force(entries),
        verifier.admin_records - admin_before,
    )


def finish(
    context: EntryContext, outcomes: Sequence[ChunkOutcome], anchor: AuditTrustAnchor
) -> AuditReport:
    """Combine chunk outcomes in bundle order: the listing first, then the first failure."""
    verifier = EntryVerifier(context.bundle, anchor, SerialChecker())
    for head, gen_time in context.heads:
        verifier.heads[head.tree_size] = (head, gen_time)
        verifier.head_sizes.append(head.tree_size)
    keys = [key for outcome in outcomes for key in outcome.keys]
    verifier.listing(keys)
    for outcome in outcomes:
        if outcome.error is not None:
            reason, piece, detail = outcome.error
            raise AuditError(AuditFailure(reason), piece, detail)
    m = context.bundle.manifest
    times = [gen_time for _, gen_time in context.heads]
    return AuditReport(
        node=m.node,
        entries=len(keys),
        tree_heads=len(context.heads),
        signatures=sum(o.signatures for o in outcomes),
        certificates=m.certificates,
        ocsp_responses=m.ocsp_responses,
        first_gen_time=times[0] if times else None,
        last_gen_time=times[-1] if times else None,
        first_leaf=keys[0][0] if keys else None,
        last_leaf=keys[-1][0] if keys else None,
        signed_heads=len(m.signed_heads),
        cosignatures=m.cosignatures,
        configuration=context.configuration,
        configurations=context.versions,
        in_force=tuple(merge_runs(run for o in outcomes for run in o.in_force)),
        admin_records=sum(o.admin_records for o in outcomes),
    )


def verify_bundle(
    bundle: Bundle,
    anchor: AuditTrustAnchor,
    *,
    checker: SignatureChecker | None = None,
) -> AuditReport:
    """Check every piece of ``bundle`` against ``anchor``; raise at the first bad one.

    Order: the manifest's counts, certificate and OCSP references, tree heads (document,
    token, order, consistency), the entries' listing against the manifest, then each
    entry (covering head, body, leaf, inclusion, logged_at before genTime, signed header,
    signer chain at ``created``, signature, OCSP at ``created``). Signature checks may
    finish later than the scan; a failing one is reported if it lies at or before the
    scan's first failure.
    """
    context = prepare(bundle, anchor)
    verifier = context.verifier()
    verifier.listing([(e.leaf_index, e.id) for e in bundle.entries])
    verifier.checker = checker or SerialChecker()
    error = check_entries(verifier, 0, bundle.entries)
    if error is not None:
        raise error
    outcome = ChunkOutcome(
        [(e.leaf_index, e.id) for e in bundle.entries],
        verifier.signatures,
        None,
        context.in_force(bundle.entries),
        verifier.admin_records,
    )
    return finish(context, [outcome], anchor)


def describe_in_force(report: AuditReport) -> str:
    """One line for people: which configuration serial each run of entries was logged
    under, e.g. ``entries 1-40 under serial 12, 41-97 under serial 14``."""
    if not report.in_force:
        return "no entries"
    parts = []
    for position, run in enumerate(report.in_force):
        ids = f"{run.first_id}-{run.last_id}" if run.first_id != run.last_id else f"{run.first_id}"
        under = (
            "before the first configuration carried"
            if run.version is None
            else f"under serial {report.configurations[run.version].snapshot.serial}"
        )
        parts.append(f"{'entries ' if position == 0 else ''}{ids} {under}")
    return ", ".join(parts)
