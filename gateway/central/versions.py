"""The configuration versions the central still serves, for operators and the console.

Read from the TUF repository itself, not the database: what nodes can fetch is what the
signed metadata names, so this is what an operator must see (serials, their targets
versions and expiry, and the root whose fingerprint every anchor pins).
"""

from __future__ import annotations

from typing import Any

from tuf.api.metadata import Metadata, Targets

from gateway.central.service import Central
from gateway.conf.anchor import root_fingerprint
from gateway.conf.globalconf import TARGET_NAME, GlobalConf
from gateway.core.encoding import format_time


def configuration_versions(central: Central) -> dict[str, Any]:
    """The kept targets versions, newest first, each with the serial of the document it
    names, and the current root's version, expiry and fingerprint."""
    repo = central.repo()
    versions: list[dict[str, Any]] = []
    with repo.locked():
        for path in repo.metadata_dir.glob(f"*.{Targets.type}.json"):
            prefix = path.name.split(".", 1)[0]
            if not prefix.isdigit():
                continue
            targets = Metadata[Targets].from_bytes(path.read_bytes()).signed
            info = targets.targets.get(TARGET_NAME)
            if info is None:
                continue
            digest = info.hashes["sha256"]
            document = repo.targets_dir / f"{digest}.{TARGET_NAME}"
            if not document.is_file():
                continue
            conf = GlobalConf.from_bytes(document.read_bytes())
            versions.append(
                {
                    "serial": conf.serial,
                    "generated": conf.generated,
                    "targets_version": targets.version,
                    "expires": format_time(targets.expires, "seconds"),
                    "sha256": digest,
                }
            )
        root = repo.root()
        root_json = repo.root_json()
        timestamp = repo.timestamp()
    versions.sort(key=lambda v: int(v["targets_version"]), reverse=True)
    return {
        "instance": central.instance,
        "root": {
            "version": root.version,
            "expires": format_time(root.expires, "seconds"),
            "sha256": root_fingerprint(root_json),
        },
        "timestamp_expires": format_time(timestamp.expires, "seconds"),
        "versions": versions,
    }
