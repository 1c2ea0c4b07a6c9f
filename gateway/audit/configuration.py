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

A bundle exported from a node that keeps a configuration history
(``gateway.messagelog.confhistory``) carries every version in force over its entries, each
with its serial and the time the node applied it. :func:`verify_versions` checks each
like a single snapshot, and the sequence: serials and applied-times strictly
increasing, one instance, and a changed root signed by the previous root's keys
(TUF root rotation, checked by python-tuf's ``verify_delegate``).
:func:`select_versions` and :func:`in_force_runs` say which versions cover which
entries: the one applied last at or before an entry's ``logged_at``.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, TypeVar

from gateway.conf.globalconf import TARGET_NAME, GlobalConf, GlobalConfError
from gateway.conf.tufclient import SIGNED_FILES
from gateway.core.encoding import format_time

__all__ = [
    "SNAPSHOT_FILES",
    "ConfigSnapshot",
    "InForce",
    "InForceRun",
    "SnapshotError",
    "in_force_runs",
    "merge_runs",
    "parse_applied_at",
    "read_snapshot",
    "select_versions",
    "verify_snapshot",
    "verify_versions",
]

SNAPSHOT_FILES: Final = SIGNED_FILES

Moment = TypeVar("Moment", datetime, str)
"""A point in time: a ``datetime``, or its canonical RFC 3339 text (UTC, ms), whose
string order is time order (the verifier compares the text, cheaper than parsing)."""


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


@dataclass(frozen=True, slots=True)
class InForce:
    """One verified configuration version of a bundle and when the node applied it."""

    snapshot: ConfigSnapshot
    applied_at: datetime


@dataclass(frozen=True, slots=True)
class InForceRun:
    """Consecutive entries (bundle order) logged under one version: ``version`` indexes
    the bundle's versions, ``None`` for entries logged before the first one carried."""

    version: int | None
    first_id: int
    last_id: int
    count: int


def parse_applied_at(text: str) -> datetime:
    """An ``applied_at``: RFC 3339 UTC with milliseconds, one spelling per instant."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SnapshotError(f"applied_at {text!r} is not RFC 3339") from None
    if moment.utcoffset() is None or format_time(moment) != text:
        raise SnapshotError(f"applied_at {text!r} is not RFC 3339 UTC with milliseconds")
    return moment


def verify_versions(versions: Sequence[tuple[int, str, dict[str, bytes]]]) -> tuple[InForce, ...]:
    """Check a bundle's configuration history offline: each ``(serial, applied_at,
    files)`` as :func:`verify_snapshot` does, its claimed serial against the signed
    document, and the sequence (see the module docstring). Raise ``SnapshotError``
    naming the version."""
    checked: list[InForce] = []
    for position, (serial, applied_at, files) in enumerate(versions):
        where = f"version {position} (serial {serial})"
        try:
            snapshot = verify_snapshot(files)
            applied = parse_applied_at(applied_at)
        except SnapshotError as exc:
            raise SnapshotError(f"{where}: {exc}") from None
        if snapshot.serial != serial:
            raise SnapshotError(f"{where}: the signed document has serial {snapshot.serial}")
        if checked:
            before = checked[-1]
            if snapshot.instance != before.snapshot.instance:
                raise SnapshotError(f"{where}: instance {snapshot.instance} after another one")
            if serial <= before.snapshot.serial:
                raise SnapshotError(f"{where}: serials must increase")
            if applied <= before.applied_at:
                raise SnapshotError(f"{where}: applied-times must increase")
            try:
                _check_rotation(
                    versions[position - 1][2]["metadata/root.json"], files["metadata/root.json"]
                )
            except SnapshotError as exc:
                raise SnapshotError(f"{where}: {exc}") from None
        checked.append(InForce(snapshot, applied))
    return tuple(checked)


def _check_rotation(old_bytes: bytes, new_bytes: bytes) -> None:
    """A changed root must be the previous root's successor, signed by its root keys.

    Only consecutive root versions link: ngclient keeps the newest root only, so the
    intermediate roots of a multi-step rotation are not there to carry.
    """
    if old_bytes == new_bytes:
        return
    from tuf.api.exceptions import RepositoryError
    from tuf.api.metadata import Metadata, Root

    try:
        old = Metadata[Root].from_bytes(old_bytes)
        new = Metadata[Root].from_bytes(new_bytes)
        if new.signed.version != old.signed.version + 1:
            raise SnapshotError(
                f"root v{new.signed.version} follows root v{old.signed.version}: only a "
                "rotation to the next version can be checked"
            )
        old.verify_delegate(Root.type, new)
    except SnapshotError:
        raise
    except (RepositoryError, ValueError, KeyError, TypeError) as exc:
        raise SnapshotError(f"root rotation: {type(exc).__name__}: {exc}") from None


def select_versions(
    applied: Sequence[datetime], first: datetime | None, last: datetime | None
) -> slice:
    """Which of the versions applied at ``applied`` (increasing) were in force over
    entries logged from ``first`` to ``last``: the one applied last at or before
    ``first``, and every one applied after it up to ``last``. With no entries, the
    version applied last (what the node runs now)."""
    if first is None or last is None:
        return slice(max(len(applied) - 1, 0), len(applied))
    start = max(bisect.bisect_right(applied, first) - 1, 0)
    stop = bisect.bisect_right(applied, last)
    return slice(start, max(stop, start))


def in_force_runs(
    applied: Sequence[Moment], entries: Iterable[tuple[int, Moment]]
) -> list[InForceRun]:
    """For entries ``(id, logged_at)`` in bundle order, the runs of consecutive entries
    under one version: the version applied last at or before each ``logged_at``."""
    # Once per entry: only a bisect and a comparison; a run is built where it ends.
    runs: list[InForceRun] = []
    bisect_right = bisect.bisect_right
    current = -2  # no run yet
    first = last = count = 0
    for entry_id, logged_at in entries:
        index = bisect_right(applied, logged_at) - 1
        if index != current:
            if count:
                runs.append(InForceRun(current if current >= 0 else None, first, last, count))
            current, first, count = index, entry_id, 0
        last = entry_id
        count += 1
    if count:
        runs.append(InForceRun(current if current >= 0 else None, first, last, count))
    return runs


def merge_runs(runs: Iterable[InForceRun]) -> list[InForceRun]:
    """Join the runs of consecutive chunks where a chunk boundary split one."""
    merged: list[InForceRun] = []
    for run in runs:
        if merged and merged[-1].version == run.version:
            last = merged[-1]
            merged[-1] = InForceRun(run.version, last.first_id, run.last_id, last.count + run.count)
        else:
            merged.append(run)
    return merged
