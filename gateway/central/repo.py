"""Publishing the global configuration as a TUF repository on the file system.

The layout under ``repo/`` is exactly what python-tuf's ``ngclient`` fetches, so the web
app only serves it as static files and a configuration proxy can mirror it with ``rsync``:

- ``metadata/N.root.json`` for every root version (plus ``root.json``, the latest);
- ``metadata/N.targets.json``, ``metadata/N.snapshot.json`` (consistent snapshots) and
  ``metadata/timestamp.json``;
- ``targets/<sha256>.globalconf.json``: every published document under its hash.

Versions, expiry and signatures are managed by python-tuf's ``Repository`` helper
(``edit``/``do_snapshot``/``do_timestamp``); thresholds are checked with
``Root.verify_delegate`` after signing, so a repository never publishes metadata that
TUF's own client would refuse. A file lock serialises writers across processes (the
server's scheduler and an offline ``rotate-root``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    load_pem_private_key,
)
from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer
from tuf.repository import Repository

from gateway.keys.tuftoken import TokenKeyring

ROLES = (Root.type, Targets.type, Snapshot.type, Timestamp.type)
KEY_SCHEMES = ("ecdsa", "ed25519")
DEFAULT_KEEP_VERSIONS = 10
"""How many consistent-snapshot versions of targets and snapshot metadata (and the
documents they name) stay on disk. A client in the middle of a refresh fetches the
snapshot the timestamp it just read names, then the targets version that snapshot
names, then the document; keeping several versions lets it finish even if the central
publishes a few times meanwhile. Root versions are never pruned: a client that was
offline must walk every root version to follow rotations."""


class RepoError(ValueError):
    """The repository cannot do what was asked (missing key, threshold too high, ...)."""


@dataclass(frozen=True)
class Expiry:
    """How long each role's metadata stays valid after it is signed.

    Timestamp is short so a node notices within minutes that it is cut off from fresh
    configuration (freeze attack); the scheduler re-signs it every third of this.
    """

    root: timedelta = timedelta(days=365)
    targets: timedelta = timedelta(days=7)
    snapshot: timedelta = timedelta(days=1)
    timestamp: timedelta = timedelta(seconds=600)

    def of(self, role: str) -> timedelta:
        value: timedelta = getattr(self, role)
        return value


class KeyStore:
    """Private TUF keys as PKCS#8 PEM files ``<keyid>.pem`` (0600) in one directory, and,
    with a ``token``, the keys in the central's online token (new keys are then made
    there, never as files; docs/adr/0053).

    Which key serves which role is recorded only in the root metadata; the store just
    holds keys, so a key removed from a role stays available to sign the rotation that
    removes it.
    """

    def __init__(
        self, directory: Path, token: TokenKeyring | None = None, passphrase: bytes | None = None
    ) -> None:
        self.directory = directory
        self.token = token
        self.passphrase = passphrase
        """Encrypts the files ``generate`` writes and opens encrypted ones (docs/adr/0053)."""

    def generate(self, scheme: str = "ecdsa") -> Signer:
        if self.token is not None:
            if scheme != "ecdsa":
                raise RepoError(
                    f"the token {self.token.ref.token!r} holds ECDSA P-256 keys, not {scheme!r}"
                )
            return self.token.generate()
        if scheme == "ecdsa":
            signer = CryptoSigner.generate_ecdsa()
        elif scheme == "ed25519":
            signer = CryptoSigner.generate_ed25519()
        else:
            raise RepoError(f"unknown key scheme {scheme!r}; use one of {KEY_SCHEMES}")
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.directory / f"{signer.public_key.keyid}.pem"
        data = signer.private_bytes
        if self.passphrase is not None:
            key = load_pem_private_key(data, password=None)
            data = key.private_bytes(
                Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(self.passphrase)
            )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return signer

    def signers(self) -> dict[str, Signer]:
        result: dict[str, Signer] = {}
        if self.directory.is_dir():
            for path in sorted(self.directory.glob("*.pem")):
                data = path.read_bytes()
                encrypted = b"ENCRYPTED PRIVATE KEY" in data
                if encrypted and self.passphrase is None:
                    raise RepoError(
                        f"{path} is encrypted and no passphrase was given "
                        "(--key-passphrase-file, GATEWAY_KEY_PASSPHRASE, or a terminal)"
                    )
                try:
                    key = load_pem_private_key(data, self.passphrase if encrypted else None)
                except (ValueError, TypeError):
                    raise RepoError(
                        f"{path} cannot be opened: wrong passphrase, or not a PEM private key"
                    ) from None
                signer = CryptoSigner(key)
                result[signer.public_key.keyid] = signer
        if self.token is not None:
            result.update(self.token.signers())
        return result

    def describe(self) -> str:
        where = str(self.directory)
        if self.token is not None:
            where += f" and the token {self.token.ref.token!r}"
        return where


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class TufRepository(Repository):
    """python-tuf's ``Repository`` over ``repo/metadata`` and ``repo/targets``."""

    def __init__(
        self,
        repo_dir: Path,
        keys: KeyStore,
        expiry: Expiry | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        keep_versions: int = DEFAULT_KEEP_VERSIONS,
    ) -> None:
        if keep_versions < 1:
            raise RepoError("at least the current version must be kept")
        self.keep_versions = keep_versions
        self.metadata_dir = repo_dir / "metadata"
        self.targets_dir = repo_dir / "targets"
        self.keys = keys
        self.expiry = expiry or Expiry()
        self.now = now
        self._lock_path = repo_dir / ".lock"
        self._offline: dict[str, Signer] = {}
        """Root keys generated into their holders' directories at ``initialise``: they
        sign root version 1 and are never read from the server's key store."""

    # --- storage -------------------------------------------------------------------------

    def _path(self, role: str) -> Path:
        return self.metadata_dir / f"{role}.json"

    def exists(self) -> bool:
        return self._path(Timestamp.type).exists()

    def open(self, role: str) -> Metadata[Any]:
        path = self._path(role)
        if path.exists():
            return Metadata.from_bytes(path.read_bytes())
        initial: Root | Targets | Snapshot | Timestamp
        if role == Root.type:
            initial = Root(consistent_snapshot=True)
        elif role == Targets.type:
            initial = Targets()
        elif role == Snapshot.type:
            initial = Snapshot()
        elif role == Timestamp.type:
            initial = Timestamp()
        else:
            raise RepoError(f"no such role {role!r}")
        md: Metadata[Any] = Metadata(initial)
        md.signed.version = 0  # close() bumps it to the first valid version, 1
        return md

    def close(self, role: str, md: Metadata[Any]) -> None:
        md.signed.version += 1
        md.signed.expires = self.now() + self.expiry.of(role)
        md.signatures.clear()
        new_root = md.signed if isinstance(md.signed, Root) else self.root()
        keyids = set(new_root.roles[role].keyids)
        old_root: Root | None = None
        if role == Root.type and self._path(Root.type).exists():
            old_root = self.root()
            keyids |= set(old_root.roles[Root.type].keyids)
        signers = {**self.keys.signers(), **self._offline}
        for keyid in sorted(keyids):
            if keyid in signers:
                md.sign(signers[keyid], append=True)
        # TUF's own threshold check, before anything is written.
        try:
            new_root.verify_delegate(role, md.signed_bytes, md.signatures)
            if old_root is not None:
                old_root.verify_delegate(Root.type, md.signed_bytes, md.signatures)
        except UnsignedMetadataError as exc:
            raise RepoError(
                f"{exc}: the key store {self.keys.describe()} does not hold enough of the "
                f"{role} role's keys (root keys kept apart sign a new root through "
                "'gateway central root prepare', 'root sign' and 'root publish')"
            ) from None
        self.write_signed(role, md)

    def write_signed(self, role: str, md: Metadata[Any]) -> None:
        """Write signed metadata as the role's current version (and, but for the
        timestamp, under its version number); the caller has checked the signatures."""
        data = md.to_bytes(JSONSerializer(compact=False))
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        if role != Timestamp.type:
            _write_atomic(self.metadata_dir / f"{md.signed.version}.{role}.json", data)
        _write_atomic(self._path(role), data)

    @property
    def targets_infos(self) -> dict[str, MetaFile]:
        return {f"{Targets.type}.json": MetaFile(self.targets().version)}

    @property
    def snapshot_info(self) -> MetaFile:
        return MetaFile(self.snapshot().version)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across processes: one writer at a time."""
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # --- operations ----------------------------------------------------------------------

    def initialise(
        self,
        root_keys: int = 1,
        root_threshold: int = 1,
        scheme: str = "ecdsa",
        root_key_dirs: Sequence[Path] = (),
    ) -> None:
        """Generate every role's keys and sign version 1 of each role (nothing published).

        With ``root_key_dirs``, one root key is written into each of them, for a
        different holder, instead of into the server's key store: root keys then live
        offline, and a new root is signed through the ceremony of
        :mod:`gateway.central.rootceremony` (docs/adr/0041).
        """
        if self._path(Root.type).exists():
            raise RepoError(f"{self.metadata_dir} already holds a repository")
        if root_key_dirs:
            if len(set(root_key_dirs)) != len(root_key_dirs):
                raise RepoError("each root key needs a directory of its own")
            if self.keys.directory in root_key_dirs:
                raise RepoError(f"{self.keys.directory} holds the online keys, not a root key")
            root_keys = len(root_key_dirs)
        if not 1 <= root_threshold <= root_keys:
            raise RepoError("the root threshold must be between 1 and the number of root keys")
        try:
            with self.locked(), self.edit_root() as root:
                for directory in root_key_dirs:
                    signer = KeyStore(directory).generate(scheme)
                    self._offline[signer.public_key.keyid] = signer
                    root.add_key(signer.public_key, Root.type)
                for _ in range(root_keys - len(root_key_dirs)):
                    root.add_key(self.keys.generate(scheme).public_key, Root.type)
                root.roles[Root.type].threshold = root_threshold
                for role in (Targets.type, Snapshot.type, Timestamp.type):
                    root.add_key(self.keys.generate(scheme).public_key, role)
        finally:
            self._offline.clear()

    def publish(
        self, name: str, data: bytes, *, supersedes: Callable[[bytes], bool] | None = None
    ) -> bool:
        """Make ``data`` the target ``name``: new targets, snapshot and timestamp.

        With ``supersedes``, the target published now is read under the writer lock and
        ``data`` goes out only if ``supersedes(current)`` says it is newer; returns
        whether it was published. Two writers that committed in one order may reach
        this lock in the other; the later document already holds the earlier one's
        change, so the earlier one is simply not published after it.
        """
        digest = hashlib.sha256(data).hexdigest()
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        with self.locked():
            if supersedes is not None and self._path(Targets.type).exists():
                info = self.targets().targets.get(name)
                if info is not None:
                    current = self.targets_dir / f"{info.hashes['sha256']}.{name}"
                    if not supersedes(current.read_bytes()):
                        return False
            _write_atomic(self.targets_dir / f"{digest}.{name}", data)
            with self.edit_targets() as targets:
                targets.targets[name] = TargetFile.from_data(name, data, ["sha256"])
            self.do_snapshot()
            self.do_timestamp()
            self.prune()
        return True

    def prune(self) -> list[str]:
        """Delete targets and snapshot versions older than the newest ``keep_versions``
        and every document no kept targets version names; returns what was deleted.

        Runs under the writer lock, after a publication; the current versions and all
        root versions always stay.
        """
        removed: list[Path] = []
        kept_targets: list[Path] = []
        for role, current in (
            (Targets.type, self.targets().version),
            (Snapshot.type, self.snapshot().version),
        ):
            for path in self.metadata_dir.glob(f"*.{role}.json"):
                prefix = path.name.split(".", 1)[0]
                if not prefix.isdigit():
                    continue
                if int(prefix) <= current - self.keep_versions:
                    removed.append(path)
                elif role == Targets.type:
                    kept_targets.append(path)
        named: set[str] = set()
        for path in kept_targets:
            for info in Metadata[Targets].from_bytes(path.read_bytes()).signed.targets.values():
                named |= {f"{digest}.{info.path}" for digest in info.hashes.values()}
        if self.targets_dir.is_dir():
            removed += [
                p
                for p in self.targets_dir.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.name not in named
            ]
        for path in removed:
            path.unlink(missing_ok=True)
        return sorted(p.name for p in removed)

    def refresh(self) -> None:
        """Re-sign what is due: always timestamp; targets and snapshot past half their life.

        Called by the server's scheduler every third of the timestamp expiry, so a node
        that stays online never sees expired metadata.
        """
        with self.locked():
            now = self.now()
            targets = self.targets()
            if targets.expires - now < self.expiry.targets / 2:
                with self.edit_targets():
                    pass
            if self.snapshot().expires - now < self.expiry.snapshot / 2:
                self.do_snapshot(force=True)
            self.do_timestamp(force=True)

    def timestamp_due_in(self, period: timedelta) -> timedelta:
        """How long until the timestamp is due for re-signing (zero or less: now).

        Due once it is ``period`` old (the scheduler's period), and at the latest when it
        expires. The signing time is read back from the file (expiry minus the configured
        lifetime), so a server started after a stop learns at once that the timestamp it
        finds is due or already expired, instead of serving it until its first round.
        """
        expires = self.timestamp().expires
        due = min(expires - self.expiry.timestamp + period, expires)
        return due - self.now()

    def rotate_root(
        self,
        add: int = 0,
        remove: Sequence[str] = (),
        threshold: int | None = None,
        scheme: str = "ecdsa",
    ) -> Root:
        """Sign a new root version with keys added or removed and/or a new threshold.

        ``close`` signs with every available key of the old and the new root role and
        checks both thresholds (TUF's rule for root rotation) before writing.
        """
        with self.locked(), self.edit_root() as root:
            for keyid in remove:
                try:
                    root.revoke_key(keyid, Root.type)
                except ValueError as exc:
                    raise RepoError(str(exc)) from None
            for _ in range(add):
                root.add_key(self.keys.generate(scheme).public_key, Root.type)
            if threshold is not None:
                root.roles[Root.type].threshold = threshold
            count = len(root.roles[Root.type].keyids)
            if not 1 <= root.roles[Root.type].threshold <= count:
                raise RepoError(
                    f"threshold {root.roles[Root.type].threshold} impossible with {count} key(s)"
                )
        return self.root()

    def root_json(self, version: int | None = None) -> dict[str, object]:
        """A root version (default: the latest) as a JSON object, for the anchor."""
        path = (
            self._path(Root.type)
            if version is None
            else self.metadata_dir / f"{version}.{Root.type}.json"
        )
        doc: dict[str, object] = json.loads(path.read_bytes())
        return doc
