"""The audit bundle format: one JSON Lines file, one self-contained record per line.

Why JSON Lines and not a ZIP: every piece stays in a standard encoding a third-party
tool reads after one ``jq``/``base64 -d`` (DER certificates, OCSP responses and RFC 3161
tokens in base64, the JWS in compact form, the tree-head document as its exact bytes),
the file is written and verified as a stream, and damage stays local: a changed byte
spoils one line, so the verifier names the entry it belongs to instead of reporting a
corrupt archive. docs/audit-bundle.md describes every field.

Pure: this module holds the records and writes them (``encode_bundle``); reading them
back, strictly, is ``gateway.audit.bundle_read``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.core.logtree import LoggedEntry

__all__ = [
    "FORMAT",
    "Bundle",
    "BundleFormatError",
    "CertificateItem",
    "ConfigItem",
    "ConfigVersion",
    "CosignItem",
    "EntryItem",
    "HeadItem",
    "Manifest",
    "OcspItem",
    "SignedItem",
    "encode_bundle",
    "encode_record",
    "leaf_ranges",
]

FORMAT: Final = "gateway-audit-bundle/v1"


class BundleFormatError(ValueError):
    """A line that is not a well-formed record; ``line`` is 1-based, ``entry_id`` if known."""

    def __init__(self, line: int, detail: str, entry_id: int | None = None) -> None:
        where = f"line {line}" + (f" (entry {entry_id})" if entry_id is not None else "")
        super().__init__(f"{where}: {detail}")
        self.line = line
        self.detail = detail
        self.entry_id = entry_id


@dataclass(frozen=True, slots=True)
class Manifest:
    """What the bundle claims to hold; the verifier checks the records against it."""

    node: str
    exported_at: str
    selection: dict[str, Any]
    log_size: int
    tree_heads: tuple[int, ...]
    """The sizes of the tree heads in the bundle, in order."""
    entries: tuple[tuple[int, int], ...]
    """The entries' leaf indexes as inclusive ranges, in order."""
    certificates: int
    ocsp_responses: int
    signed_heads: tuple[int, ...] = ()
    """The sizes of the tree heads that carry the member key's signature."""
    cosignatures: int = 0
    """How many witness co-signatures the tree heads carry in all."""
    configuration: tuple[str, ...] = ()
    """The names of the configuration snapshot's files, in order (none: no snapshot).
    A bundle from before configuration history; one with it lists ``configurations``."""
    configurations: tuple[ConfigVersion, ...] = ()
    """The configuration versions in force over the entries, in the order applied."""


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    """What the manifest claims of one carried configuration version."""

    serial: int
    applied_at: str
    """When the node applied it (RFC 3339 UTC, ms; the log clock, like ``logged_at``)."""
    files: tuple[str, ...]
    """The names of its ``configuration`` records, in order."""


@dataclass(frozen=True, slots=True)
class ConfigItem:
    """One file of a global configuration version (``gateway.audit.configuration``)."""

    name: str
    data: bytes
    version: int | None = None
    """Index into the manifest's ``configurations``; None in a single-snapshot bundle."""


@dataclass(frozen=True, slots=True)
class SignedItem:
    """The log owner's signed tree head (``gateway.core.treehead``) for one tree head."""

    document: bytes
    signature: str
    cert_ref: str
    ocsp_ref: str


@dataclass(frozen=True, slots=True)
class CosignItem:
    """A witness's co-signature over the same signed tree head document."""

    witness: str
    cosignature: str
    cert_ref: str
    ocsp_ref: str


@dataclass(frozen=True, slots=True)
class CertificateItem:
    """A DER certificate. ``role``: ``signer`` (a JWS's x5c), ``tsa``, or ``ca`` (copied
    for convenience at export; the verifier trusts only the anchor's)."""

    ref: str
    role: str
    der: bytes


@dataclass(frozen=True, slots=True)
class OcspItem:
    """A DER OCSPResponse that entries refer to by ``ref`` (SHA-256 hex of ``der``)."""

    ref: str
    der: bytes


@dataclass(frozen=True, slots=True)
class HeadItem:
    """A timestamped tree head and the consistency proof from the previous one."""

    tree_size: int
    root_hash: bytes
    gen_time: str
    document: bytes
    token: bytes
    tsa_cert_ref: str
    consistency_from: int | None
    """Size of the previous tree head in the bundle; None for the first."""
    consistency: tuple[bytes, ...]
    signed: SignedItem | None = None
    cosignatures: tuple[CosignItem, ...] = ()


@dataclass(frozen=True, slots=True)
class EntryItem:
    """A log entry as stored, with the inclusion proof into its first covering head."""

    id: int
    leaf_index: int
    leaf_hash: bytes
    logged_at: str
    role: str
    kind: str
    message_id: str
    xroad_id: str
    client: str
    service: str
    created: str
    header: bytes
    body: bytes | None
    """None when exported without bodies; ``body_sha256`` then stands in for it."""
    body_sha256: str
    signature: str
    cert_ref: str
    ocsp_ref: str
    proof_size: int
    """Tree size of the head the inclusion proof leads to."""
    inclusion: tuple[bytes, ...]
    subjects_sha256: str | None = None
    """The entry's salted commitment to its data subjects (version 2 leaf); None for an
    entry logged before commitments existed (version 1 leaf). Neither the subjects nor
    the salt are exported: the auditor needs the digest to recompute the leaf only."""

    def logged_entry(self) -> LoggedEntry:
        """The fields its leaf is computed from (the leaf commits to ``body_sha256``)."""
        return LoggedEntry(
            role=self.role,
            kind=self.kind,
            message_id=self.message_id,
            xroad_id=self.xroad_id,
            client=self.client,
            service=self.service,
            created=self.created,
            logged_at=self.logged_at,
            header=self.header,
            body=self.body if self.body is not None else b"",
            signature=self.signature,
            cert_ref=self.cert_ref,
            ocsp_ref=self.ocsp_ref,
            body_digest=self.body_sha256,
            subjects_sha256=self.subjects_sha256,
        )


