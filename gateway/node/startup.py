"""What a node checks and loads before it listens: keys, certificates, TLS, replay ids.

A key or certificate that peers would refuse must stop the node at start-up, with the
file or service named, rather than fail every exchange later. These functions are the
start-up steps ``gateway.node.server.Node`` runs in order: the registries' TLS contexts,
the members' signing keys (each signs and verifies a self-test against the trusted
roots), the node's authentication chain and key, the issuer and OCSP responders of each
of its own certificates, and the replay guard refilled from the log's recent requests.
"""

from __future__ import annotations

import ssl
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.conf.directory import Directory
from gateway.core.atrest import DataKey
from gateway.core.encoding import format_time
from gateway.core.envelope import EnvelopeError, parse_time
from gateway.core.ids import MemberId, NodeId, ServiceId
from gateway.core.jws import SignatureVerifier, Signer
from gateway.keys.datakey import DataKeyError, load_data_key, read_passphrase
from gateway.keys.datakey_token import load_token_data_key
from gateway.keys.files import (
    KeyFileError,
    is_encrypted_key_file,
    load_certificates,
    load_private_key,
)
from gateway.keys.passphrase import PassphraseError, resolve_passphrase
from gateway.keys.pkcs11 import (
    TokenError,
    TokenKeyRef,
    TokenSigningKey,
    load_token_key,
    read_pin,
)
from gateway.messagelog import MessageLog
from gateway.node.clientauth import ClientCertStore, ConsumerTls
from gateway.node.config import ConfigError, NodeConfig, ServiceSection, SigningKey, TokenSection
from gateway.node.context import TrustState
from gateway.node.ocsp import OwnCertificate
from gateway.node.replay import ReplayGuard
from gateway.node.settings.errors import SettingsError
from gateway.node.settings.snapshot import service_tls
from gateway.node.tls import RegistryContext
from gateway.pki.ocsp_cache import find_issuer
from gateway.pki.profiles import CertificateError, node_id_of
from gateway.pki.validation import verify_auth_certificate

__all__ = [
    "check_auth_certificate",
    "consumer_tls",
    "load_signers",
    "node_data_key",
    "own_certificate",
    "preloaded_replay_guard",
    "registry_contexts",
    "signing_key",
    "unlock_keys",
]


def private_key_files(config: NodeConfig) -> list[Path]:
    """Every private key file the node opens at start-up: authentication, internal TLS,
    member signing keys (not those in a token). A registry's TLS client key belongs to
    the run-time settings (``[[services]]``) and is not covered yet (docs/adr/0041)."""
    paths = [config.node.auth_key]
    if config.node.internal_tls_key is not None:
        paths.append(config.node.internal_tls_key)
    paths += [entry.key for entry in config.signing if entry.key is not None]
    return list(dict.fromkeys(paths))


def unlock_keys(config: NodeConfig) -> bytes | None:
    """The passphrase of the node's key files, checked against each of them.

    An unencrypted key stops the node unless ``[node] development = true``; the
    passphrase is asked for only if some key is encrypted, and a wrong one stops the
    node naming the file, never the passphrase (docs/adr/0041).
    """
    encrypted: list[Path] = []
    for path in private_key_files(config):
        try:
            locked = is_encrypted_key_file(path)
        except OSError as exc:
            raise ConfigError(f"cannot read the private key {path}: {exc.strerror}") from None
        if locked:
            encrypted.append(path)
        elif not config.node.development:
            raise ConfigError(
                f"{path} is an unencrypted private key; encrypt it with "
                f"'gateway keys encrypt {path}' (or, for a development set-up only, set "
                "development = true in [node])"
            )
    if not encrypted:
        return None
    try:
        passphrase = resolve_passphrase(config.node.key_passphrase_file)
        for path in encrypted:
            load_private_key(path, passphrase)
    except (PassphraseError, KeyFileError) as exc:
        raise ConfigError(str(exc)) from None
    return passphrase


def consumer_tls(
    config: NodeConfig, passphrase: bytes | None
) -> tuple[ClientCertStore, ConsumerTls | None]:
    """The registered information-system certificates and the consumer TLS port's
    contexts (none without an internal TLS certificate), its key opened with the
    node's key passphrase; an unreadable store, certificate or key stops the node."""
    try:
        store = ClientCertStore(config.node.client_certs)
        cert, key = config.node.internal_tls_cert, config.node.internal_tls_key
        if cert is None or key is None:
            return store, None
        return store, ConsumerTls(cert, key, store, passphrase)
    except (ValueError, OSError, ssl.SSLError) as exc:
        raise ConfigError(f"the consumer TLS port cannot be set up: {exc}") from None


def registry_contexts(services: list[ServiceSection]) -> dict[ServiceId, RegistryContext]:
    """The TLS context of every service with TLS settings (an ``https://`` registry),
    built at start-up so an unreadable CA, certificate or key stops the node with its
    service named, rather than failing the first exchange."""
    try:
        return service_tls(services)
    except SettingsError as exc:
        raise ConfigError(exc.detail) from None


