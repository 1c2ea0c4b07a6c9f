"""Key, certificate and CSR files: where a member's, node's or CA's keys are kept today.

Private keys are created with ``O_EXCL`` at mode 0600, so there is never a moment when a
key is world-readable and an existing key is never replaced by accident: losing a CA or
node key silently is worse than an error the operator has to read. Certificates and
CSRs are public and replaced atomically, so a reader never sees half a file.

This package is the one place that reads and writes key material; ``gateway.pki``
works on the objects only (docs/adr/0016), so a later key store (a hardware token) plugs
in here without touching the certificate logic.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.core.ids import MemberId, NodeId
from gateway.fsutil import replace_atomically
from gateway.pki.ca import make_csr
from gateway.pki.keys import generate_key
from gateway.pki.profiles import CertKind, check_owner_kind
from gateway.pki.tlscert import self_signed_tls

KEY_FILE_MODE = 0o600
CERT_FILE_MODE = 0o644


ENCRYPTED_PEM_LABEL = b"ENCRYPTED PRIVATE KEY"
"""The PEM label (RFC 7468) of encrypted PKCS#8, between ``-----BEGIN`` and ``-----``."""


class KeyFileError(ValueError):
    """A private key file cannot be used: locked, wrong passphrase, or not a key. The
    message names the file and the fix, never a passphrase."""


def private_key_pem(key: ec.EllipticCurvePrivateKey, passphrase: bytes | None) -> bytes:
    """PKCS#8 PEM of ``key``: encrypted with ``passphrase`` (PBES2, AES-256-CBC, the
    library's best available), or plain when it is None (a development set-up)."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.NoEncryption()
        if passphrase is None
        else serialization.BestAvailableEncryption(passphrase)
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def write_private_key(
    path: Path, key: ec.EllipticCurvePrivateKey, passphrase: bytes | None = None
) -> None:
    """Write ``key`` as PKCS#8 PEM, encrypted with ``passphrase`` if given, to a new file
    that only the owner can read.

    The mode is set on the open descriptor as well as at creation so a permissive umask
    cannot loosen it, and a half-written file is removed rather than left as a broken key.
    """
    pem = private_key_pem(key, passphrase)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, KEY_FILE_MODE)
    except FileExistsError:
        raise FileExistsError(
            f"refusing to overwrite existing private key file {path}; "
            "move it away first if you really mean to replace it"
        ) from None
    try:
        os.fchmod(fd, KEY_FILE_MODE)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _encrypted_pem(data: bytes) -> bool:
    """Encrypted PKCS#8, or OpenSSL's older encrypted PEM (``Proc-Type: 4,ENCRYPTED``)."""
    pkcs8 = data.lstrip().startswith(b"-----BEGIN " + ENCRYPTED_PEM_LABEL + b"-----")
    return pkcs8 or b"Proc-Type: 4,ENCRYPTED" in data


def is_encrypted_key_file(path: Path) -> bool:
    """Whether ``path`` holds an encrypted key (read from its PEM headers only)."""
    return _encrypted_pem(path.read_bytes())


def load_private_key(path: Path, passphrase: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """Load a PEM key, opening an encrypted one with ``passphrase``; anything but an EC
    key is refused by name. Whether a plain key is acceptable is the caller's rule (a
    node's start-up checks, :func:`gateway.node.startup.unlock_keys`)."""
    data = path.read_bytes()
    encrypted = _encrypted_pem(data)
    if encrypted and passphrase is None:
        raise KeyFileError(
            f"{path} is an encrypted private key and no passphrase was given "
            "(key_passphrase_file in node.toml, GATEWAY_KEY_PASSPHRASE, or a terminal)"
        )
    try:
        key = serialization.load_pem_private_key(data, password=passphrase if encrypted else None)
    except (ValueError, TypeError) as exc:
        if encrypted:
            # The library's text is not repeated: it is generic, and no part of a
            # passphrase may end up in a message.
            raise KeyFileError(
                f"the passphrase does not open the private key {path} (wrong passphrase?)"
            ) from None
        raise KeyFileError(f"{path} is not a PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(
            f"{path} holds a {type(key).__name__}; the gateway uses EC (P-256) keys only"
        )
    return key


def encrypt_key_file(path: Path, passphrase: bytes) -> int:
    """Encrypt the plain key file ``path`` in place with ``passphrase``, keeping 0600.

    The encrypted key is written to a new 0600 file beside it and renamed over the old
    one, so a reader sees one or the other, never a mix. No backup copy is made; the old
    bytes are overwritten with zeros before the rename unless another hard link (a
    ``.bak`` kept by a key rotation) shares them. Returns that number of other links, so
    the caller can say that they still hold the plain key.
    """
    if is_encrypted_key_file(path):
        raise KeyFileError(f"{path} is already encrypted")
    key = load_private_key(path)
    fresh = path.with_name(f".{path.name}.encrypting")
    fresh.unlink(missing_ok=True)
    write_private_key(fresh, key, passphrase)
    others = os.stat(path).st_nlink - 1
    if others == 0:
        size = os.stat(path).st_size
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, bytes(size))
            os.fsync(fd)
        finally:
            os.close(fd)
    promote_pending_key(fresh, path)
    return others


