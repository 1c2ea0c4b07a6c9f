"""A new TUF root signed by key holders apart: prepare, sign one key at a time, publish.

Root keys live offline, each with a different person (``gateway central init
--root-key-dirs A B``); the server holds only the online keys (targets, snapshot,
timestamp). A new root is therefore never signed in one place:

1. ``gateway central root prepare`` (on the server) writes the next root version,
   unsigned, to a file the operator carries to each key holder;
2. ``gateway central root sign --key FILE root.json`` (on a holder's machine) adds that
   one key's signature;
3. ``gateway central root publish`` (on the server) checks with python-tuf's Metadata API
   that the signatures meet the threshold of the current root *and* of the new one (TUF's
   rule for a rotation) and only then makes it the repository's root.

Nodes follow through their TUF client, which walks every root version from their anchor
(docs/global-configuration.md, "Rotating the root keys").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.exceptions import UnverifiedSignatureError, VerificationError
from securesystemslib.signer import CryptoSigner
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, Root
from tuf.api.serialization.json import JSONSerializer

from gateway.central.repo import KeyStore, RepoError, TufRepository

__all__ = ["count_root_signatures", "prepare_root", "publish_root", "sign_root"]


def _to_bytes(md: Metadata[Any]) -> bytes:
    return md.to_bytes(JSONSerializer(compact=False))


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def prepare_root(
    repo: TufRepository,
    *,
    add_key_dirs: Sequence[Path] = (),
    remove: Sequence[str] = (),
    threshold: int | None = None,
    scheme: str = "ecdsa",
) -> Metadata[Root]:
    """The next root version, unsigned: root keys removed, new ones generated into their
    holders' directories (``add_key_dirs``, one key each), a new threshold."""
    with repo.locked():
        md: Metadata[Root] = repo.open(Root.type)
        root = md.signed
        for keyid in remove:
            try:
                root.revoke_key(keyid, Root.type)
            except ValueError as exc:
                raise RepoError(str(exc)) from None
        for directory in add_key_dirs:
            if directory == repo.keys.directory:
                raise RepoError(f"{directory} holds the online keys, not a root key")
            root.add_key(KeyStore(directory).generate(scheme).public_key, Root.type)
        if threshold is not None:
            root.roles[Root.type].threshold = threshold
        count = len(root.roles[Root.type].keyids)
        if not 1 <= root.roles[Root.type].threshold <= count:
            raise RepoError(
                f"threshold {root.roles[Root.type].threshold} impossible with {count} root key(s)"
            )
        root.version += 1
        root.expires = repo.now() + repo.expiry.root
        md.signatures.clear()
    return md


def write_prepared(md: Metadata[Root], path: Path) -> None:
    """The prepared (or partly signed) root as the file the key holders sign."""
    _write(path, _to_bytes(md))


def load_prepared(path: Path) -> Metadata[Root]:
    try:
        md = Metadata[Root].from_bytes(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise RepoError(f"{path} is not a TUF root metadata file: {exc}") from None
    if not isinstance(md.signed, Root):
        raise RepoError(f"{path} holds {md.signed.type} metadata, not a root")
    return md


def load_root_key(path: Path, passphrase: bytes | None = None) -> CryptoSigner:
    """A root key file (PKCS#8 PEM, encrypted with ``passphrase`` if it is)."""
    data = path.read_bytes()
    encrypted = b"ENCRYPTED PRIVATE KEY" in data
    if encrypted and passphrase is None:
        raise RepoError(f"{path} is encrypted: give its passphrase")
    try:
        key = load_pem_private_key(data, password=passphrase if encrypted else None)
    except (ValueError, TypeError):
        raise RepoError(
            f"{path} cannot be opened: wrong passphrase, or not a PEM private key"
        ) from None
    return CryptoSigner(key)


def sign_root(path: Path, signer: CryptoSigner) -> tuple[str, int]:
    """Add ``signer``'s signature to the root in ``path``; returns its key id and how many
    signatures the file now carries. A key of neither the new root nor (as the holder
    cannot know it here) possibly the current one is still accepted: publish counts only
    the signatures of the roots' keys."""
    md = load_prepared(path)
    keyid = signer.public_key.keyid
    if keyid in md.signatures:
        raise RepoError(f"{path} already carries the signature of key {keyid}")
    md.sign(signer, append=True)
    _write(path, _to_bytes(md))
    return keyid, len(md.signatures)


def count_root_signatures(signer_root: Root, md: Metadata[Root]) -> int:
    """How many of ``md``'s signatures are valid signatures of ``signer_root``'s root keys."""
    valid = 0
    for keyid in signer_root.roles[Root.type].keyids:
        signature = md.signatures.get(keyid)
        if signature is None:
            continue
        try:
            signer_root.keys[keyid].verify_signature(signature, md.signed_bytes)
        except (UnverifiedSignatureError, VerificationError):
            continue  # a bad signature counts as none
        valid += 1
    return valid


def publish_root(repo: TufRepository, md: Metadata[Root]) -> Root:
    """Make ``md`` the repository's root once it is the next version and signed by the
    threshold of the current root's keys and of its own; nothing is written otherwise."""
    with repo.locked():
        current = repo.root()
        new = md.signed
        if new.version != current.version + 1:
            raise RepoError(
                f"the prepared root is version {new.version}; the repository is at "
                f"{current.version}, so only version {current.version + 1} can follow"
            )
        for label, root in (("current", current), ("new", new)):
            need = root.roles[Root.type].threshold
            have = count_root_signatures(root, md)
            if have < need:
                raise RepoError(
                    f"root version {new.version} carries {have} valid signature(s) of the "
                    f"{label} root's keys and needs {need}: have more key holders run "
                    "'gateway central root sign' on it"
                )
        try:  # TUF's own check, the one nodes apply
            current.verify_delegate(Root.type, md.signed_bytes, md.signatures)
            new.verify_delegate(Root.type, md.signed_bytes, md.signatures)
        except UnsignedMetadataError as exc:
            raise RepoError(f"root version {new.version}: {exc}") from None
        repo.write_signed(Root.type, md)
    return repo.root()