def signing_key(
    entry: SigningKey, passphrase: bytes | None = None
) -> ec.EllipticCurvePrivateKey | TokenSigningKey:
    """The key file's key, or the token's key logged in with its PIN (docs/adr/0038)."""
    if entry.token is None:
        assert entry.key is not None  # the configuration gives exactly one
        return load_private_key(entry.key, passphrase)
    ref = token_ref(entry.token)
    return load_token_key(ref, read_pin(ref))


def token_ref(section: TokenSection) -> TokenKeyRef:
    """Where a key in a token is, as ``node.toml`` names it."""
    return TokenKeyRef(
        module=section.module,
        token=section.label,
        key_label=section.key_label,
        pin_file=section.pin_file,
        pin_env=section.pin_env,
    )


def load_signers(
    config: NodeConfig, verifier: SignatureVerifier, now: datetime, passphrase: bytes | None = None
) -> tuple[dict[MemberId, Signer], dict[MemberId, list[x509.Certificate]]]:
    """The members' signing keys, each tested against the trusted roots: refuse to
    start with a key that peers would refuse (fail at boot, not per call)."""
    signers: dict[MemberId, Signer] = {}
    chains: dict[MemberId, list[x509.Certificate]] = {}
    for entry in config.signing:
        member = MemberId.parse(entry.member)
        chain = load_certificates(entry.cert)
        signer = Signer(member, signing_key(entry, passphrase), chain)
        try:
            tested = verifier.verify(signer.sign(b"self-test"), b"self-test", now)
        except EnvelopeError as exc:
            raise CertificateError(
                f"{entry.key_source()} does not work with {entry.cert}: {exc.message}"
            ) from None
        if tested.signer != member:
            raise CertificateError(f"signing certificate {entry.cert} is not for {member}")
        signers[member] = signer
        chains[member] = chain
    return signers, chains


def check_auth_certificate(
    config: NodeConfig,
    node_id: NodeId,
    directory: Directory,
    now: datetime,
    passphrase: bytes | None = None,
) -> list[x509.Certificate]:
    """The node's TLS authentication chain: valid now, for this node, with its key, from
    a CA of the node's own instance (a federated instance's CA is refused by peers)."""
    auth_chain = load_certificates(config.node.auth_cert)
    roots = directory.trust_roots_for(node_id.instance)
    auth_owner = verify_auth_certificate(auth_chain[0], auth_chain[1:], roots, now)
    if auth_owner != node_id or node_id_of(auth_chain[0]) != node_id:
        raise CertificateError(f"authentication certificate is for {auth_owner}, not {node_id}")
    auth_key = load_private_key(config.node.auth_key, passphrase)
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if auth_key.public_key().public_bytes(*spki) != auth_chain[0].public_key().public_bytes(*spki):
        raise CertificateError(f"{config.node.auth_key} is not the key of {config.node.auth_cert}")
    return auth_chain


def own_certificate(label: str, chain: list[x509.Certificate], trust: TrustState) -> OwnCertificate:
    """One of this node's certificates with its issuer and the responders to ask.

    A node that cannot learn its own status could never send or answer anything, so
    a directory without a responder for the issuing CA stops it here, at start-up.
    """
    cert = chain[0]
    label = f"{label} (serial {cert.serial_number:x})"
    issuer = find_issuer(cert, [*chain[1:], *trust.directory.trust_roots()])
    if issuer is None:
        raise CertificateError(f"no trusted CA certificate issued this node's {label}")
    responders = tuple(trust.directory.ocsp_responders(issuer))
    if not responders:
        raise ConfigError(
            f"the directory lists no OCSP responder for {issuer.subject.rfc4514_string()}, "
            f"the CA that issued this node's {label}; without one the node cannot show "
            "its certificates are valid, so it does not start (the central authority "
            "must list an OCSP responder for that CA)"
        )
    return OwnCertificate(label, cert, issuer, responders)


def preloaded_replay_guard(
    message_log: MessageLog, window: timedelta, now: datetime
) -> ReplayGuard:
    """The replay guard, holding every message id the log saw within the window."""
    replay = ReplayGuard(window)
    replay.preload(
        (client, message_id, parse_time(created))
        for client, message_id, created in message_log.seen_since(format_time(now - window))
    )
    return replay


def node_data_key(config: NodeConfig) -> DataKey | None:
    """The data key the log seals personal data with (``[logging] data_key``), or None
    when the node has none configured. A key that is configured but cannot be had (no
    file, no or a wrong passphrase) stops the start: running on without it would write
    personal data in the clear that the operator asked to have sealed."""
    section = config.logging
    if section.data_key is None:
        return None
    try:
        if section.data_key_token is not None:
            ref = token_ref(section.data_key_token)
            return load_token_data_key(section.data_key, ref, read_pin(ref))
        return load_data_key(section.data_key, read_passphrase(section.data_key_passphrase_file))
    except (DataKeyError, TokenError) as exc:
        raise ConfigError(f"[logging] data_key: {exc}") from None
