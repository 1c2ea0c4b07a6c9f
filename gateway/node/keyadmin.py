"""The node's keys and certificates, for its management API: list them, ask for a
certificate (CSR), and import the certificate the CA issued.

X-Road's flow on files: the node's keys are the files its configuration names (the
authentication key in ``[node]``, one signing key per ``[[signing]]`` member). A CSR is
made with the key in use (a renewal) or with a new key; a new key for an owner that has
one already waits beside it (``<key>.new``) until its certificate is imported, so the
key in use keeps working meanwhile. No key file is ever overwritten, and an imported
certificate never silently replaces the old one: the old certificate (and, for a new
key, the old key) is kept as ``<name>.<time>.bak``.

An imported certificate is checked before anything is written, in this order: it is
PEM; its public key is one the node holds (``client.certificate.no_matching_key``); its
key usage fits that key's role (``wrong_usage``); it follows the profile and names the
key's owner (``invalid``); it is valid now (``expired``); it chains to a CA of the
global configuration (``untrusted``); it is not the one installed already.

A signing certificate is installed at run time: its OCSP status is fetched and kept
fresh (:meth:`gateway.node.ocsp.OwnOcsp.add`), then the member's signer is swapped in
:attr:`NodeContext.signers` as one new dict, so an exchange reads either the old or the
new signer whole. An authentication certificate is written but needs a restart: every
TLS context (listening and connecting) is built from it when the node starts
(``ImportResult.restart_required``).

In a node cluster the other processes take a signing certificate up from the files
(:func:`take_up_signing_files`, called every ``settings_poll_seconds``): the workers of
one host share them at once, another host once the files are copied to it
(docs/adr/0050).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.conf.directory import Directory
from gateway.core.envelope import EnvelopeError
from gateway.core.errors import Code, GatewayError
from gateway.core.ids import MemberId, NodeId
from gateway.core.jws import Signer
from gateway.keys.files import (
    keep_backup,
    load_certificates,
    load_private_key,
    pending_key_path,
    promote_pending_key,
    write_certificate_chain,
    write_private_key,
)
from gateway.node.config import ConfigError, NodeConfig
from gateway.node.context import NodeContext
from gateway.node.ocsp import OwnCertificate
from gateway.node.startup import own_certificate
from gateway.pki.ca import make_csr as make_pki_csr
from gateway.pki.keys import fingerprint_sha256, generate_key, public_key_der
from gateway.pki.ocsp import OcspFailure
from gateway.pki.profiles import CertificateError, CertKind, member_id_of, node_id_of
from gateway.pki.validation import verify_chain

_log = logging.getLogger("gateway.node")

_TLS_USAGES = frozenset({ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH})


class CertRole(StrEnum):
    """What a certificate of the node is for."""

    AUTH = "auth"
    """The node's authentication certificate (TLS with peers)."""
    SIGNING = "signing"
    """A member's signing certificate (the signatures of its messages)."""


class OcspState(StrEnum):
    """The OCSP status the node holds for one of its certificates."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"
    """The responder's last answer said it does not know the certificate."""
    NONE = "none"
    """No status yet (no responder answered, or none verifiably)."""


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """One certificate the node uses, as an operator reads it."""

    role: CertRole
    member: str
    """The member it acts for (for the authentication certificate: the node's owner)."""
    owner: str
    """The id the certificate names: the node id, or the member id."""
    subject: str
    issuer: str
    serial: str
    """Hexadecimal, as the CA and the logs print it."""
    sha256: str
    not_before: datetime
    not_after: datetime
    days_left: float
    """Days from ``now`` to ``not_after`` (negative once expired)."""
    ocsp: OcspState
    ocsp_age_seconds: float | None
    """Seconds since the held good response's thisUpdate; None without one."""
    ocsp_error: str | None
    """Why the last refresh failed, if it did."""