@dataclass(slots=True)
class Bundle:
    manifest: Manifest
    certificates: list[CertificateItem] = field(default_factory=list)
    ocsp: list[OcspItem] = field(default_factory=list)
    configuration: list[ConfigItem] = field(default_factory=list)
    heads: list[HeadItem] = field(default_factory=list)
    entries: list[EntryItem] = field(default_factory=list)


def leaf_ranges(indexes: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Collapse increasing leaf indexes into inclusive ranges (a full log is one range)."""
    ranges: list[list[int]] = []
    for i in indexes:
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    return tuple((a, b) for a, b in ranges)


# -- encoding ------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _record(
    item: Manifest | CertificateItem | OcspItem | ConfigItem | HeadItem | EntryItem,
) -> dict[str, Any]:
    if isinstance(item, Manifest):
        manifest: dict[str, Any] = {
            "type": "manifest",
            "format": FORMAT,
            "node": item.node,
            "exported_at": item.exported_at,
            "selection": item.selection,
            "log_size": item.log_size,
            "tree_heads": list(item.tree_heads),
            "entries": [list(r) for r in item.entries],
            "certificates": item.certificates,
            "ocsp_responses": item.ocsp_responses,
            "signed_heads": list(item.signed_heads),
            "cosignatures": item.cosignatures,
            "configuration": list(item.configuration),
        }
        if item.configurations:
            manifest["configurations"] = [
                {"serial": v.serial, "applied_at": v.applied_at, "files": list(v.files)}
                for v in item.configurations
            ]
        return manifest
    if isinstance(item, CertificateItem):
        return {"type": "certificate", "ref": item.ref, "role": item.role, "der": _b64(item.der)}
    if isinstance(item, OcspItem):
        return {"type": "ocsp", "ref": item.ref, "der": _b64(item.der)}
    if isinstance(item, ConfigItem):
        config: dict[str, Any] = {
            "type": "configuration",
            "name": item.name,
            "data": _b64(item.data),
        }
        if item.version is not None:
            config["version"] = item.version
        return config
    if isinstance(item, HeadItem):
        head: dict[str, Any] = {
            "type": "tree_head",
            "tree_size": item.tree_size,
            "root_hash": item.root_hash.hex(),
            "gen_time": item.gen_time,
            "document": item.document.decode("ascii"),
            "token": _b64(item.token),
            "tsa_cert_ref": item.tsa_cert_ref,
            "consistency": None
            if item.consistency_from is None
            else {"from_size": item.consistency_from, "proof": [p.hex() for p in item.consistency]},
        }
        if item.signed is not None:
            head["signed"] = {
                "document": item.signed.document.decode("ascii"),
                "signature": item.signed.signature,
                "cert_ref": item.signed.cert_ref,
                "ocsp_ref": item.signed.ocsp_ref,
            }
        if item.cosignatures:
            head["cosignatures"] = [
                {
                    "witness": c.witness,
                    "cosignature": c.cosignature,
                    "cert_ref": c.cert_ref,
                    "ocsp_ref": c.ocsp_ref,
                }
                for c in item.cosignatures
            ]
        return head
    record: dict[str, Any] = {
        "type": "entry",
        "id": item.id,
        "leaf_index": item.leaf_index,
        "leaf_hash": item.leaf_hash.hex(),
        "logged_at": item.logged_at,
        "role": item.role,
        "kind": item.kind,
        "message_id": item.message_id,
        "xroad_id": item.xroad_id,
        "client": item.client,
        "service": item.service,
        "created": item.created,
        "header": _b64(item.header),
        "body_sha256": item.body_sha256,
        "signature": item.signature,
        "cert_ref": item.cert_ref,
        "ocsp_ref": item.ocsp_ref,
        "inclusion": {"tree_size": item.proof_size, "path": [p.hex() for p in item.inclusion]},
    }
    if item.body is not None:
        record["body"] = _b64(item.body)
    if item.subjects_sha256 is not None:
        record["subjects_sha256"] = item.subjects_sha256
    return record


def encode_record(
    item: Manifest | CertificateItem | OcspItem | ConfigItem | HeadItem | EntryItem,
) -> bytes:
    """One line: compact JSON with sorted keys, ASCII only, ending in a newline."""
    return json.dumps(_record(item), sort_keys=True, separators=(",", ":")).encode() + b"\n"


def encode_bundle(bundle: Bundle) -> Iterator[bytes]:
    """The bundle's lines in their fixed order: manifest, certificates, OCSP, heads, entries."""
    yield encode_record(bundle.manifest)
    for group in (
        bundle.certificates,
        bundle.ocsp,
        bundle.configuration,
        bundle.heads,
        bundle.entries,
    ):
        for item in group:
            yield encode_record(item)
