"""Registration requests (X-Road's authCertReg and clientReg): documents and their proofs.

Pure: documents, signatures and certificate checks, with time passed in; storing and
deciding requests is :mod:`gateway.central.requests`' job.

A request is a canonical JSON *document* plus detached JWS signatures (RFC 7515, ES256,
``x5c`` chain) over its canonical bytes, the same form a node signs messages with:

- auth-cert registration: ``{"type": "auth-cert", "instance", "node_id", "address",
  "auth_cert", "created"}`` signed by the node's **authentication** key (proof that the
  node holds the key of the certificate it registers) *and* by the owning member's
  **signing** key (proof that the member asks for it);
- client registration: ``{"type": "client", "instance", "node_id", "client_id",
  "created"}`` signed by the client's member's **signing** key.

Every certificate must chain to an approved CA and its profile must name the right
owner (``node_id_of`` / ``member_id_of``); anything else is refused with a stable code.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from jwt.algorithms import ECAlgorithm

from gateway.central.errors import CentralCode, CentralError
from gateway.core.canonical import NotCanonicalError, canonical_json, parse_canonical
from gateway.core.encoding import EncodingError, b64url, b64url_decode, format_time
from gateway.core.envelope import EnvelopeError, parse_time
from gateway.core.ids import ClientId, InvalidIdentifierError, MemberId, NodeId, parse_client
from gateway.pki.profiles import CertificateError, member_id_of, node_id_of
from gateway.pki.validation import verify_chain

_ES256 = ECAlgorithm(ECAlgorithm.SHA256)
MAX_AGE = timedelta(hours=1)
"""How old (or how far in the future) a request's ``created`` may be when submitted."""


def _err(code: CentralCode, message: str) -> CentralError:
    return CentralError(code, message)


def sign_detached(
    payload: bytes, key: ec.EllipticCurvePrivateKey, chain: Sequence[x509.Certificate]
) -> str:
    """Compact JWS with detached payload, ``x5c`` carrying ``chain``."""
    x5c = [base64.b64encode(c.public_bytes(Encoding.DER)).decode("ascii") for c in chain]
    header = b64url(canonical_json({"alg": "ES256", "x5c": x5c}))
    signature = _ES256.sign(f"{header}.{b64url(payload)}".encode("ascii"), key)
    return f"{header}..{b64url(signature)}"