@dataclass(frozen=True, slots=True)
class CsrResult:
    """A certificate signing request and the key it was made with."""

    role: CertRole
    owner: str
    csr_pem: bytes
    key_path: Path
    new_key: bool
    """Whether the key was generated for this request (it waits at ``key_path``)."""


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What importing a certificate did."""

    role: CertRole
    owner: str
    serial: str
    cert_path: Path
    cert_backup: Path | None
    """Where the certificate it replaced was kept (None: there was none)."""
    key_backup: Path | None
    """Where the key it replaced was kept, when the certificate was for a new key."""
    installed: bool
    """In use by the running node now (a signing certificate)."""
    restart_required: bool
    """An authentication certificate: in use after the node restarts."""
    ocsp: OcspState
    """The status fetched for it on installation (``none`` when not installed)."""


@dataclass(frozen=True, slots=True)
class _KeySlot:
    """A key the configuration names and the certificate file that goes with it."""

    role: CertRole
    owner: NodeId | MemberId
    key: Path
    cert: Path


def _slots(config: NodeConfig) -> list[_KeySlot]:
    """The key files; a signing key in a PKCS#11 token is made and rotated on the token
    (``gateway node token init-key``), not here (docs/adr/0038)."""
    node = config.node
    slots = [_KeySlot(CertRole.AUTH, node.node_id, node.auth_key, node.auth_cert)]
    for entry in config.signing:
        if entry.key is not None:
            slots.append(
                _KeySlot(CertRole.SIGNING, MemberId.parse(entry.member), entry.key, entry.cert)
            )
    return slots


def _token_entry(config: NodeConfig, owner: NodeId | MemberId) -> str | None:
    """Where ``owner``'s signing key is, if it is in a token rather than a file."""
    for entry in config.signing:
        if entry.token is not None and MemberId.parse(entry.member) == owner:
            return entry.key_source()
    return None


# ---------------------------------------------------------------------------- listing


def list_certificates(ctx: NodeContext, now: datetime | None = None) -> list[CertificateInfo]:
    """The certificates the node uses now (authentication first), with their OCSP
    status as the node holds it; ``now`` defaults to the node's clock."""
    moment = now or ctx.clock.now()
    members = {signer.cert_ref: member for member, signer in ctx.signers.items()}
    infos = [_info(own, ctx, members, moment) for own in ctx.own_ocsp.certificates]
    return sorted(infos, key=lambda i: (i.role is not CertRole.AUTH, i.member))


