"""Signed tree heads, the auditor API and witnessing, with real TLS on loopback.

Soest and Lippstadt run in this process (so each step is driven explicitly: one
``stamp_once``, one ``witness_once``; nothing waits on a timer), against the real trust
services (``gateway trust serve``: OCSP and TSA) and signed global configuration. The
split-view test replaces Lippstadt by a fake on its address that holds Lippstadt's real
keys and serves forked tree heads.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from gateway.audit.anchor import load_anchor
from gateway.audit.export import Selection, export_bundle
from gateway.audit.parallel import verify_file
from gateway.audit.verify import AuditError, AuditFailure
from gateway.conf.directory import TrustParameters
from gateway.core.encoding import b64url, format_time
from gateway.core.errors import Code
from gateway.core.ids import NodeId
from gateway.core.jws import Signer
from gateway.core.logtree import encode_leaf
from gateway.core.merkle import consistency_proof, leaf_hash, tree_hash, verify_inclusion
from gateway.core.treehead import parse_sth, sign_sth, sth_document, verify_sth_signature
from gateway.keys.files import (
    load_certificate,
    load_certificates,
    load_private_key,
    new_key_and_csr,
)
from gateway.messagelog.proofs import (
    latest_signed_head,
    read_cosignatures,
    read_witness_alerts,
)
from gateway.node.config import NodeConfig, load_config
from gateway.node.server import Node
from gateway.node.tls import server_context
from gateway.pki.keys import fingerprint_sha256
from gateway.pki.ocsp import build_ocsp_request
from gateway.pki.profiles import CertKind
from gateway.sandbox.localnet import LocalNet, ServiceSpec
from gateway.trust.ca_store import issue_from_csr
from tests.integration.conftest import (
    GEWERBEAMT,
    LIPPSTADT,
    ORDNUNGSAMT,
    SERVICE,
    SOEST,
    RecordingRegistry,
)

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "admin-token-0123456789abcdef"
AUDITOR = NodeId.parse("DE-NRW/GOV/05974028/auditor")


@pytest.fixture(scope="module")
def wnet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    root: Path = tmp_path_factory.mktemp("wnet")
    net = LocalNet.create(root, [SOEST, LIPPSTADT], datetime.now(UTC))
    net.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    net.write_configs(parameters=TrustParameters(timestamping_interval_seconds=3600))
    # An auditor's TLS client certificate from the instance CA, pinned in [audit].
    auditor_dir = root / "auditor"
    auditor_dir.mkdir()
    new_key_and_csr(CertKind.AUTH, AUDITOR, auditor_dir / "auth.key", auditor_dir / "auth.csr")
    cert = issue_from_csr(
        net.ca_cert.parent,
        auditor_dir / "auth.csr",
        CertKind.AUTH,
        auditor_dir / "auth.pem",
        datetime.now(UTC).replace(microsecond=0),
    )
    for files in net.nodes.values():
        (files.directory / "admin.token").write_text(ADMIN_TOKEN + "\n", "utf-8")
        with files.config.open("a", encoding="utf-8") as out:
            out.write(
                "\n[audit]\n"
                f'auditor_cert_sha256 = ["{fingerprint_sha256(cert)}"]\n'
                'admin_token_file = "admin.token"\n'
                "witness_interval_seconds = 0\n"
            )
    net.start_trust()
    try:
        yield net
    finally:
        net.stop()


def _config(net: LocalNet, ags: str, **node_changes: Any) -> NodeConfig:
    config = load_config(net.nodes[ags].config)
    if not node_changes:
        return config
    return config.model_copy(update={"node": config.node.model_copy(update=node_changes)})


def _tls(net: LocalNet, cert: Path, key: Path, passphrase: bytes | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(net.ca_cert))
    ctx.load_cert_chain(cert, key, password=passphrase)
    return ctx


def _edge(net: LocalNet, subsystem: str | None) -> ssl.SSLContext:
    """Soest's consumer TLS port as ``subsystem``'s information system (its registered
    certificate), or with no client certificate."""
    files = net.nodes[SOEST.ags]
    ctx = ssl.create_default_context(cafile=str(files.internal_cert))
    if subsystem is not None:
        ctx.load_cert_chain(files.client_cert(subsystem), files.client_key(subsystem))
    return ctx


def _auditor_tls(net: LocalNet) -> ssl.SSLContext:
    d = net.root / "auditor"
    return _tls(net, d / "auth.pem", d / "auth.key")


async def _exchange(soest: Node) -> None:
    assert soest.endpoints is not None
    async with httpx.AsyncClient(timeout=30) as client:
        reply = await client.get(
            f"{soest.endpoints.consumer_url}/r1/{SERVICE}",
            params={"familienname": "Schmidt"},
            headers={"X-Road-Client": str(GEWERBEAMT)},
        )
    assert reply.status_code == 200, reply.text


def _refused(reply: httpx.Response, code: Code) -> None:
    assert reply.headers.get("X-Road-Error") == code.value, reply.text
    assert reply.json()["type"] == code.value


async def _signed_heads_witnessing_and_auditor_api(net: LocalNet) -> None:
    lipp, soest = Node(_config(net, LIPPSTADT.ags)), Node(_config(net, SOEST.ags))
    await lipp.start()
    await soest.start()
    try:
        lipp_db, soest_db = lipp.log.path, soest.log.path
        await _exchange(soest)
        assert await lipp.timestamper.stamp_once() and await soest.timestamper.stamp_once()

        # 1. Every timestamped head is signed with the member key, over the TSA's time.
        # Leaf 0 of each log is the settings' bootstrap record, then the exchanges.
        head = latest_signed_head(lipp_db)
        assert head is not None and head.tree_size == 3
        parsed, verified = verify_sth_signature(
            lipp.verifier,
            head.document,
            head.signature,
            lipp.clock.now(),
            signer=LIPPSTADT.member,
        )
        assert parsed.node == str(LIPPSTADT.node) and verified.cert_ref == head.cert_ref
        assert head.ocsp_ref, "the signer's OCSP response is kept with the head"

        # 2. Witnessing: each co-signs the other's head; the owner collects them.
        first = await soest.witness.witness_once()
        assert [(o.peer, o.tree_size, o.code) for o in first] == [(str(LIPPSTADT.node), 3, None)]
        await _exchange(soest)
        assert await lipp.timestamper.stamp_once()
        second = await soest.witness.witness_once()  # 3 -> 5, with a consistency proof
        assert [(o.tree_size, o.code) for o in second] == [(5, None)]
        await lipp.witness.witness_once()
        made = read_cosignatures(soest_db, log_node=str(LIPPSTADT.node))
        assert [r.tree_size for r in made] == [3, 5]
        collected = read_cosignatures(lipp_db, log_node=str(LIPPSTADT.node))
        assert [(r.witness, r.tree_size) for r in collected] == [
            (str(SOEST.node), 3),
            (str(SOEST.node), 5),
        ]
        for row in collected:
            verify_sth_signature(
                lipp.verifier, row.document, row.cosignature, lipp.clock.now(), signer=SOEST.member
            )
        for row in [*made, *collected]:  # stored in the log's one time format
            assert row.stored_at == format_time(datetime.fromisoformat(row.stored_at))
        assert read_witness_alerts(soest_db) == []
        _bundle_carries_and_checks_signed_heads(net, lipp_db)

        # 3. Auditor API on the peer port, over mutual TLS.
        assert lipp.endpoints is not None and soest.endpoints is not None
        peer_url = lipp.endpoints.peer_url
        async with httpx.AsyncClient(verify=_auditor_tls(net), timeout=30) as auditor:
            entries = (await auditor.get(f"{peer_url}/gw/v1/log/entries")).json()["entries"]
            assert [e["leaf_index"] for e in entries] == [0, 1, 2, 3, 4]
            proof = (
                await auditor.get(
                    f"{peer_url}/gw/v1/log/inclusion", params={"leaf": 2, "tree_size": 5}
                )
            ).json()
            sth = parse_sth(
                base64.b64decode(
                    (await auditor.get(f"{peer_url}/gw/v1/log/sth")).json()["document"]
                )
            )
            verify_inclusion(
                bytes.fromhex(proof["leaf_hash"]),
                2,
                5,
                [bytes.fromhex(p) for p in proof["path"]],
                sth.root_hash,
            )
            # The entries answer carries every leaf field, the subjects commitment too.
            e = entries[2]  # the first exchange's response
            assert e["subjects_sha256"] is not None
            leaf = encode_leaf(
                role=e["role"],
                kind=e["kind"],
                message_id=e["message_id"],
                xroad_id=e["xroad_id"],
                client=e["client"],
                service=e["service"],
                created=e["created"],
                logged_at=e["logged_at"],
                header_sha256=hashlib.sha256(base64.b64decode(e["header"])).hexdigest(),
                body_sha256=e["body_sha256"],
                signature_sha256=hashlib.sha256(e["signature"].encode()).hexdigest(),
                cert_ref=e["cert_ref"],
                ocsp_ref=e["ocsp_ref"],
                subjects_sha256=e["subjects_sha256"],
            )
            assert leaf_hash(leaf).hex() == proof["leaf_hash"] == e["leaf_hash"]
            missing = await auditor.get(
                f"{peer_url}/gw/v1/log/inclusion", params={"leaf": 1, "tree_size": 99}
            )
            _refused(missing, Code.AUDIT_NOT_FOUND)
        soest_files = net.nodes[SOEST.ags]
        async with httpx.AsyncClient(
            verify=_tls(
                net,
                soest_files.auth_cert,
                soest_files.directory / "auth.key",
                soest_files.passphrase,
            ),
            timeout=30,
        ) as peer:
            assert (await peer.get(f"{peer_url}/gw/v1/log/sth")).status_code == 200
            _refused(await peer.get(f"{peer_url}/gw/v1/log/entries"), Code.AUDIT_ACCESS_DENIED)

        # 4. The consumer port: the admin token reads all, a client its own exchanges
        # when it presents its registered certificate on the TLS port; the header alone
        # reads nothing.
        assert soest.endpoints.consumer_tls_url is not None
        consumer = soest.endpoints.consumer_tls_url + "/audit/v1"
        bare = soest.endpoints.consumer_url + "/audit/v1"
        async with httpx.AsyncClient(timeout=30) as plain:
            _refused(
                await plain.get(f"{bare}/entries", headers={"X-Road-Client": str(GEWERBEAMT)}),
                Code.AUDIT_ACCESS_DENIED,
            )
        async with (
            httpx.AsyncClient(timeout=30, verify=_edge(net, "gewerbeamt")) as local,
            httpx.AsyncClient(timeout=30, verify=_edge(net, "ordnungsamt")) as ordnungsamt,
            httpx.AsyncClient(timeout=30, verify=_edge(net, None)) as anonymous,
        ):
            _refused(
                await anonymous.get(
                    f"{consumer}/entries", headers={"X-Road-Client": str(GEWERBEAMT)}
                ),
                Code.AUDIT_ACCESS_DENIED,
            )
            _refused(
                await ordnungsamt.get(
                    f"{consumer}/entries", headers={"X-Road-Client": str(GEWERBEAMT)}
                ),
                Code.AUDIT_ACCESS_DENIED,
            )
            admin = await local.get(
                f"{consumer}/entries", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
            )
            assert len(admin.json()["entries"]) == 5  # the bootstrap record, 2 exchanges
            message_id = admin.json()["entries"][1]["message_id"]
            own = await local.get(f"{consumer}/entries", headers={"X-Road-Client": str(GEWERBEAMT)})
            assert {e["client"] for e in own.json()["entries"]} == {str(GEWERBEAMT)}
            assert len(own.json()["entries"]) == 4
            mine = await local.get(
                f"{consumer}/inclusion",
                params={"leaf": 1, "tree_size": 5},
                headers={"X-Road-Client": str(GEWERBEAMT)},
            )
            assert mine.status_code == 200, mine.text
            assert mine.json()["leaf_hash"] == own.json()["entries"][0]["leaf_hash"]
            other = await ordnungsamt.get(
                f"{consumer}/entries", headers={"X-Road-Client": str(ORDNUNGSAMT)}
            )
            assert other.json()["entries"] == []
            _refused(
                await ordnungsamt.get(
                    f"{consumer}/entries",
                    params={"message_id": message_id},
                    headers={"X-Road-Client": str(ORDNUNGSAMT)},
                ),
                Code.AUDIT_NOT_FOUND,
            )
            _refused(
                await ordnungsamt.get(
                    f"{consumer}/inclusion",
                    params={"leaf": 1, "tree_size": 5},
                    headers={"X-Road-Client": str(ORDNUNGSAMT)},
                ),
                Code.AUDIT_ACCESS_DENIED,
            )
            _refused(
                await local.get(
                    f"{consumer}/consistency",
                    params={"first": 2, "second": 4},
                    headers={"X-Road-Client": str(GEWERBEAMT)},
                ),
                Code.AUDIT_ACCESS_DENIED,
            )
            _refused(
                await local.get(
                    f"{consumer}/entries",
                    headers={"X-Road-Client": str(LIPPSTADT.subsystem("melderegister"))},
                ),
                Code.AUDIT_ACCESS_DENIED,
            )
            _refused(
                await local.get(f"{consumer}/entries", headers={"Authorization": "Bearer wrong"}),
                Code.AUDIT_ACCESS_DENIED,
            )
            _refused(await local.get(f"{consumer}/entries"), Code.AUDIT_ACCESS_DENIED)
    finally:
        await soest.stop()
        await lipp.stop()


def _bundle_carries_and_checks_signed_heads(net: LocalNet, db: Path) -> None:
    """The audit bundle of Lippstadt's log carries both signed heads and Soest's
    co-signatures; the offline verifier checks them and names a forged one."""
    out = net.root / "lippstadt-audit"
    out.mkdir(exist_ok=True)
    bundle = out / "bundle.jsonl"
    export_bundle(
        db, bundle, Selection(all=True), now=datetime.now(UTC), globalconf=db.parent / "globalconf"
    )
    anchor_file = out / "anchor.pem"
    anchor_file.write_bytes(net.ca_cert.read_bytes() + net.trust.tsa_cert.read_bytes())
    anchor = load_anchor(anchor_file)
    report = verify_file(bundle, anchor)
    assert (report.signed_heads, report.cosignatures) == (2, 2)
    assert report.configuration is not None and report.configuration.instance == "DE-NRW"
    assert report.configuration.serial >= 1
    lines = bundle.read_bytes().splitlines(keepends=True)
    heads = [i for i, line in enumerate(lines) if b'"type":"tree_head"' in line]

    def refused(mutate: Any) -> AuditError:
        record = json.loads(lines[heads[-1]])
        mutate(record)
        changed = [*lines]
        changed[heads[-1]] = (
            json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        )
        bundle.write_bytes(b"".join(changed))
        with pytest.raises(AuditError) as caught:
            verify_file(bundle, anchor)
        return caught.value

    def owner_cosigns(record: dict[str, Any]) -> None:
        record["cosignatures"][0]["cosignature"] = record["signed"]["signature"]

    def swap_signature(record: dict[str, Any]) -> None:
        first = json.loads(lines[heads[0]])
        record["signed"]["signature"] = first["signed"]["signature"]

    assert refused(owner_cosigns).reason is AuditFailure.COSIGNATURE
    assert refused(swap_signature).reason is AuditFailure.HEAD_SIGNATURE

    def unsigned(record: dict[str, Any]) -> None:
        del record["signed"], record["cosignatures"]

    assert refused(unsigned).reason is AuditFailure.MANIFEST_MISMATCH

    # One changed byte of the configuration document: its TUF target hash no longer fits.
    lines = [*lines]  # the untouched bundle's lines
    conf = next(i for i, line in enumerate(lines) if b'"name":"globalconf.json"' in line)
    record = json.loads(lines[conf])
    data = bytearray(base64.b64decode(record["data"]))
    data[data.index(b'"serial"') + 10] ^= 1
    record["data"] = base64.b64encode(bytes(data)).decode()
    lines[conf] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    bundle.write_bytes(b"".join(lines))
    with pytest.raises(AuditError) as caught:
        verify_file(bundle, anchor)
    assert caught.value.reason is AuditFailure.CONFIGURATION


def test_signed_tree_heads_are_witnessed_and_served_to_auditors(wnet: LocalNet) -> None:
    asyncio.run(_signed_heads_witnessing_and_auditor_api(wnet))


class FakeLippstadt:
    """Lippstadt's address, keys and certificates, serving whatever history it is told."""

    def __init__(self, net: LocalNet) -> None:
        files = net.nodes[LIPPSTADT.ags]
        self.net = net
        self.signer = Signer(
            LIPPSTADT.member,
            load_private_key(files.directory / "sign.key", files.passphrase),
            load_certificates(files.sign_cert),
        )
        self.leaves: list[bytes] = []
        self.runner: web.AppRunner | None = None
        self.ocsp: str | None = _ocsp_status(net, files.sign_cert)
        """What the head carries as its signer's OCSP status (base64url DER, or none)."""

    def show(self, leaves: list[bytes]) -> None:
        self.leaves = leaves

    async def sth(self, request: web.Request) -> web.Response:
        document = sth_document(
            str(LIPPSTADT.node), len(self.leaves), tree_hash(self.leaves), datetime.now(UTC)
        )
        return web.json_response(
            {
                "tree_size": len(self.leaves),
                "document": base64.b64encode(document).decode(),
                "signature": sign_sth(self.signer, document),
                "ocsp": self.ocsp,
            }
        )

    async def consistency(self, request: web.Request) -> web.Response:
        first, second = int(request.query["first"]), int(request.query["second"])
        proof = consistency_proof(first, second, self.leaves[:second])
        return web.json_response(
            {"first": first, "second": second, "proof": [p.hex() for p in proof]}
        )

    async def cosignatures(self, request: web.Request) -> web.Response:
        return web.json_response({"cosignatures": []})

    async def start(self) -> None:
        files = self.net.nodes[LIPPSTADT.ags]
        app = web.Application()
        app.router.add_get("/gw/v1/log/sth", self.sth)
        app.router.add_get("/gw/v1/log/consistency", self.consistency)
        app.router.add_get("/gw/v1/witness/cosignatures", self.cosignatures)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        ctx = server_context(
            files.auth_cert,
            files.directory / "auth.key",
            [load_certificate(self.net.ca_cert)],
            files.passphrase,
        )
        await web.TCPSite(self.runner, "127.0.0.1", files.peer_port, ssl_context=ctx).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def _ocsp_status(net: LocalNet, cert_path: Path) -> str:
    """The CA responder's current answer for ``cert_path``, as a node sends it."""
    cert, ca = load_certificate(cert_path), load_certificate(net.ca_cert)
    reply = httpx.post(
        net.trust.ocsp_url,
        content=build_ocsp_request(cert, ca),
        headers={"Content-Type": "application/ocsp-request"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return b64url(reply.content)


def _history(n: int, fork: int | None = None) -> list[bytes]:
    return [leaf_hash(f"{i}{'*' if i == fork else ''}".encode()) for i in range(n)]


async def _split_view(net: LocalNet, tmp: Path) -> None:
    fake = FakeLippstadt(net)
    await fake.start()
    soest = Node(
        _config(
            net,
            SOEST.ags,
            messagelog=tmp / "soest.sqlite",
            consumer_listen="127.0.0.1:0",
            consumer_tls_listen="127.0.0.1:0",
            peer_listen="127.0.0.1:0",
            metrics_listen="127.0.0.1:0",
        )
    )
    await soest.start()
    try:
        fake.show(_history(2))
        fake_outcome = await soest.witness.witness_once()
        assert [(o.tree_size, o.code) for o in fake_outcome] == [(2, None)]
        fake.show(_history(4))  # honest growth: co-signed
        assert [(o.tree_size, o.code) for o in await soest.witness.witness_once()] == [(4, None)]
        fake.show(_history(6, fork=1))  # another history under a larger tree
        outcome = await soest.witness.witness_once()
        assert [(o.tree_size, o.code) for o in outcome] == [(None, Code.WITNESS_SPLIT_VIEW)]
        fake.show(_history(4, fork=0))  # same size, another root
        outcome = await soest.witness.witness_once()
        assert [o.code for o in outcome] == [Code.WITNESS_SPLIT_VIEW]
        fake.show(_history(3))  # the log went back
        assert [o.code for o in await soest.witness.witness_once()] == [Code.WITNESS_SPLIT_VIEW]

        db = soest.log.path
        assert [r.tree_size for r in read_cosignatures(db)] == [2, 4], "forks are not co-signed"
        alerts = read_witness_alerts(db)
        assert [a.code for a in alerts] == [Code.WITNESS_SPLIT_VIEW.value] * 3
        assert all(
            a.detected_at == format_time(datetime.fromisoformat(a.detected_at)) for a in alerts
        )
        evidence = json.loads(alerts[0].evidence)
        earlier = evidence["earlier"]["document"].encode()
        later = evidence["later"]["document"].encode()
        # The evidence convicts the peer on its own: both heads carry its signature.
        for document, signature in (
            (earlier, evidence["earlier"]["signature"]),
            (later, evidence["later"]["signature"]),
        ):
            verify_sth_signature(
                soest.verifier, document, signature, soest.clock.now(), signer=LIPPSTADT.member
            )
        assert parse_sth(earlier).tree_size == 4 and parse_sth(later).tree_size == 6
        assert soest.endpoints is not None
        async with httpx.AsyncClient(timeout=30) as local:
            seen = await local.get(
                f"{soest.endpoints.consumer_url}/audit/v1/witness",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            assert [a["code"] for a in seen.json()["alerts"]] == [Code.WITNESS_SPLIT_VIEW.value] * 3
            assert seen.json()["last_round"][0]["code"] == Code.WITNESS_SPLIT_VIEW.value
            _refused(
                await local.get(
                    f"{soest.endpoints.consumer_url}/audit/v1/witness",
                    headers={"X-Road-Client": str(GEWERBEAMT)},
                ),
                Code.AUDIT_ACCESS_DENIED,
            )
        shown = subprocess.run(
            [sys.executable, "-m", "gateway", "log", "witness", "--db", str(db)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert shown.returncode == 1, shown.stderr
        assert shown.stdout.count(f"{LIPPSTADT.node}: {Code.WITNESS_SPLIT_VIEW.value}") == 3
        assert f"cosigned {LIPPSTADT.node} size 4 by {SOEST.node}" in shown.stdout

        # A head whose signer shows no valid OCSP status is not co-signed, whatever its
        # history: none at all, or the status of another certificate.
        fake.show(_history(8))
        for status in (None, _ocsp_status(net, net.nodes[SOEST.ags].sign_cert)):
            fake.ocsp = status
            outcome = await soest.witness.witness_once()
            assert [(o.tree_size, o.code) for o in outcome] == [(None, Code.WITNESS_PEER_FAILED)]
            assert "OCSP" in outcome[0].detail
        assert [r.tree_size for r in read_cosignatures(db)] == [2, 4]
    finally:
        await soest.stop()
        await fake.stop()


def test_a_peer_showing_two_histories_is_caught_and_not_cosigned(
    wnet: LocalNet, tmp_path: Path
) -> None:
    asyncio.run(_split_view(wnet, tmp_path))
