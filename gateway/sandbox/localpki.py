"""Every certificate the loopback federation issues, from its one development CA.

The CA with its OCSP responder and TSA certificates, a node's authentication and
signing certificates (made here for a federation published by the development
publisher, or from the CSRs of ``gateway join keys`` for one that joins a central
authority), and the self-signed certificates of a node's consumer TLS port and of its
information systems. Apart from :mod:`gateway.sandbox.localnet` so that the
federation's PKI reads as one story and its processes as another. Time is passed in.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from gateway.keys.files import new_key_and_csr, new_self_signed
from gateway.node.clientauth import ClientCertStore
from gateway.pki.profiles import CertKind, ServiceKind
from gateway.sandbox.netfiles import HOST, NodeFiles, TrustFiles
from gateway.trust.ca_store import init_ca, issue_from_csr, issue_service

CA_NAME = "Development CA DE-NRW"


def issue_ca(trust: TrustFiles, now: datetime, name: str = CA_NAME) -> None:
    """The CA in ``trust.ca_dir`` and, in ``trust.directory``, the certificates and keys
    of its OCSP responder and of the TSA (five years)."""
    init_ca(trust.ca_dir, name, now)
    trust.directory.mkdir(parents=True, exist_ok=True)
    issue_service(trust.ca_dir, ServiceKind.OCSP, trust.directory, now)
    issue_service(trust.ca_dir, ServiceKind.TSA, trust.directory, now, days=1825)


def issue_node_certificates(ca_dir: Path, files: NodeFiles, now: datetime) -> None:
    """A new key, CSR and certificate for the node's authentication (for ``HOST``) and
    for its member's signing, in the node's directory; the keys encrypted with the
    node's throwaway passphrase."""
    city = files.city
    new_key_and_csr(
        CertKind.AUTH,
        city.node,
        files.directory / "auth.key",
        files.directory / "auth.csr",
        city.name,
        passphrase=files.passphrase,
    )
    issue_from_csr(
        ca_dir,
        files.directory / "auth.csr",
        CertKind.AUTH,
        files.auth_cert,
        now,
        ip_addresses=(HOST,),
    )
    new_key_and_csr(
        CertKind.SIGN,
        city.member,
        files.directory / "sign.key",
        files.directory / "sign.csr",
        city.name,
        passphrase=files.passphrase,
    )
    issue_from_csr(ca_dir, files.directory / "sign.csr", CertKind.SIGN, files.sign_cert, now)


def issue_joined_certificates(
    ca_dir: Path, auth_csr: Path, sign_csr: Path, issued: Path, now: datetime
) -> tuple[Path, Path]:
    """The CA's answer to a joining city's CSRs (``gateway pki issue``): its
    authentication and signing certificates, written to ``issued``."""
    issued.mkdir(parents=True, exist_ok=True)
    auth, sign = issued / "auth.pem", issued / "sign.pem"
    issue_from_csr(ca_dir, auth_csr, CertKind.AUTH, auth, now, ip_addresses=(HOST,))
    issue_from_csr(ca_dir, sign_csr, CertKind.SIGN, sign, now)
    return auth, sign


def issue_consumer_tls(files: NodeFiles, now: datetime) -> None:
    """The node's internal TLS certificate (its consumer TLS port's, its key encrypted)
    and a certificate for each subsystem's information systems, registered in the
    node's store; keeps existing files. The information systems' keys stay plain: they
    are the clients' keys, outside the node."""
    if not files.internal_cert.exists():
        hosts = tuple(dict.fromkeys((files.host, HOST, "localhost")))
        new_self_signed(
            files.internal_cert,
            files.internal_key,
            f"{files.city.node} internal TLS",
            now,
            days=825,
            hosts=hosts,
            server=True,
            passphrase=files.passphrase,
        )
    store = ClientCertStore(files.client_certs)
    for code in files.city.subsystems:
        if files.client_cert(code).exists():
            continue
        client = files.city.subsystem(code)
        cert = new_self_signed(
            files.client_cert(code),
            files.client_key(code),
            str(client),
            now,
            days=825,
            client=True,
        )
        store.add(client, cert)
