"""A synthetic, real message log for measuring (and testing) the audit verifier.

``build_log`` writes N entries through the node's own ``MessageLog`` (real SQLite, real
Merkle tree), each a request or response header really signed ES256 by one of two
members whose certificates a fresh development CA issued, each with a real OCSP
response, and stores a tree head every ``head_every`` entries, stamped by an in-process
RFC 3161 TSA with a real TSA certificate. Nothing is mocked except the network.

``gateway audit bench --entries N`` builds such a log, exports it and times
``verify_bundle``; it is a measurement, not a test, so it is not part of ``make test``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.audit.anchor import anchor_json
from gateway.audit.export import Selection, export_bundle
from gateway.audit.parallel import default_jobs, verify_file
from gateway.audit.verify import AuditReport, AuditTrustAnchor
from gateway.core.adminrecord import AdminRecord
from gateway.core.atrest import DataKey
from gateway.core.encoding import format_time
from gateway.core.envelope import RequestHeader, ResponseHeader, body_sha256, request_hash
from gateway.core.ids import MemberId, ServiceId, parse_client
from gateway.core.jws import Signer
from gateway.core.logtree import tree_head_document
from gateway.core.roles import ApiRole, key_actor
from gateway.core.treehead import sign_sth, sth_document
from gateway.messagelog import (
    CosignatureRow,
    Kind,
    LogRecord,
    MessageLog,
    Role,
    SignedHeadRecord,
    StoredStatus,
    TreeHeadRecord,
)
from gateway.messagelog.tracker import details_of
from gateway.pki.ca import (
    create_root_ca,
    issue_certificate,
    issue_service_certificate,
    make_csr,
    make_service_csr,
)
from gateway.pki.keys import generate_key
from gateway.pki.ocsp import build_ocsp_response, cert_id_for
from gateway.pki.profiles import CertKind, ServiceKind
from gateway.pki.status import Good
from gateway.pki.tsa import build_timestamp_request, build_timestamp_response, message_imprint
from gateway.pki.tsa_verify import timestamp_token_of
from gateway.sandbox.bench.audit_signatures import (
    SignaturePass,
    cpu_seconds,
    signature_tasks,
    time_signatures,
)

__all__ = ["BenchResult", "SyntheticLog", "build_log", "run_bench"]

NODE = "DE-NRW/GOV/05974028/ss1"
WITNESS = "DE-NRW/GOV/05974040/ss1"
"""The consumer's node, which co-signs every tree head of the synthetic log."""
CLIENT = "DE-NRW/GOV/05974040/gewerbeamt"
SERVICE = "DE-NRW/GOV/05974028/melderegister/einfacheAuskunft"
START = datetime(2025, 6, 1, 8, 0, 0, tzinfo=UTC)
SUBJECT = "52693074139"
"""The IDNr every synthetic answer names, so responses carry a data-subject commitment."""


@dataclass(frozen=True)
class SyntheticLog:
    db: Path
    """The SQLite file, or the directory's would-be file when the log is in PostgreSQL."""
    anchor: AuditTrustAnchor
    anchor_path: Path
    ca: x509.Certificate
    tsa_cert: x509.Certificate
    tsa_key: ec.EllipticCurvePrivateKey
    entries: int
    owner: Signer | None = None
    """The node owner's (the provider's) signer, for tests that log more."""
    consumer: Signer | None = None
    """The consumer's signer: a member other than the node's owner."""
    database_url: str | None = None
    """The PostgreSQL database holding the log, if it is not the SQLite file."""

    @property
    def location(self) -> Path | str:
        """Where the log is, for ``open_store``: the database URL or the file."""
        return self.database_url or self.db


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _signer(
    member: MemberId, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate
) -> tuple[Signer, bytes]:
    key = generate_key()
    cert = issue_certificate(
        make_csr(key, CertKind.SIGN, member), CertKind.SIGN, ca_key, ca, START - timedelta(days=1)
    )
    ocsp = build_ocsp_response(
        cert_id_for(cert, ca), Good(), START - timedelta(minutes=1), None, ca, ca_key, ca
    )
    return Signer(member, key, [cert]), ocsp


