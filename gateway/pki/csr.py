"""A CSR signed by a key this process cannot hold: a key in a PKCS#11 token.

``cryptography``'s ``CertificateSigningRequestBuilder`` signs only with its own key
objects, so a token key's CSR is assembled here with ``asn1crypto`` (PKCS#10,
RFC 2986) and signed through a callable. Its subject and SAN are encoded by
``cryptography`` from the same profile functions :func:`gateway.pki.ca.make_csr` uses,
so a CA sees no difference between a CSR from a key file and one from a token.

Pure: the public key and the signing function are passed in.
"""

from __future__ import annotations

from collections.abc import Callable

# asn1crypto ships no type information.
from asn1crypto import csr as asn1_csr  # type: ignore[import-untyped]
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.core.ids import MemberId, NodeId
from gateway.pki.profiles import (
    CertificateError,
    CertKind,
    check_owner_kind,
    owner_uri,
    subject_for,
)

__all__ = ["make_csr_signed_by"]


def make_csr_signed_by(
    public_key: ec.EllipticCurvePublicKey,
    sign: Callable[[bytes], bytes],
    kind: CertKind,
    owner: NodeId | MemberId,
    organisation: str | None = None,
    *,
    country: str | None = None,
) -> x509.CertificateSigningRequest:
    """The CSR :func:`~gateway.pki.ca.make_csr` would make for ``owner``, signed by
    ``sign`` (DER ECDSA with SHA-256 over its argument, a P-256 key).

    The result is parsed back and its signature checked against ``public_key``, so a
    token that signs with another key than the one it reported fails here, not at the CA.
    """
    check_owner_kind(kind, owner)
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise CertificateError("a token key must be EC P-256")
    subject = asn1_x509.Name.load(subject_for(owner, organisation, country).public_bytes())
    san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(owner_uri(owner))])
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    info = asn1_csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": subject,
            "subject_pk_info": asn1_keys.PublicKeyInfo.load(spki),
            "attributes": [
                {
                    "type": "extension_request",
                    "values": [
                        [
                            {
                                "extn_id": "subject_alt_name",
                                "critical": False,
                                "extn_value": asn1_x509.GeneralNames.load(san.public_bytes()),
                            }
                        ]
                    ],
                }
            ],
        }
    )
    request = asn1_csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": {"algorithm": "sha256_ecdsa"},
            "signature": sign(info.dump()),
        }
    )
    csr = x509.load_der_x509_csr(request.dump())
    try:
        public_key.verify(csr.signature, csr.tbs_certrequest_bytes, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise CertificateError("the token's signature does not match its public key") from None
    return csr