def _write_public_pem(path: Path, pem: bytes) -> None:
    """Replace ``path`` atomically so a reader never sees a truncated certificate."""
    replace_atomically(path, pem, CERT_FILE_MODE)


def write_certificate(path: Path, cert: x509.Certificate) -> None:
    """Write one certificate as PEM, replacing any previous file at ``path``."""
    _write_public_pem(path, cert.public_bytes(serialization.Encoding.PEM))


def write_certificate_chain(path: Path, chain: Sequence[x509.Certificate]) -> None:
    """Write a leaf and its intermediates as one PEM file, replacing ``path`` atomically."""
    _write_public_pem(path, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))


PENDING_KEY_SUFFIX = ".new"
"""A second key generated for an owner that has one (a rotation) waits beside the key in
use under this suffix until its certificate is imported."""


def pending_key_path(key: Path) -> Path:
    """Where a new key for the owner of ``key`` waits for its certificate."""
    return key.with_name(key.name + PENDING_KEY_SUFFIX)


def keep_backup(path: Path, stamp: str) -> Path:
    """Keep the current ``path`` as ``<name>.<stamp>.bak`` (a hard link, so a key keeps
    its mode and no byte is copied) before ``path`` is replaced; an existing backup is
    never overwritten (a counter is added instead)."""
    for n in range(1000):
        backup = path.with_name(f"{path.name}.{stamp}{'' if n == 0 else f'-{n}'}.bak")
        try:
            os.link(path, backup)
        except FileExistsError:
            continue
        return backup
    raise FileExistsError(f"no free backup name for {path}")


def promote_pending_key(pending: Path, key: Path) -> None:
    """Make the waiting key ``pending`` the key at ``key``; the caller has kept the old
    one with :func:`keep_backup` first, so no key is ever lost."""
    os.replace(pending, key)
    dir_fd = os.open(key.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_certificate(path: Path) -> x509.Certificate:
    """Load a PEM file that must hold exactly one certificate.

    A bundle where one certificate is expected is refused, not cut to its first entry:
    silently picking one would hide a mixed-up file until a handshake fails.
    """
    certs = load_certificates(path)
    if len(certs) != 1:
        raise ValueError(f"{path} holds {len(certs)} certificates; expected exactly one")
    return certs[0]


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Load a PEM bundle (for example a set of trusted roots) in file order."""
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except ValueError as exc:
        raise ValueError(f"{path} is not a PEM certificate file: {exc}") from None


def write_csr(path: Path, csr: x509.CertificateSigningRequest) -> None:
    """Write a CSR as PEM, replacing any previous file at ``path``."""
    _write_public_pem(path, csr.public_bytes(serialization.Encoding.PEM))


def load_csr(path: Path) -> x509.CertificateSigningRequest:
    """Load a PEM CSR; its signature is checked at issuance, not here."""
    try:
        return x509.load_pem_x509_csr(path.read_bytes())
    except ValueError as exc:
        raise ValueError(f"{path} is not a PEM certificate signing request: {exc}") from None


def new_self_signed(
    cert_out: Path,
    key_out: Path,
    common_name: str,
    now: datetime,
    *,
    days: int,
    hosts: Sequence[str] = (),
    server: bool = False,
    client: bool = False,
    passphrase: bytes | None = None,
) -> x509.Certificate:
    """Generate a key (0600, never overwritten, encrypted with ``passphrase`` if given)
    and a self-signed TLS certificate: the node's internal TLS certificate (``server``)
    or an information system's (``client``)."""
    key = generate_key()
    cert = self_signed_tls(
        key, common_name, now, days=days, hosts=hosts, server=server, client=client
    )
    write_private_key(key_out, key, passphrase)
    write_certificate(cert_out, cert)
    return cert


def new_key_and_csr(
    kind: CertKind,
    owner: NodeId | MemberId,
    key_out: Path,
    csr_out: Path,
    organisation: str | None = None,
    *,
    country: str | None = None,
    passphrase: bytes | None = None,
) -> x509.CertificateSigningRequest:
    """Generate a key (0600, never overwritten, encrypted with ``passphrase`` if given)
    and a CSR for ``owner``."""
    check_owner_kind(kind, owner)
    key = generate_key()
    csr = make_csr(key, kind, owner, organisation, country=country)
    write_private_key(key_out, key, passphrase)
    write_csr(csr_out, csr)
    return csr
