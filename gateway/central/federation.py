"""The instances this central authority federates with: their anchors, kept on disk.

X-Road's central server holds the anchors of federated instances and publishes them
with its own configuration, so its security servers can fetch and verify each foreign
instance's configuration themselves. Here each anchor is one file,
``<central dir>/federated/<INSTANCE>.json``, written by ``gateway central federate add``
(an operator's act after comparing the other instance's root fingerprint out of band,
as with any anchor) and read into every document the central builds
(``Central.build``). Files rather than database rows because an anchor is exactly the
file the other operator handed over: what is published is that file, unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

from gateway.conf.anchor import ConfigurationAnchor, load_anchor, save_anchor
from gateway.core.ids import check_part

FEDERATED_DIR = "federated"


def federated_anchors(central_dir: Path) -> tuple[ConfigurationAnchor, ...]:
    """Every federated instance's anchor, in instance order (ValueError if one is
    unreadable: a central must not publish a federation it cannot read)."""
    folder = central_dir / FEDERATED_DIR
    if not folder.is_dir():
        return ()
    return tuple(load_anchor(path) for path in sorted(folder.glob("*.json")))


def add_anchor(central_dir: Path, own_instance: str, anchor_file: Path) -> ConfigurationAnchor:
    """Keep ``anchor_file`` as a federated instance's anchor (replacing an older one of
    the same instance: a re-keyed partner hands over a new anchor)."""
    anchor = load_anchor(anchor_file)
    check_part(anchor.instance, "instance")
    if anchor.instance == own_instance:
        raise ValueError(f"{anchor_file} is this instance's own anchor ({own_instance})")
    folder = central_dir / FEDERATED_DIR
    folder.mkdir(exist_ok=True)
    save_anchor(folder / f"{anchor.instance}.json", anchor)
    return anchor


def remove_anchor(central_dir: Path, instance: str) -> None:
    """Stop federating with ``instance``."""
    check_part(instance, "instance")
    path = central_dir / FEDERATED_DIR / f"{instance}.json"
    if not path.exists():
        raise ValueError(f"this central does not federate with {instance}")
    path.unlink()


def anchor_files(central_dir: Path) -> dict[str, bytes]:
    """The anchor files as they are now, to put back if a change cannot be published."""
    folder = central_dir / FEDERATED_DIR
    return {p.name: p.read_bytes() for p in folder.glob("*.json")} if folder.is_dir() else {}


def restore_anchor_files(central_dir: Path, files: dict[str, bytes]) -> None:
    folder = central_dir / FEDERATED_DIR
    for path in folder.glob("*.json"):
        if path.name not in files:
            path.unlink()
    for name, data in files.items():
        folder.mkdir(exist_ok=True)
        tmp = folder / f"{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, folder / name)
