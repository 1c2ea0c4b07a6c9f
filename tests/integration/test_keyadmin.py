"""The node's keys and certificates, managed while it runs.

Lippstadt's node runs as a process, the trust services (OCSP, TSA) as ``gateway trust
serve``; Soest's node runs in this process so its context can be read. The instance CA
(the sandbox's, on disk) issues the certificates the CSRs ask for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.core.errors import Code, GatewayError
from gateway.core.jws import cert_ref
from gateway.keys.files import (
    load_certificate,
    load_private_key,
    promote_pending_key,
    write_certificate,
    write_certificate_chain,
)
from gateway.node.config import NodeConfig, load_config
from gateway.node.keyadmin import (
    CertRole,
    OcspState,
    import_certificate,
    list_certificates,
    make_csr,
)
from gateway.node.server import Node
from gateway.pki.ca import create_root_ca, issue_certificate
from gateway.pki.ca import make_csr as pki_csr
from gateway.pki.keys import generate_key, public_key_der
from gateway.pki.profiles import CertKind
from gateway.sandbox.localnet import LocalNet, ServiceSpec
from gateway.trust.ca_store import CA_CERT_NAME, CA_KEY_NAME, ISSUED_DIR_NAME
from tests.integration.conftest import (
    GEWERBEAMT,
    LIPPSTADT,
    SERVICE,
    SOEST,
    RecordingRegistry,
)
from tests.pg import PgCluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def knet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    net = LocalNet.create(
        tmp_path_factory.mktemp("keyadmin"), [SOEST, LIPPSTADT], datetime.now(UTC)
    )
    net.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    net.write_configs()
    net.start_trust()
    try:
        net.start_node(LIPPSTADT.ags)
        yield net
    finally:
        net.stop()


def soest_config(net: LocalNet) -> NodeConfig:
    return load_config(net.nodes[SOEST.ags].config)


def run_soest(net: LocalNet, scenario: Callable[[Node], Awaitable[None]]) -> None:
    async def run() -> None:
        node = Node(soest_config(net))
        await node.start()
        try:
            await scenario(node)
        finally:
            await node.stop()

    asyncio.run(run())


def issue(
    net: LocalNet,
    csr_pem: bytes,
    kind: CertKind,
    now: datetime,
    days: int = 30,
    *,
    recorded: bool = True,
) -> bytes:
    """A certificate from the instance CA; ``recorded``: in the CA's issued records, so
    its OCSP responder answers *good* for it (otherwise *unknown*)."""
    ca_dir = net.ca_cert.parent
    cert = issue_certificate(
        x509.load_pem_x509_csr(csr_pem),
        kind,
        load_private_key(ca_dir / CA_KEY_NAME),
        load_certificate(ca_dir / CA_CERT_NAME),
        now,
        days,
    )
    if recorded:
        write_certificate(ca_dir / ISSUED_DIR_NAME / f"{cert.serial_number:x}.pem", cert)
    return cert.public_bytes(serialization.Encoding.PEM)


async def exchange(node: Node) -> None:
    assert node.endpoints is not None
    async with httpx.AsyncClient(timeout=30) as client:
        reply = await client.get(
            f"{node.endpoints.consumer_url}/r1/{SERVICE}",
            params={"familienname": "Schmidt"},
            headers={"X-Road-Client": str(GEWERBEAMT)},
        )
    assert reply.status_code == 200, reply.text


async def refused(node: Node, pem: bytes) -> Code:
    with pytest.raises(GatewayError) as caught:
        await import_certificate(node.context, pem)
    return caught.value.code


def test_the_node_lists_its_certificates_with_their_ocsp_status(knet: LocalNet) -> None:
    async def scenario(node: Node) -> None:
        now = node.clock.now()
        infos = list_certificates(node.context, now)
        assert [(i.role, i.member, i.owner) for i in infos] == [
            (CertRole.AUTH, str(SOEST.member), str(SOEST.node)),
            (CertRole.SIGNING, str(SOEST.member), str(SOEST.member)),
        ]
        files = knet.nodes[SOEST.ags]
        for info, path in zip(infos, (files.auth_cert, files.sign_cert), strict=True):
            cert = load_certificate(path)
            assert info.serial == f"{cert.serial_number:x}"
            assert info.not_after == cert.not_valid_after_utc
            assert info.issuer == cert.issuer.rfc4514_string()
            assert info.days_left == pytest.approx(
                (cert.not_valid_after_utc - now).total_seconds() / 86_400
            )
            assert info.ocsp is OcspState.GOOD
            assert info.ocsp_age_seconds is not None and info.ocsp_age_seconds >= 0

    run_soest(knet, scenario)


def test_bad_certificates_are_refused_with_their_code_and_nothing_is_written(
    knet: LocalNet, tmp_path: Path
) -> None:
    files = knet.nodes[SOEST.ags]
    before = {p: p.read_bytes() for p in files.directory.iterdir() if p.suffix in (".pem", ".key")}

    async def scenario(node: Node) -> None:
        now = node.clock.now()
        sign_key = load_private_key(files.directory / "sign.key", files.passphrase)
        assert await refused(node, b"-----BEGIN CERTIFICATE-----\nnein\n") is Code.CERT_INVALID
        # Someone else's key.
        stranger = pki_csr(generate_key(), CertKind.SIGN, SOEST.member)
        pem = issue(knet, stranger.public_bytes(serialization.Encoding.PEM), CertKind.SIGN, now)
        assert await refused(node, pem) is Code.CERT_NO_MATCHING_KEY
        # The signing key with an authentication certificate.
        wrong = pki_csr(sign_key, CertKind.AUTH, SOEST.node)
        pem = issue(knet, wrong.public_bytes(serialization.Encoding.PEM), CertKind.AUTH, now)
        assert await refused(node, pem) is Code.CERT_WRONG_USAGE
        # The signing key, but another member's certificate.
        other = pki_csr(sign_key, CertKind.SIGN, LIPPSTADT.member)
        pem = issue(knet, other.public_bytes(serialization.Encoding.PEM), CertKind.SIGN, now)
        assert await refused(node, pem) is Code.CERT_INVALID
        # Not valid yet.
        own = pki_csr(sign_key, CertKind.SIGN, SOEST.member).public_bytes(
            serialization.Encoding.PEM
        )
        later = issue(knet, own, CertKind.SIGN, now + timedelta(days=30))
        assert await refused(node, later) is Code.CERT_EXPIRED
        # From a CA the configuration does not trust.
        rogue_key = generate_key()
        rogue = create_root_ca("Rogue CA", rogue_key, now - timedelta(minutes=5))
        cert = issue_certificate(
            x509.load_pem_x509_csr(own), CertKind.SIGN, rogue_key, rogue, now, 30
        )
        pem = cert.public_bytes(serialization.Encoding.PEM)
        assert await refused(node, pem) is Code.CERT_UNTRUSTED
        # The one installed already.
        assert await refused(node, files.sign_cert.read_bytes()) is Code.CERT_ALREADY_INSTALLED

    run_soest(knet, scenario)
    after = {p: p.read_bytes() for p in files.directory.iterdir() if p.suffix in (".pem", ".key")}
    assert after == before
    assert not list(files.directory.glob("*.bak"))


def test_a_csr_is_made_with_the_key_in_use_and_refused_for_an_owner_without_one(
    knet: LocalNet,
) -> None:
    config = soest_config(knet)
    with pytest.raises(GatewayError) as caught:
        make_csr(config, LIPPSTADT.member)
    assert caught.value.code is Code.KEY_NOT_FOUND
    with pytest.raises(GatewayError) as caught:
        make_csr(config, LIPPSTADT.node)
    assert caught.value.code is Code.KEY_NOT_FOUND

    renewal = make_csr(config, SOEST.node, passphrase=knet.nodes[SOEST.ags].passphrase)
    csr = x509.load_pem_x509_csr(renewal.csr_pem)
    assert not renewal.new_key and renewal.key_path == config.node.auth_key
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert csr.public_key().public_bytes(*spki) == public_key_der(
        load_private_key(renewal.key_path, knet.nodes[SOEST.ags].passphrase)
    )


def test_a_new_signing_certificate_is_used_at_once(knet: LocalNet) -> None:
    files = knet.nodes[SOEST.ags]
    config = soest_config(knet)
    old_cert = files.sign_cert.read_bytes()
    old_key = (files.directory / "sign.key").read_bytes()

    async def scenario(node: Node) -> None:
        ctx = node.context
        await exchange(node)
        # A renewal with the key in use, from a serial the CA's responder does not know.
        renewal = make_csr(config, SOEST.member, passphrase=knet.nodes[SOEST.ags].passphrase)
        assert not renewal.new_key
        unknown = await import_certificate(
            ctx, issue(knet, renewal.csr_pem, CertKind.SIGN, node.clock.now(), recorded=False)
        )
        assert (unknown.installed, unknown.ocsp, unknown.key_backup) == (
            True,
            OcspState.UNKNOWN,
            None,
        )
        listed = [i for i in list_certificates(ctx) if i.role is CertRole.SIGNING]
        assert [(i.serial, i.ocsp) for i in listed] == [(unknown.serial, OcspState.UNKNOWN)]
        assert unknown.cert_backup is not None and unknown.cert_backup.read_bytes() == old_cert
        old_ref = ctx.signers[SOEST.member].cert_ref
        request = make_csr(
            config, SOEST.member, new_key=True, passphrase=knet.nodes[SOEST.ags].passphrase
        )
        assert request.new_key and request.key_path.name == "sign.key.new"
        with pytest.raises(GatewayError) as caught:
            make_csr(
                config, SOEST.member, new_key=True, passphrase=knet.nodes[SOEST.ags].passphrase
            )
        assert caught.value.code is Code.KEY_EXISTS
        pem = issue(knet, request.csr_pem, CertKind.SIGN, node.clock.now())

        result = await import_certificate(ctx, pem)

        assert (result.role, result.installed, result.restart_required) == (
            CertRole.SIGNING,
            True,
            False,
        )
        assert result.ocsp is OcspState.GOOD
        signer = ctx.signers[SOEST.member]
        assert signer.cert_ref != old_ref
        assert f"{signer.certificate.serial_number:x}" == result.serial
        listed = [i for i in list_certificates(ctx) if i.role is CertRole.SIGNING]
        assert [(i.serial, i.ocsp) for i in listed] == [(result.serial, OcspState.GOOD)]
        # Peers accept messages signed with it: the status travels with them.
        await exchange(node)
        assert result.cert_backup is not None and result.key_backup is not None
        assert result.cert_backup != unknown.cert_backup
        assert result.key_backup.read_bytes() == old_key

    run_soest(knet, scenario)
    assert files.sign_cert.read_bytes() != old_cert
    assert not (files.directory / "sign.key.new").exists()
    new_key = load_private_key(files.directory / "sign.key", files.passphrase)
    assert public_key_der(new_key) == public_key_der(load_certificate(files.sign_cert))
    # A restart uses the new certificate too.
    run_soest(knet, exchange)


def test_a_cluster_process_takes_up_a_signing_certificate_from_the_files(
    knet: LocalNet, pg_cluster: PgCluster
) -> None:
    """Soest's node as one process of a cluster (its log in PostgreSQL): the certificate
    another process imported, here copied into the files as to a second host, is put
    to use without a restart, and peers accept what it signs."""
    files = knet.nodes[SOEST.ags]
    config = soest_config(knet)
    node_section = config.node.model_copy(
        update={
            "messagelog": None,
            "database_url": pg_cluster.fresh_database(),
            "settings_poll_seconds": 0.2,
        }
    )
    clustered = config.model_copy(update={"node": node_section})

    async def run() -> None:
        node = Node(clustered)
        await node.start()
        try:
            ctx = node.context
            await exchange(node)
            old_ref = ctx.signers[SOEST.member].cert_ref
            request = make_csr(config, SOEST.member, new_key=True, passphrase=files.passphrase)
            pem = issue(knet, request.csr_pem, CertKind.SIGN, node.clock.now())
            # What the import on the other host wrote, arriving here: key, then chain.
            promote_pending_key(request.key_path, files.directory / "sign.key")
            write_certificate_chain(files.sign_cert, x509.load_pem_x509_certificates(pem))
            for _ in range(300):
                if ctx.signers[SOEST.member].cert_ref != old_ref:
                    break
                await asyncio.sleep(0.1)
            signer = ctx.signers[SOEST.member]
            assert signer.cert_ref != old_ref
            assert signer.certificate == load_certificate(files.sign_cert)
            await exchange(node)  # with the new certificate's OCSP status, fetched here
        finally:
            await node.stop()

    asyncio.run(run())


def test_a_new_authentication_certificate_needs_a_restart(knet: LocalNet) -> None:
    files = knet.nodes[SOEST.ags]
    config = soest_config(knet)
    old_cert = files.auth_cert.read_bytes()
    results = []

    async def scenario(node: Node) -> None:
        request = make_csr(
            config, SOEST.node, new_key=True, passphrase=knet.nodes[SOEST.ags].passphrase
        )
        pem = issue(knet, request.csr_pem, CertKind.AUTH, node.clock.now())
        result = await import_certificate(node.context, pem)
        results.append(result)
        assert node.context.auth_ref == list_certificates(node.context)[0].sha256
        assert [i.role for i in list_certificates(node.context)].count(CertRole.AUTH) == 1

    run_soest(knet, scenario)
    (result,) = results
    assert (result.role, result.installed, result.restart_required) == (CertRole.AUTH, False, True)
    assert result.ocsp is OcspState.NONE
    assert result.cert_backup is not None and result.cert_backup.read_bytes() == old_cert
    assert f"{load_certificate(files.auth_cert).serial_number:x}" == result.serial
    assert result.key_backup is not None and not (files.directory / "auth.key.new").exists()

    async def restarted(node: Node) -> None:
        # The start-up checks (chain, owner, key) accept the new pair, and it is in use.
        assert node.context.auth_ref == cert_ref(load_certificate(files.auth_cert))
        (auth,) = [i for i in list_certificates(node.context) if i.role is CertRole.AUTH]
        assert (auth.serial, auth.ocsp) == (result.serial, OcspState.GOOD)

    run_soest(knet, restarted)