def _verify_detached(
    jws: str, payload: bytes, roots: Sequence[x509.Certificate], now: datetime, what: str
) -> x509.Certificate:
    """The leaf certificate of a JWS that verifies over ``payload`` and chains to ``roots``."""
    parts = jws.split(".") if isinstance(jws, str) else []
    if len(parts) != 3 or parts[1] != "":
        raise _err(CentralCode.REG_MALFORMED, f"{what}: not a compact JWS with detached payload")
    try:
        header = parse_canonical(b64url_decode(parts[0]))
        signature = b64url_decode(parts[2])
    except (NotCanonicalError, EncodingError) as exc:
        raise _err(CentralCode.REG_MALFORMED, f"{what}: bad JWS encoding: {exc}") from None
    if header.get("alg") != "ES256" or set(header) != {"alg", "x5c"}:
        raise _err(CentralCode.REG_MALFORMED, f"{what}: JWS header must be alg=ES256 and x5c")
    x5c = header["x5c"]
    if not isinstance(x5c, list) or not 1 <= len(x5c) <= 4:
        raise _err(CentralCode.REG_MALFORMED, f"{what}: x5c must list 1 to 4 certificates")
    try:
        chain = [x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in x5c]
    except (ValueError, TypeError, x509.InvalidVersion) as exc:
        raise _err(CentralCode.REG_MALFORMED, f"{what}: x5c does not parse: {exc}") from None
    try:
        verify_chain(chain[0], chain[1:], roots, now)
    except CertificateError as exc:
        raise _err(
            CentralCode.REG_CERTIFICATE, f"{what}: certificate not from an approved CA: {exc}"
        ) from None
    key = chain[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise _err(CentralCode.REG_SIGNATURE, f"{what}: ES256 needs a P-256 certificate")
    signing_input = f"{parts[0]}.{b64url(payload)}".encode("ascii")
    if len(signature) != 64 or not _ES256.verify(signing_input, key, signature):
        raise _err(CentralCode.REG_SIGNATURE, f"{what}: signature does not verify")
    return chain[0]


@dataclass(frozen=True)
class AuthCertRequest:
    """A verified auth-cert registration."""

    node_id: NodeId
    address: str
    auth_cert: x509.Certificate
    member: MemberId
    created: str


@dataclass(frozen=True)
class ClientRequest:
    """A verified client registration."""

    node_id: NodeId
    client_id: ClientId
    member: MemberId
    created: str


def auth_cert_document(
    instance: str, node_id: NodeId, address: str, auth_cert: x509.Certificate, now: datetime
) -> dict[str, Any]:
    return {
        "type": "auth-cert",
        "instance": instance,
        "node_id": str(node_id),
        "address": address.rstrip("/"),
        "auth_cert": auth_cert.public_bytes(Encoding.PEM).decode("ascii"),
        "created": format_time(now),
    }


def client_document(
    instance: str, node_id: NodeId, client_id: ClientId, now: datetime
) -> dict[str, Any]:
    return {
        "type": "client",
        "instance": instance,
        "node_id": str(node_id),
        "client_id": str(client_id),
        "created": format_time(now),
    }


def _document(doc: Any, kind: str, fields: set[str], instance: str, now: datetime) -> bytes:
    if not isinstance(doc, dict) or doc.get("type") != kind or set(doc) != fields:
        raise _err(CentralCode.REG_MALFORMED, f"a {kind} document has exactly {sorted(fields)}")
    if any(not isinstance(v, str) or not v for v in doc.values()):
        raise _err(CentralCode.REG_MALFORMED, "every field must be a non-empty string")
    if doc["instance"] != instance:
        raise _err(CentralCode.REG_MISMATCH, f"this central serves instance {instance}")
    try:
        created = parse_time(doc["created"])
    except (EnvelopeError, ValueError) as exc:
        raise _err(CentralCode.REG_MALFORMED, f"created: {exc}") from None
    if abs(now - created) > MAX_AGE:
        raise _err(CentralCode.REG_MALFORMED, "created is more than an hour away from now")
    try:
        return canonical_json(doc)
    except NotCanonicalError as exc:
        raise _err(CentralCode.REG_MALFORMED, str(exc)) from None


def _signing_member(
    signature: Any, payload: bytes, roots: Sequence[x509.Certificate], now: datetime
) -> MemberId:
    """The member whose signing certificate made ``signature`` over ``payload``."""
    leaf = _verify_detached(signature, payload, roots, now, "member signature")
    try:
        return member_id_of(leaf)
    except CertificateError as exc:
        raise _err(
            CentralCode.REG_MISMATCH, f"member signature: not a signing certificate: {exc}"
        ) from None


def verify_auth_cert_request(
    doc: Any,
    auth_signature: Any,
    member_signature: Any,
    instance: str,
    roots: Sequence[x509.Certificate],
    now: datetime,
) -> AuthCertRequest:
    """Check both proofs of possession and that the certificates name this node."""
    fields = {"type", "instance", "node_id", "address", "auth_cert", "created"}
    payload = _document(doc, "auth-cert", fields, instance, now)
    try:
        node = NodeId.parse(doc["node_id"])
    except InvalidIdentifierError as exc:
        raise _err(CentralCode.REG_MALFORMED, str(exc)) from None
    if not doc["address"].startswith("https://"):
        raise _err(CentralCode.REG_MALFORMED, "address must be an https:// URL")
    try:
        cert = x509.load_pem_x509_certificate(doc["auth_cert"].encode("ascii"))
    except (ValueError, x509.InvalidVersion) as exc:
        raise _err(CentralCode.REG_MALFORMED, f"auth_cert is not PEM: {exc}") from None
    auth_leaf = _verify_detached(auth_signature, payload, roots, now, "auth signature")
    if auth_leaf != cert:
        raise _err(
            CentralCode.REG_SIGNATURE,
            "auth signature: not made with the key of the certificate being registered",
        )
    try:
        cert_node = node_id_of(cert)
    except CertificateError as exc:
        raise _err(
            CentralCode.REG_MISMATCH, f"auth_cert is not an auth certificate: {exc}"
        ) from None
    if cert_node != node:
        raise _err(CentralCode.REG_MISMATCH, f"auth_cert belongs to {cert_node}, not {node}")
    member = _signing_member(member_signature, payload, roots, now)
    if member != node.owner:
        raise _err(
            CentralCode.REG_MISMATCH, f"node {node} is owned by {node.owner}, signed by {member}"
        )
    return AuthCertRequest(node, doc["address"].rstrip("/"), cert, member, doc["created"])


def verify_client_request(
    doc: Any,
    member_signature: Any,
    instance: str,
    roots: Sequence[x509.Certificate],
    now: datetime,
) -> ClientRequest:
    """Check the member's signature and that the member owns the client."""
    fields = {"type", "instance", "node_id", "client_id", "created"}
    payload = _document(doc, "client", fields, instance, now)
    try:
        node = NodeId.parse(doc["node_id"])
        client = parse_client(doc["client_id"])
    except InvalidIdentifierError as exc:
        raise _err(CentralCode.REG_MALFORMED, str(exc)) from None
    member = _signing_member(member_signature, payload, roots, now)
    owner = client.member
    if member != owner:
        raise _err(
            CentralCode.REG_MISMATCH, f"client {client} belongs to {owner}, signed by {member}"
        )
    return ClientRequest(node, client, member, doc["created"])
