"""The configuration anchor: what a node must trust before it trusts anything else.

X-Road hands every security server a *configuration anchor* out of band; ours is the
instance's TUF root metadata plus the two URLs where the central authority publishes its
TUF repository. Everything after the anchor (newer roots, targets, the configuration
document) is checked by TUF's client against it, so the anchor is the only file an
operator must compare by hand: :func:`root_fingerprint` gives the short value to read out
over the phone.

Pure: files and bytes in and out, no network. Written by ``gateway central init`` /
``gateway central anchor``; read by the node's TUF client (``gateway.conf.tufclient``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.core.canonical import NotCanonicalError, canonical_json

ANCHOR_FILE_NAME = "anchor.json"


class ConfigurationAnchorError(ValueError):
    """The anchor file is missing fields or does not hold a TUF root."""


@dataclass(frozen=True)
class ConfigurationAnchor:
    """The instance name, where the TUF repository lives and its trusted root.

    ``root`` is the full ``root.json`` object (``signed`` and ``signatures``) exactly as
    the central authority published it; TUF's client re-verifies it on bootstrap.
    """

    instance: str
    metadata_url: str
    targets_url: str
    root: dict[str, Any]

    def root_bytes(self) -> bytes:
        """The root as bytes for ``tuf.ngclient.Updater(bootstrap=...)``."""
        return json.dumps(self.root, sort_keys=True, separators=(",", ":")).encode()

    def fingerprint(self) -> str:
        return root_fingerprint(self.root)

    def to_json(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "metadata_url": self.metadata_url,
            "targets_url": self.targets_url,
            "root": self.root,
        }

    @classmethod
    def from_json(cls, doc: Any) -> ConfigurationAnchor:
        if not isinstance(doc, dict):
            raise ConfigurationAnchorError("the anchor must be a JSON object")
        missing = {"instance", "metadata_url", "targets_url", "root"} - set(doc)
        if missing:
            raise ConfigurationAnchorError(f"the anchor lacks {sorted(missing)}")
        for name in ("instance", "metadata_url", "targets_url"):
            if not isinstance(doc[name], str) or not doc[name]:
                raise ConfigurationAnchorError(f"anchor.{name} must be a non-empty string")
        for name in ("metadata_url", "targets_url"):
            if not doc[name].startswith(("http://", "https://")):
                raise ConfigurationAnchorError(f"anchor.{name} must be an http(s) URL")
        root = doc["root"]
        if (
            not isinstance(root, dict)
            or not isinstance(root.get("signed"), dict)
            or root["signed"].get("_type") != "root"
        ):
            raise ConfigurationAnchorError("anchor.root must be a TUF root metadata object")
        return cls(
            instance=doc["instance"],
            metadata_url=_slash(doc["metadata_url"]),
            targets_url=_slash(doc["targets_url"]),
            root=root,
        )


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def root_fingerprint(root: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of the whole root object.

    Canonical so that two parties holding the same root compute the same value whatever
    white space their copies have.
    """
    try:
        return hashlib.sha256(canonical_json(root)).hexdigest()
    except NotCanonicalError as exc:
        raise ConfigurationAnchorError(f"anchor.root cannot be canonicalised: {exc}") from None


def load_anchor(path: Path) -> ConfigurationAnchor:
    """Read and check an anchor file (the signatures are TUF's job, at bootstrap)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationAnchorError(f"cannot read anchor {path}: {exc}") from None
    try:
        return parse_anchor(data)
    except ConfigurationAnchorError as exc:
        raise ConfigurationAnchorError(f"anchor {path}: {exc}") from None


def parse_anchor(data: bytes) -> ConfigurationAnchor:
    """Check the bytes of an anchor file; refuses with :class:`ConfigurationAnchorError`."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep
        raise ConfigurationAnchorError(f"not JSON: {exc}") from None
    return ConfigurationAnchor.from_json(doc)


def save_anchor(path: Path, anchor: ConfigurationAnchor) -> None:
    """Write atomically (temp file and rename) so a reader never sees half an anchor."""
    data = json.dumps(anchor.to_json(), indent=2, sort_keys=True).encode() + b"\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