def build_log(
    directory: Path,
    entries: int,
    *,
    head_every: int = 1000,
    body: bytes = b'{"familienname":"Schmidt","vornamen":"Anna"}',
    step: timedelta = timedelta(milliseconds=10),
    body_policy: Callable[[LogRecord], str] | None = None,
    user_id: str | None = None,
    issue: str | None = None,
    admin_every: int = 0,
    database_url: str | None = None,
    data_key: DataKey | None = None,
) -> SyntheticLog:
    """Write ``entries`` signed entries (request/response pairs) and stamped tree heads.

    ``user_id`` and ``issue`` go into every request header, as a clerk's reads carry them.
    ``admin_every`` > 0 adds an admin record (signed by the node's owner, the provider)
    after every that many entries, beyond ``entries``.
    With ``database_url`` the log is written to that PostgreSQL database (its schema made
    by ``gateway db upgrade``) instead of a SQLite file in ``directory``. With
    ``data_key`` the exchanges are sealed at rest, as a node with a data key writes them.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = generate_key()
    ca = create_root_ca("Audit Bench CA", ca_key, START - timedelta(days=2), days=7300)
    tsa_key = generate_key()
    tsa_cert = issue_service_certificate(
        make_service_csr(tsa_key, "Audit Bench TSA"),
        ServiceKind.TSA,
        ca_key,
        ca,
        START - timedelta(days=1),
        days=3650,
    )
    client = parse_client(CLIENT)
    service = ServiceId.parse(SERVICE)
    consumer, consumer_ocsp = _signer(client.member, ca_key, ca)
    provider, provider_ocsp = _signer(service.member, ca_key, ca)
    anchor_path = directory / "anchor.json"
    anchor_path.write_bytes(anchor_json([ca], [tsa_cert]))
    db = directory / "messagelog.sqlite"
    asyncio.run(
        _write(
            database_url or db,
            entries,
            head_every,
            body,
            step,
            consumer,
            consumer_ocsp,
            provider,
            provider_ocsp,
            tsa_cert,
            tsa_key,
            body_policy,
            user_id,
            issue,
            admin_every,
            data_key,
        )
    )
    return SyntheticLog(
        db,
        AuditTrustAnchor((ca,), (tsa_cert,)),
        anchor_path,
        ca,
        tsa_cert,
        tsa_key,
        entries,
        provider,
        consumer,
        database_url,
    )


def stamp(
    document: bytes,
    tsa_cert: x509.Certificate,
    tsa_key: ec.EllipticCurvePrivateKey,
    when: datetime,
    serial: int,
) -> bytes:
    """A DER TimeStampToken over ``document`` from the in-process TSA."""
    query = build_timestamp_request(message_imprint(document), nonce=serial)
    return timestamp_token_of(build_timestamp_response(query, tsa_cert, tsa_key, (), when, serial))


async def _write(
    db: Path | str,
    entries: int,
    head_every: int,
    body: bytes,
    step: timedelta,
    consumer: Signer,
    consumer_ocsp: bytes,
    provider: Signer,
    provider_ocsp: bytes,
    tsa_cert: x509.Certificate,
    tsa_key: ec.EllipticCurvePrivateKey,
    body_policy: Callable[[LogRecord], str] | None = None,
    user_id: str | None = None,
    issue: str | None = None,
    admin_every: int = 0,
    data_key: DataKey | None = None,
) -> None:
    clock = _Clock(START)
    client = parse_client(CLIENT)
    service = ServiceId.parse(SERVICE)
    consumer_ref = hashlib.sha256(consumer_ocsp).hexdigest()
    provider_ref = hashlib.sha256(provider_ocsp).hexdigest()
    certs = {
        consumer.cert_ref: (consumer.cert_der, consumer.jws_header),
        provider.cert_ref: (provider.cert_der, provider.jws_header),
    }
    ocsp = {consumer_ref: consumer_ocsp, provider_ref: provider_ocsp}
    async with MessageLog(db, clock=clock, body_policy=body_policy, data_key=data_key) as log:
        written = 0
        serial = 0
        admins = 0
        batch: list[LogRecord] = []
        if admin_every:  # the node's own OCSP answer, which its admin entries name
            status = StoredStatus(provider.cert_ref, provider_ocsp, START, "http://ocsp.bench")
            await log.keep_own_status(provider.cert_ref, status)
        while written < entries:
            created = format_time(clock.now)
            message_id = str(uuid.uuid4())
            signed_request = RequestHeader(
                message_id=message_id,
                xroad_id=f"DE-NRW-{message_id[:8]}",
                client=client,
                service=service,
                method="GET",
                path="",
                query="familienname=Schmidt",
                headers=(),
                user_id=user_id,
                issue=issue,
                created=created,
                body_sha256=body_sha256(b""),
                body_length=0,
            )
            request = signed_request.to_bytes()
            batch.append(
                LogRecord(
                    Role.PROVIDER,
                    Kind.REQUEST,
                    message_id,
                    f"DE-NRW-{message_id[:8]}",
                    CLIENT,
                    SERVICE,
                    created,
                    request,
                    b"",
                    consumer.sign(request),
                    consumer.cert_ref,
                    consumer_ref,
                )
            )
            written += 1
            if written < entries:
                response = ResponseHeader(
                    message_id=message_id,
                    xroad_id=f"DE-NRW-{message_id[:8]}",
                    client=client,
                    service=service,
                    request_hash=request_hash(request),
                    status=200,
                    headers=(),
                    created=created,
                    body_sha256=body_sha256(body),
                    body_length=len(body),
                ).to_bytes()
                batch.append(
                    LogRecord(
                        Role.PROVIDER,
                        Kind.RESPONSE,
                        message_id,
                        f"DE-NRW-{message_id[:8]}",
                        CLIENT,
                        SERVICE,
                        created,
                        response,
                        body,
                        provider.sign(response),
                        provider.cert_ref,
                        provider_ref,
                        subjects=(SUBJECT,),
                        read=details_of(signed_request, 200),
                    )
                )
                written += 1
            clock.now += step
            due = written // head_every > serial or written >= entries
            admin_due = admin_every > 0 and written // admin_every > admins
            if len(batch) >= 256 or due or admin_due:
                await log.append(batch, certs=certs, ocsp=ocsp)
                batch = []
            if admin_due:
                admins += 1
                await log.append_admin(_admin_change(clock.now, admins), provider, b"{}")
            if due:
                snapshot = log.tree_snapshot()
                serial += 1
                if snapshot.tree_size > log.backlog().stamped_size:
                    document = tree_head_document(NODE, snapshot.tree_size, snapshot.root_hash)
                    # Signed by the provider (the node's member) over the TSA's time, and
                    # co-signed by the consumer's node as a witness.
                    sth = sth_document(NODE, snapshot.tree_size, snapshot.root_hash, clock.now)
                    owner_signature = sign_sth(provider, sth)
                    await log.append_tree_head(
                        TreeHeadRecord(
                            snapshot.tree_size,
                            snapshot.root_hash,
                            snapshot.last_entry_id,
                            document,
                            clock.now,
                            stamp(document, tsa_cert, tsa_key, clock.now, serial),
                            "Audit Bench TSA",
                            tsa_cert.public_bytes(Encoding.DER),
                            SignedHeadRecord(
                                sth,
                                owner_signature,
                                provider.cert_ref,
                                provider.cert_der,
                                provider.jws_header,
                                provider_ref,
                                provider_ocsp,
                            ),
                        )
                    )
                    row = CosignatureRow(
                        NODE,
                        WITNESS,
                        snapshot.tree_size,
                        sth,
                        owner_signature,
                        sign_sth(consumer, sth),
                        consumer.cert_ref,
                        consumer_ref,
                        format_time(clock.now),
                    )
                    cert = (consumer.cert_ref, consumer.cert_der, consumer.jws_header)
                    await log.add_cosignature(row, cert, consumer_ocsp)


def _admin_change(at: datetime, serial: int) -> AdminRecord:
    """An access right granted (odd serials) or removed again (even ones)."""
    right = {"subjects": [CLIENT]}
    return AdminRecord(
        at=at,
        actor=key_actor(f"{serial:012x}", "bench"),
        role=ApiRole.SERVICE_ADMINISTRATOR.value,
        action="access.grant" if serial % 2 else "access.revoke",
        target=SERVICE,
        before=None if serial % 2 else right,
        after=right if serial % 2 else None,
    )


@dataclass(frozen=True)
class BenchResult:
    entries: int
    build_seconds: float
    export_seconds: float
    verify_seconds: float
    """Reading, parsing and verifying the bundle file."""
    jobs: int
    report: AuditReport
    verify_cpu_seconds: float
    """CPU of the verification: this process's and its worker processes'."""
    signatures: SignaturePass
    """The same bundle's signatures alone, on as many processes (the target's baseline)."""

    @property
    def per_second(self) -> float:
        return self.entries / self.verify_seconds

    @property
    def ratio(self) -> float:
        """The verifier's rate as a share of the signatures-alone rate (target >= 0.6)."""
        return self.per_second / self.signatures.per_second


def run_bench(
    directory: Path,
    entries: int,
    *,
    jobs: int | None = None,
    say: Callable[[str], None] = print,
) -> BenchResult:
    """Build a log of ``entries``, export it whole, time verifying the file, then time
    verifying its signatures alone with as many processes (the target's baseline)."""
    jobs = default_jobs() if jobs is None else jobs
    t0 = time.perf_counter()
    log = build_log(directory, entries)
    t1 = time.perf_counter()
    say(f"built a log of {entries} signed entries in {t1 - t0:.1f} s")
    out = directory / "bundle.jsonl"
    export_bundle(log.db, out, Selection(all=True), now=START + timedelta(days=1))
    t2 = time.perf_counter()
    say(f"exported {out.stat().st_size / 1e6:.1f} MB in {t2 - t1:.1f} s")
    cpu = cpu_seconds()
    t3 = time.perf_counter()
    report = verify_file(out, log.anchor, jobs=jobs)
    t4 = time.perf_counter()
    verify_cpu = cpu_seconds() - cpu
    signatures = time_signatures(signature_tasks(out), jobs)
    return BenchResult(entries, t1 - t0, t2 - t1, t4 - t3, jobs, report, verify_cpu, signatures)
