"""A partner city joins: keys and CSRs, importing certificates, registering at the central.

Everything lives in one directory the city keeps (``join.json`` records who it is and the
request ids it got)::

    join.json   {"node_id", "name", "requests": [...]}
    auth.key    auth.csr   auth.pem      the node's TLS/authentication key (0600)
    sign.key    sign.csr   sign.pem      the member's signing key (0600)

The two keys never leave the directory; the CA sees only the CSRs, the central only the
certificates and signatures made with the keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.central.registration import auth_cert_document, client_document, sign_detached
from gateway.core.canonical import canonical_json
from gateway.core.ids import NodeId, parse_client
from gateway.keys.files import (
    load_certificate,
    load_private_key,
    new_key_and_csr,
    write_certificate,
)
from gateway.pki.profiles import CertKind, member_id_of, node_id_of

STATE = "join.json"


class JoinError(ValueError):
    """A step of the join flow cannot proceed; the message says what to do."""


@dataclass(frozen=True)
class JoinState:
    node_id: NodeId
    name: str
    requests: tuple[dict[str, Any], ...] = ()


def _load(directory: Path) -> JoinState:
    path = directory / STATE
    if not path.exists():
        raise JoinError(f"{path} is missing; run 'gateway join keys' first")
    doc = json.loads(path.read_text())
    return JoinState(NodeId.parse(doc["node_id"]), doc["name"], tuple(doc.get("requests", ())))


def _save(directory: Path, state: JoinState) -> None:
    doc = {"node_id": str(state.node_id), "name": state.name, "requests": list(state.requests)}
    (directory / STATE).write_text(json.dumps(doc, indent=2) + "\n")


def make_keys(
    directory: Path, node_id: NodeId, name: str, passphrase: bytes | None = None
) -> tuple[Path, Path]:
    """Auth key+CSR for the node, signing key+CSR for its owner, both keys encrypted
    with ``passphrase`` (plain without one: a development set-up); returns the CSR
    paths."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / STATE).exists():
        raise JoinError(f"{directory} already holds a join state")
    auth_csr, sign_csr = directory / "auth.csr", directory / "sign.csr"
    new_key_and_csr(
        CertKind.AUTH, node_id, directory / "auth.key", auth_csr, name, passphrase=passphrase
    )
    new_key_and_csr(
        CertKind.SIGN, node_id.owner, directory / "sign.key", sign_csr, name, passphrase=passphrase
    )
    _save(directory, JoinState(node_id, name))
    return auth_csr, sign_csr


def _spki(key: Any) -> bytes:
    data: bytes = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return data


def import_certs(
    directory: Path, auth_cert: Path, sign_cert: Path, passphrase: bytes | None = None
) -> tuple[str, str]:
    """Check the certificates belong to our keys and owners, then copy them in."""
    state = _load(directory)
    auth, sign = load_certificate(auth_cert), load_certificate(sign_cert)
    auth_key = load_private_key(directory / "auth.key", passphrase)
    sign_key = load_private_key(directory / "sign.key", passphrase)
    if _spki(auth.public_key()) != _spki(auth_key.public_key()):
        raise JoinError(f"{auth_cert} is not for this directory's auth.key")
    if _spki(sign.public_key()) != _spki(sign_key.public_key()):
        raise JoinError(f"{sign_cert} is not for this directory's sign.key")
    if node_id_of(auth) != state.node_id:
        raise JoinError(f"{auth_cert} names {node_id_of(auth)}, not {state.node_id}")
    if member_id_of(sign) != state.node_id.owner:
        raise JoinError(f"{sign_cert} names {member_id_of(sign)}, not {state.node_id.owner}")
    write_certificate(directory / "auth.pem", auth)
    write_certificate(directory / "sign.pem", sign)
    from gateway.pki.keys import fingerprint_sha256

    return fingerprint_sha256(auth), fingerprint_sha256(sign)


def _post(client: httpx.Client, url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(url, json=body)
    result: dict[str, Any] = response.json()
    if response.status_code >= 400:
        raise JoinError(f"{url}: {result.get('type')}: {result.get('message')}")
    return result


def register(
    directory: Path,
    central: str,
    address: str,
    subsystems: list[str],
    now: datetime,
    passphrase: bytes | None = None,
) -> list[dict[str, Any]]:
    """Send the auth-cert registration and one client registration per subsystem."""
    state = _load(directory)
    node = state.node_id
    if not (directory / "auth.pem").exists():
        raise JoinError("no certificates yet; run 'gateway join import' first")
    auth_cert = load_certificate(directory / "auth.pem")
    sign_cert = load_certificate(directory / "sign.pem")
    auth_key = load_private_key(directory / "auth.key", passphrase)
    sign_key = load_private_key(directory / "sign.key", passphrase)
    base = central.rstrip("/") + "/registration/v1"
    results: list[dict[str, Any]] = []
    with httpx.Client(timeout=30) as client:
        doc = auth_cert_document(node.instance, node, address, auth_cert, now)
        payload = canonical_json(doc)
        results.append(
            _post(
                client,
                f"{base}/auth-cert",
                {
                    "document": doc,
                    "auth_signature": sign_detached(payload, auth_key, [auth_cert]),
                    "member_signature": sign_detached(payload, sign_key, [sign_cert]),
                },
            )
        )
        for code in subsystems:
            sub = parse_client(f"{node.owner}/{code}")
            doc = client_document(node.instance, node, sub, now)
            payload = canonical_json(doc)
            body = {
                "document": doc,
                "member_signature": sign_detached(payload, sign_key, [sign_cert]),
            }
            results.append(_post(client, f"{base}/client", body))
    _save(
        directory,
        JoinState(
            node,
            state.name,
            state.requests + tuple({"id": r["id"], "kind": r["kind"]} for r in results),
        ),
    )
    return results


def status(directory: Path, central: str) -> list[dict[str, Any]]:
    """The central's view of every request this directory sent."""
    state = _load(directory)
    base = central.rstrip("/") + "/registration/v1/requests/"
    with httpx.Client(timeout=30) as client:
        out = []
        for r in state.requests:
            response = client.get(base + r["id"])
            out.append(response.json())
        return out


def certificate_summary(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()
