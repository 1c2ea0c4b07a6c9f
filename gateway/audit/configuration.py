"""The global configuration snapshot an audit bundle carries, and its offline check.

Which CAs, TSAs, nodes and members a log's signatures were judged against is part of
the evidence: an auditor asks "was this signer a registered member, was that TSA the
instance's?". The node keeps the configuration it applied last, exactly as signed, in
its global configuration state directory (``gateway.conf.tufclient``): the TUF metadata
(``root``, ``timestamp``, ``snapshot``, ``targets``) and the document ``globalconf.json``.
Export copies those files into the bundle unchanged; :func:`verify_snapshot` checks,
with python-tuf and without any network, that the metadata is signed by the keys the
root names (thresholds included), that ``snapshot`` and ``targets`` are the versions
and hashes ``timestamp`` and ``snapshot`` name, and that the document is the target
``targets`` lists. Expiry is not held against a snapshot: it is historical evidence.

What it cannot say by itself is that the root is the instance's: compare
``root_sha256`` (printed by ``gateway audit verify``) with the fingerprint the central
authority's operator publishes (``gateway node check`` prints the same for a node).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gateway.conf.globalconf import TARGET_NAME, GlobalConf, GlobalConfError

__all__ = ["SNAPSHOT_FILES", "ConfigSnapshot", "SnapshotError", "read_snapshot", "verify_snapshot"]

SNAPSHOT_FILES: Final = (
    "metadata/root.json",
    "metadata/timestamp.json",
    "metadata/snapshot.json",
    "metadata/targets.json",
    "globalconf.json",
)


class SnapshotError(ValueError):
    """The configuration snapshot is incomplete or does not verify."""


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    instance: str
    serial: int
    targets_version: int
    root_version: int
    root_sha256: str
    """SHA-256 of the root metadata file, to compare with the instance's anchor."""


def read_snapshot(state_dir: Path) -> list[tuple[str, bytes]]:
    """The snapshot files of a node's global configuration state directory."""
    missing = [name for name in SNAPSHOT_FILES if not (state_dir / name).is_file()]
    if missing:
        raise SnapshotError(f"{state_dir} lacks {', '.join(missing)}")
    return [(name, (state_dir / name).read_bytes()) for name in SNAPSHOT_FILES]


def verify_snapshot(files: dict[str, bytes]) -> ConfigSnapshot:
    """Check the snapshot offline (see the module docstring); raise ``SnapshotError``."""
    from tuf.api.exceptions import RepositoryError
    from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

    if sorted(files) != sorted(SNAPSHOT_FILES):
        raise SnapshotError(f"a snapshot is exactly {', '.join(SNAPSHOT_FILES)}")
    try:
        root = Metadata[Root].from_bytes(files["metadata/root.json"])
        timestamp = Metadata[Timestamp].from_bytes(files["metadata/timestamp.json"])
        snapshot = Metadata[Snapshot].from_bytes(files["metadata/snapshot.json"])
        targets = Metadata[Targets].from_bytes(files["metadata/targets.json"])
        root.verify_delegate(Root.type, root)
        for role, md in ((Timestamp.type, timestamp), (Snapshot.type, snapshot)):
            root.verify_delegate(role, md)
        root.verify_delegate(Targets.type, targets)
        meta = timestamp.signed.snapshot_meta
        meta.verify_length_and_hashes(files["metadata/snapshot.json"])
        if meta.version != snapshot.signed.version:
            raise SnapshotError("timestamp names another snapshot version")
        targets_meta = snapshot.signed.meta.get("targets.json")
        if targets_meta is None or targets_meta.version != targets.signed.version:
            raise SnapshotError("snapshot names another targets version")
        if targets_meta.length is not None or targets_meta.hashes is not None:
            targets_meta.verify_length_and_hashes(files["metadata/targets.json"])
        target = targets.signed.targets.get(TARGET_NAME)
        if target is None:
            raise SnapshotError(f"targets lists no {TARGET_NAME}")
        target.verify_length_and_hashes(files["globalconf.json"])
    except SnapshotError:
        raise
    except (RepositoryError, ValueError, KeyError, TypeError) as exc:
        # RepositoryError: unsigned or below threshold, a length or hash mismatch, or
        # metadata that does not parse (python-tuf's DeserializationError).
        raise SnapshotError(f"{type(exc).__name__}: {exc}") from None
    try:
        conf = GlobalConf.from_bytes(files["globalconf.json"])
    except GlobalConfError as exc:
        raise SnapshotError(f"globalconf.json: {exc}") from None
    return ConfigSnapshot(
        conf.instance,
        conf.serial,
        targets.signed.version,
        root.signed.version,
        hashlib.sha256(files["metadata/root.json"]).hexdigest(),
    )