def _info(
    own: OwnCertificate, ctx: NodeContext, members: dict[str, MemberId], now: datetime
) -> CertificateInfo:
    cert = own.cert
    if own.cert_ref == ctx.auth_ref:
        role, member, owner = CertRole.AUTH, ctx.id.owner, str(ctx.id)
    else:
        role = CertRole.SIGNING
        member = members.get(own.cert_ref) or member_id_of(cert)
        owner = str(member)
    if own.revoked is not None:
        state = OcspState.REVOKED
    elif own.refused is OcspFailure.UNKNOWN:
        state = OcspState.UNKNOWN
    elif own.evidence is not None:
        state = OcspState.GOOD
    else:
        state = OcspState.NONE
    evidence = own.evidence
    return CertificateInfo(
        role=role,
        member=str(member),
        owner=owner,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=f"{cert.serial_number:x}",
        sha256=fingerprint_sha256(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        days_left=(cert.not_valid_after_utc - now).total_seconds() / 86_400,
        ocsp=state,
        ocsp_age_seconds=(
            None if evidence is None else (now - evidence.this_update).total_seconds()
        ),
        ocsp_error=own.last_error,
    )


# ---------------------------------------------------------------------------- CSR


def make_csr(
    config: NodeConfig,
    owner: NodeId | MemberId,
    *,
    new_key: bool = False,
    organisation: str | None = None,
    country: str | None = None,
    passphrase: bytes | None = None,
) -> CsrResult:
    """A CSR for the node's authentication key (``owner`` is this node's id) or a
    member's signing key (a member with a ``[[signing]]`` entry).

    With ``new_key`` a key is generated: at the configured path if no key is there yet,
    otherwise beside it as ``<key>.new``, where it waits for its certificate; a key
    already waiting there is refused (``client.key.exists``), never replaced. A new key
    is encrypted with ``passphrase``, the node's key passphrase (docs/adr/0041).
    """
    slot = next((s for s in _slots(config) if s.owner == owner), None)
    in_token = _token_entry(config, owner)
    if in_token is not None:
        raise GatewayError(
            Code.KEY_NOT_FOUND,
            f"the signing key of {owner} is the {in_token}: this API makes CSRs for key "
            "files only; make a new key and its CSR on the token with gateway node token "
            "init-key",
        )
    if slot is None:
        raise GatewayError(
            Code.KEY_NOT_FOUND,
            f"this node holds no key for {owner}: it is not the node's id nor a member "
            "with a [[signing]] entry",
        )
    kind = CertKind.AUTH if slot.role is CertRole.AUTH else CertKind.SIGN
    if new_key:
        path = pending_key_path(slot.key) if slot.key.exists() else slot.key
        key = generate_key()
        try:
            write_private_key(path, key, passphrase)
        except FileExistsError as exc:
            raise GatewayError(Code.KEY_EXISTS, str(exc)) from None
    else:
        path = slot.key
        try:
            key = load_private_key(path, passphrase)
        except (OSError, ValueError) as exc:
            raise GatewayError(Code.KEY_NOT_FOUND, f"cannot use the key {path}: {exc}") from None
    csr = make_pki_csr(key, kind, owner, organisation, country=country)
    return CsrResult(
        role=slot.role,
        owner=str(owner),
        csr_pem=csr.public_bytes(serialization.Encoding.PEM),
        key_path=path,
        new_key=new_key,
    )


# ---------------------------------------------------------------------------- import


@dataclass(frozen=True, slots=True)
class _Match:
    slot: _KeySlot
    key_path: Path
    pending: bool


def _matching_key(config: NodeConfig, leaf: x509.Certificate, passphrase: bytes | None) -> _Match:
    """The held key (in use, or waiting) whose public key the certificate carries."""
    wanted = public_key_der(leaf)
    for slot in _slots(config):
        for path, pending in ((slot.key, False), (pending_key_path(slot.key), True)):
            try:
                key = load_private_key(path, passphrase)
            except (OSError, ValueError):
                continue
            if public_key_der(key) == wanted:
                return _Match(slot, path, pending)
    raise GatewayError(
        Code.CERT_NO_MATCHING_KEY,
        f"the certificate (serial {leaf.serial_number:x}) is for no key this node holds",
    )


def _usage_problem(role: CertRole, cert: x509.Certificate) -> str | None:
    """Why the certificate's key usage does not fit a key of ``role``, if it does not."""
    try:
        usage: x509.KeyUsage | None = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    try:
        extended = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        extended = set()
    if role is CertRole.SIGNING:
        if usage is None or not (usage.content_commitment and usage.digital_signature):
            return "a signing key needs a certificate for contentCommitment and digitalSignature"
        if extended & _TLS_USAGES:
            return "a signing key's certificate must not be for TLS (is this an auth certificate?)"
        return None
    if usage is None or not usage.digital_signature or not extended >= _TLS_USAGES:
        return "the authentication key needs a certificate for digitalSignature and TLS"
    return None


def _parse(pem: bytes) -> list[x509.Certificate]:
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise GatewayError(Code.CERT_INVALID, f"not a PEM certificate: {exc}") from None
    if not chain:
        raise GatewayError(Code.CERT_INVALID, "no certificate in the PEM text")
    return chain


def _check(
    chain: list[x509.Certificate], match: _Match, directory: Directory, now: datetime
) -> None:
    """The checks after the key match, in the order of the module docstring."""
    leaf, slot = chain[0], match.slot
    problem = _usage_problem(slot.role, leaf)
    if problem is not None:
        raise GatewayError(Code.CERT_WRONG_USAGE, problem)
    try:
        named = node_id_of(leaf) if slot.role is CertRole.AUTH else member_id_of(leaf)
    except CertificateError as exc:
        raise GatewayError(Code.CERT_INVALID, str(exc)) from None
    if named != slot.owner:
        raise GatewayError(
            Code.CERT_INVALID, f"the certificate names {named}, the key is {slot.owner}'s"
        )
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise GatewayError(
            Code.CERT_EXPIRED,
            f"the certificate is valid from {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} "
            f"to {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, not now",
        )
    try:
        verify_chain(leaf, chain[1:], directory.trust_roots(), now)
    except CertificateError as exc:
        raise GatewayError(Code.CERT_UNTRUSTED, str(exc)) from None
    if not match.pending:
        try:
            installed = load_certificates(slot.cert)[0]
        except (OSError, ValueError, IndexError):
            installed = None
        if installed is not None and installed == leaf:
            raise GatewayError(
                Code.CERT_ALREADY_INSTALLED,
                f"{slot.cert} already holds this certificate (serial {leaf.serial_number:x})",
            )


def _prepare_signer(
    ctx: NodeContext, chain: list[x509.Certificate], match: _Match, now: datetime
) -> tuple[Signer, OwnCertificate]:
    """The signer and own-certificate record a signing certificate will be used as,
    tested like the node's start-up does, before any file is touched."""
    member = match.slot.owner
    assert isinstance(member, MemberId)
    signer = Signer(member, load_private_key(match.key_path, ctx.key_passphrase), chain)
    try:
        tested = ctx.verifier.verify(signer.sign(b"self-test"), b"self-test", now)
    except EnvelopeError as exc:
        raise GatewayError(Code.CERT_UNTRUSTED, f"peers would refuse it: {exc.message}") from None
    if tested.signer != member:
        raise GatewayError(Code.CERT_INVALID, f"the certificate does not sign for {member}")
    try:
        own = own_certificate(f"signing certificate of {member}", chain, ctx.trust)
    except (CertificateError, ConfigError) as exc:
        raise GatewayError(Code.CERT_UNTRUSTED, str(exc)) from None
    return signer, own


def _write(
    chain: list[x509.Certificate], match: _Match, now: datetime
) -> tuple[Path | None, Path | None]:
    """Keep the old certificate (and key, for a waiting key), then write the new."""
    slot = match.slot
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    try:
        cert_backup = keep_backup(slot.cert, stamp) if slot.cert.exists() else None
        key_backup = None
        if match.pending:
            key_backup = keep_backup(slot.key, stamp) if slot.key.exists() else None
            promote_pending_key(match.key_path, slot.key)
        write_certificate_chain(slot.cert, chain)
    except OSError as exc:
        raise GatewayError(
            Code.CP_INTERNAL_ERROR, f"cannot write the certificate {slot.cert}: {exc}"
        ) from None
    return cert_backup, key_backup


async def import_certificate(
    ctx: NodeContext, pem: bytes, now: datetime | None = None
) -> ImportResult:
    """Check a certificate (PEM, the leaf first, intermediates after it) for a key the
    node holds, write it, and put a signing certificate to use at once; see the module
    docstring for the checks and what is kept."""
    moment = now or ctx.clock.now()
    chain = _parse(pem)
    match = _matching_key(ctx.config, chain[0], ctx.key_passphrase)
    _check(chain, match, ctx.directory, moment)
    slot = match.slot
    prepared = None
    if slot.role is CertRole.SIGNING:
        prepared = _prepare_signer(ctx, chain, match, moment)
    cert_backup, key_backup = _write(chain, match, moment)
    ocsp = OcspState.NONE
    if prepared is not None:
        signer, own = prepared
        await _put_to_use(ctx, signer, own)
        ocsp = _info(own, ctx, {signer.cert_ref: signer.member}, moment).ocsp
    return ImportResult(
        role=slot.role,
        owner=str(slot.owner),
        serial=f"{chain[0].serial_number:x}",
        cert_path=slot.cert,
        cert_backup=cert_backup,
        key_backup=key_backup,
        installed=prepared is not None,
        restart_required=prepared is None,
        ocsp=ocsp,
    )


async def _put_to_use(ctx: NodeContext, signer: Signer, own: OwnCertificate) -> None:
    """Its OCSP status kept fresh first, then the member's signer swapped as one dict."""
    member = signer.member
    old = ctx.signers.get(member)
    await ctx.own_ocsp.add(own)
    ctx.signers = {**ctx.signers, member: signer}
    if old is not None and old.cert_ref != signer.cert_ref:
        await ctx.own_ocsp.retire(old.cert_ref)


async def take_up_signing_files(
    ctx: NodeContext, refused: set[str], now: datetime | None = None
) -> list[MemberId]:
    """Put to use each signing certificate in the files that this process does not use:
    one another process of the node's cluster imported, or one copied to this host.

    It is checked as an import is (the key in the file signs for it, peers would accept
    it, its profile); one that fails, or a key and certificate caught between the two
    writes of an import, is left for the next call. ``refused`` holds the certificates
    already reported as unusable, so a bad file is logged once. Returns the members
    whose signer changed.
    """
    moment = now or ctx.clock.now()
    taken: list[MemberId] = []
    for slot in _slots(ctx.config):
        member = slot.owner
        if slot.role is not CertRole.SIGNING or not isinstance(member, MemberId):
            continue
        current = ctx.signers.get(member)
        try:
            chain = load_certificates(slot.cert)
        except (OSError, ValueError):
            continue  # being written, or gone: the next call sees it whole
        if not chain or (current is not None and chain[0] == current.certificate):
            continue
        try:
            signer, own = _prepare_signer(ctx, chain, _Match(slot, slot.key, False), moment)
        except (GatewayError, OSError, ValueError) as exc:
            seen = fingerprint_sha256(chain[0])
            if seen not in refused:
                refused.add(seen)
                _log.warning("%s: %s not taken up: %s", ctx.id, slot.cert, exc)
            continue
        await _put_to_use(ctx, signer, own)
        _log.warning(
            "%s: signing certificate of %s (serial %x) taken up from %s",
            ctx.id,
            member,
            chain[0].serial_number,
            slot.cert,
        )
        taken.append(member)
    return taken
