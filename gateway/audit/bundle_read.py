"""Reading an audit bundle back: strict parsing of its JSON Lines records.

The verifier must see exactly one reading of every piece of evidence, so decoding is
strict (one spelling per value: canonical base64, lowercase hex, no unknown or missing
fields, records in the order ``gateway.audit.bundle.encode_bundle`` writes them) and
the first bad line is refused with its number and, where it can be found, its entry id
(:class:`~gateway.audit.bundle.BundleFormatError`). It lives apart from the records
and their encoder because it is the verifier's untrusted-input boundary: everything
here assumes a hostile file.

Pure: bytes in, records out.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import operator
import re
import struct
from collections.abc import Iterable, Sequence
from typing import Any, Final

from gateway.audit.bundle import (
    FORMAT,
    Bundle,
    BundleFormatError,
    CertificateItem,
    ConfigItem,
    ConfigVersion,
    CosignItem,
    EntryItem,
    HeadItem,
    Manifest,
    OcspItem,
    SignedItem,
)

__all__ = ["json_loads", "parse_entry_line", "read_bundle"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
# At most 18 digits: a longer id is no entry's, and int() refuses over 4300 of them.
_ENTRY_ID = re.compile(rb'"id":\s*(\d{1,18})(?!\d)')


class _Bad(Exception):
    pass


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise _Bad(f"{key} must be a string")
    return value


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Bad(f"{key} must be a non-negative integer")
    return value


def _bytes(obj: dict[str, Any], key: str) -> bytes:
    text = _str(obj, key)
    # The lenient decoder skips foreign characters, so only a re-encoding equal to the
    # text proves the one spelling encode writes; it spares the strict decoder's regex
    # over every header, and any other text goes the strict way for its error.
    if text.isascii():
        try:
            data = binascii.a2b_base64(text)
        except binascii.Error:
            pass
        else:
            if binascii.b2a_base64(data, newline=False) == text.encode("ascii"):
                return data
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _Bad(f"{key} is not base64") from None
    if base64.b64encode(data).decode("ascii") != text:  # the one spelling encode writes
        raise _Bad(f"{key} is not canonical base64")
    return data


def _hex(text: object, what: str) -> bytes:
    if not isinstance(text, str) or not _HEX64.fullmatch(text):
        raise _Bad(f"{what} must be 64 lowercase hex digits")
    return bytes.fromhex(text)


def _ref(obj: dict[str, Any], key: str, *, empty: bool = False) -> str:
    text = _str(obj, key)
    if not (empty and text == "") and not _HEX64.fullmatch(text):
        raise _Bad(f"{key} must be 64 lowercase hex digits")
    return text


def _path(value: object, what: str) -> tuple[bytes, ...]:
    """A list of hashes in lowercase hex, checked and decoded in one pass (a bundle has
    log2(n) of them per entry, so per-element checks in Python showed up in profiles:
    ``join`` refuses any element that is not a string, the lengths are counted in C)."""
    if not isinstance(value, list):
        raise _Bad(f"{what} must be a list of 64-digit hex hashes")
    try:
        joined = "".join(value)
    except TypeError:
        raise _Bad(f"{what} must be a list of 64-digit hex hashes") from None
    if value and set(map(len, value)) != {64}:
        raise _Bad(f"{what} must be a list of 64-digit hex hashes")
    # fromhex also takes upper case and spaces; only lowercase hex spells itself again.
    try:
        data = bytes.fromhex(joined)
    except ValueError:
        data = b""
    if data.hex() != joined:
        raise _Bad(f"{what} must be lowercase hex")
    return _split_hashes(len(data) // 32).unpack(data)


@functools.lru_cache(maxsize=64)
def _split_hashes(count: int) -> struct.Struct:
    """Cuts ``count`` 32-byte hashes apart in one C call (a path has log2(n) of them)."""
    return struct.Struct("32s" * count)


def _keys(obj: dict[str, Any], required: set[str], optional: Sequence[str] = ()) -> None:
    extra = set(obj) - required - set(optional)
    missing = required - set(obj)
    if extra or missing:
        raise _Bad(f"unexpected fields {sorted(extra)}, missing {sorted(missing)}")


def _manifest(obj: dict[str, Any]) -> Manifest:
    _keys(
        obj,
        {
            "type",
            "format",
            "node",
            "exported_at",
            "selection",
            "log_size",
            "tree_heads",
            "entries",
            "certificates",
            "ocsp_responses",
        },
        ("signed_heads", "cosignatures", "configuration", "configurations"),
    )
    if obj["format"] != FORMAT:
        raise _Bad(f"format {obj['format']!r} is not {FORMAT}")
    selection, heads, entries = obj["selection"], obj["tree_heads"], obj["entries"]
    if not isinstance(selection, dict):
        raise _Bad("selection must be an object")
    if not isinstance(heads, list) or not all(
        isinstance(h, int) and not isinstance(h, bool) for h in heads
    ):
        raise _Bad("tree_heads must list tree sizes")
    ranges: list[tuple[int, int]] = []
    if not isinstance(entries, list):
        raise _Bad("entries must list leaf index ranges")
    for r in entries:
        if (
            not isinstance(r, list)
            or len(r) != 2
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in r)
        ):
            raise _Bad("entries must list [first, last] leaf index ranges")
        ranges.append((r[0], r[1]))
    return Manifest(
        node=_str(obj, "node"),
        exported_at=_str(obj, "exported_at"),
        selection=selection,
        log_size=_int(obj, "log_size"),
        tree_heads=tuple(heads),
        entries=tuple(ranges),
        certificates=_int(obj, "certificates"),
        ocsp_responses=_int(obj, "ocsp_responses"),
        signed_heads=_sizes(obj.get("signed_heads", []), "signed_heads"),
        cosignatures=_int(obj, "cosignatures") if "cosignatures" in obj else 0,
        configuration=_names(obj.get("configuration", [])),
        configurations=_versions(obj["configurations"]) if "configurations" in obj else (),
    )


def _versions(value: object) -> tuple[ConfigVersion, ...]:
    if not isinstance(value, list) or not value:
        raise _Bad("configurations must be a non-empty list")
    versions = []
    for v in value:
        if not isinstance(v, dict):
            raise _Bad("a configuration version must be an object")
        _keys(v, {"serial", "applied_at", "files"})
        versions.append(ConfigVersion(_int(v, "serial"), _str(v, "applied_at"), _names(v["files"])))
    return tuple(versions)


def _names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise _Bad("configuration must list file names")
    return tuple(value)


def _sizes(value: object, what: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(h, int) and not isinstance(h, bool) for h in value
    ):
        raise _Bad(f"{what} must list tree sizes")
    return tuple(value)


def _signed(value: object) -> SignedItem:
    if not isinstance(value, dict):
        raise _Bad("signed must be an object")
    _keys(value, {"document", "signature", "cert_ref", "ocsp_ref"})
    document = _str(value, "document")
    if not document.isascii():
        raise _Bad("the signed document must be ASCII")
    return SignedItem(
        document.encode("ascii"),
        _str(value, "signature"),
        _ref(value, "cert_ref"),
        _ref(value, "ocsp_ref", empty=True),
    )


def _cosignatures(value: object) -> tuple[CosignItem, ...]:
    if not isinstance(value, list) or not value:
        raise _Bad("cosignatures must be a non-empty list")
    items = []
    for c in value:
        if not isinstance(c, dict):
            raise _Bad("a co-signature must be an object")
        _keys(c, {"witness", "cosignature", "cert_ref", "ocsp_ref"})
        items.append(
            CosignItem(
                _str(c, "witness"),
                _str(c, "cosignature"),
                _ref(c, "cert_ref"),
                _ref(c, "ocsp_ref", empty=True),
            )
        )
    return tuple(items)


def _head(obj: dict[str, Any]) -> HeadItem:
    _keys(
        obj,
        {
            "type",
            "tree_size",
            "root_hash",
            "gen_time",
            "document",
            "token",
            "tsa_cert_ref",
            "consistency",
        },
        ("signed", "cosignatures"),
    )
    document = _str(obj, "document")
    if not document.isascii():
        raise _Bad("document must be ASCII")
    consistency = obj["consistency"]
    start: int | None = None
    proof: tuple[bytes, ...] = ()
    if consistency is not None:
        if not isinstance(consistency, dict) or set(consistency) != {"from_size", "proof"}:
            raise _Bad("consistency must be null or {from_size, proof}")
        start = _int(consistency, "from_size")
        proof = _path(consistency["proof"], "consistency proof")
    return HeadItem(
        tree_size=_int(obj, "tree_size"),
        root_hash=_hex(obj["root_hash"], "root_hash"),
        gen_time=_str(obj, "gen_time"),
        document=document.encode("ascii"),
        token=_bytes(obj, "token"),
        tsa_cert_ref=_ref(obj, "tsa_cert_ref"),
        consistency_from=start,
        consistency=proof,
        signed=_signed(obj["signed"]) if "signed" in obj else None,
        cosignatures=_cosignatures(obj["cosignatures"]) if "cosignatures" in obj else (),
    )


_ENTRY_KEYS: Final = {
    "type",
    "id",
    "leaf_index",
    "leaf_hash",
    "logged_at",
    "role",
    "kind",
    "message_id",
    "xroad_id",
    "client",
    "service",
    "created",
    "header",
    "body_sha256",
    "signature",
    "cert_ref",
    "ocsp_ref",
    "inclusion",
}


_ENTRY_ALL_KEYS: Final = _ENTRY_KEYS | {"body", "subjects_sha256"}


_ENTRY_TEXTS: Final = operator.itemgetter(
    "logged_at",
    "role",
    "kind",
    "message_id",
    "xroad_id",
    "client",
    "service",
    "created",
    "signature",
    "header",
)
_ENTRY_DIGESTS: Final = operator.itemgetter("leaf_hash", "body_sha256", "cert_ref")


def _well_formed_entry(obj: dict[str, Any], inclusion: dict[str, Any]) -> EntryItem | None:
    """The entry of a record whose every field is well formed, or None.

    The same checks as the field-by-field path below, done for all fields at once
    with C calls (one type test per text, one hex round trip for all digests, one
    base64 round trip per blob), which made up half of the verifier's cost per entry
    besides its signature. None on the first doubt: the field-by-field path then
    names the first bad field exactly as it always has.
    """
    entry_id, leaf_index, size = obj["id"], obj["leaf_index"], inclusion["tree_size"]
    if not (
        type(entry_id) is int
        and type(leaf_index) is int
        and type(size) is int
        and entry_id >= 0
        and leaf_index >= 0
        and size >= 0
    ):
        return None
    texts = _ENTRY_TEXTS(obj)
    digests = _ENTRY_DIGESTS(obj)
    ocsp_ref, subjects = obj["ocsp_ref"], obj.get("subjects_sha256")
    if subjects is None and "subjects_sha256" in obj:
        return None
    hexes = (*digests, ocsp_ref) if subjects is None else (*digests, ocsp_ref, subjects)
    if set(map(type, texts + hexes)) != {str}:
        return None
    # Every digest has 64 digits; only ocsp_ref may be empty.
    if set(map(len, digests)) != {64} or len(ocsp_ref) not in (0, 64):
        return None
    if subjects is not None and len(subjects) != 64:
        return None
    joined = "".join(hexes)
    try:
        decoded = bytes.fromhex(joined)
    except ValueError:
        return None
    if decoded.hex() != joined:  # fromhex also takes upper case and spaces
        return None
    header = _canonical_base64(texts[9])
    body = obj.get("body")
    if body is not None:
        body = _canonical_base64(body)
    if header is None or ("body" in obj and body is None):
        return None
    try:
        path = _path(inclusion["path"], "inclusion path")
    except _Bad:
        return None
    logged_at, role, kind, message_id, xroad_id, client, service, created, signature = texts[:9]
    return EntryItem(
        entry_id,
        leaf_index,
        decoded[:32],
        logged_at,
        role,
        kind,
        message_id,
        xroad_id,
        client,
        service,
        created,
        header,
        body,
        digests[1],
        signature,
        digests[2],
        ocsp_ref,
        size,
        path,
        subjects,
    )


def _canonical_base64(text: object) -> bytes | None:
    """The bytes of ``text`` if it is the one base64 spelling ``_bytes`` accepts by its
    quick test; None for anything else (``_bytes`` then decides and names the fault)."""
    if type(text) is not str or not text.isascii():
        return None
    try:
        data = binascii.a2b_base64(text)
    except binascii.Error:
        return None
    return data if binascii.b2a_base64(data, newline=False) == text.encode("ascii") else None


def _entry(obj: dict[str, Any]) -> EntryItem:
    if not _ENTRY_KEYS <= obj.keys() <= _ENTRY_ALL_KEYS:
        _keys(obj, _ENTRY_KEYS, ("body", "subjects_sha256"))
    inclusion = obj["inclusion"]
    if not isinstance(inclusion, dict) or set(inclusion) != {"tree_size", "path"}:
        raise _Bad("inclusion must be {tree_size, path}")
    return _well_formed_entry(obj, inclusion) or _entry_by_field(obj, inclusion)


def _entry_by_field(obj: dict[str, Any], inclusion: dict[str, Any]) -> EntryItem:
    """Each field checked in turn: the first bad one is the refusal's."""
    # Positional, in EntryItem's field order: keywords cost a frozen dataclass of 20
    # fields four times as much to build, once per entry of every bundle verified.
    return EntryItem(
        _int(obj, "id"),
        _int(obj, "leaf_index"),
        _hex(obj["leaf_hash"], "leaf_hash"),
        _str(obj, "logged_at"),
        _str(obj, "role"),
        _str(obj, "kind"),
        _str(obj, "message_id"),
        _str(obj, "xroad_id"),
        _str(obj, "client"),
        _str(obj, "service"),
        _str(obj, "created"),
        _bytes(obj, "header"),
        _bytes(obj, "body") if "body" in obj else None,
        _ref(obj, "body_sha256"),
        _str(obj, "signature"),
        _ref(obj, "cert_ref"),
        _ref(obj, "ocsp_ref", empty=True),
        _int(inclusion, "tree_size"),
        _path(inclusion["path"], "inclusion path"),
        _ref(obj, "subjects_sha256") if "subjects_sha256" in obj else None,
    )


_DECODE_JSON: Final = json.JSONDecoder().decode


def json_loads(data: bytes) -> Any:
    """``json.loads(data)``: bytes that open with ``{`` (no byte order mark) and no NUL
    after it are the UTF-8 its encoding detection picks, decoded as it decodes them,
    without its layers per call (twice per entry: its line and its signed header)."""
    if data[:1] == b"{" and len(data) >= 2 and data[1]:
        return _DECODE_JSON(data.decode("utf-8", "surrogatepass"))
    return json.loads(data)


def parse_entry_line(raw: bytes, number: int) -> EntryItem:
    """One entry record (line ``number``), for readers that split a bundle into chunks."""
    try:
        obj = json_loads(raw)
        if not isinstance(obj, dict) or obj.get("type") != "entry":
            raise _Bad("an entry record is expected here")
        return _entry(obj)
    except (_Bad, ValueError, UnicodeDecodeError, RecursionError) as exc:
        found = _ENTRY_ID.search(raw) if b'"type":"entry"' in raw else None
        raise BundleFormatError(number, str(exc), int(found.group(1)) if found else None) from None


_ORDER: Final = {"certificate": 1, "ocsp": 2, "configuration": 3, "tree_head": 4, "entry": 5}


def read_bundle(lines: Iterable[bytes]) -> Bundle:
    """Parse a bundle's lines; raise :class:`BundleFormatError` at the first bad one.

    Records must come in the order :func:`encode_bundle` writes them, manifest first, so
    a reader can stream them and a reordered file is refused as such.
    """
    bundle: Bundle | None = None
    stage = 0
    number = 0
    for number, raw in enumerate(lines, start=1):
        entry_id: int | None = None
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict):
                raise _Bad("not a JSON object")
            kind = obj.get("type")
            if kind == "entry":
                entry_id = obj["id"] if isinstance(obj.get("id"), int) else None
            if bundle is None:
                if kind != "manifest":
                    raise _Bad("the first line must be the manifest")
                bundle = Bundle(_manifest(obj))
                continue
            order = _ORDER.get(str(kind))
            if order is None:
                raise _Bad(f"unknown record type {kind!r}")
            if order < stage:
                raise _Bad(f"a {kind} record after a later kind of record")
            stage = order
            if kind == "certificate":
                _keys(obj, {"type", "ref", "role", "der"})
                bundle.certificates.append(
                    CertificateItem(_ref(obj, "ref"), _str(obj, "role"), _bytes(obj, "der"))
                )
            elif kind == "ocsp":
                _keys(obj, {"type", "ref", "der"})
                bundle.ocsp.append(OcspItem(_ref(obj, "ref"), _bytes(obj, "der")))
            elif kind == "configuration":
                _keys(obj, {"type", "name", "data"}, ("version",))
                bundle.configuration.append(
                    ConfigItem(
                        _str(obj, "name"),
                        _bytes(obj, "data"),
                        _int(obj, "version") if "version" in obj else None,
                    )
                )
            elif kind == "tree_head":
                bundle.heads.append(_head(obj))
            else:
                bundle.entries.append(_entry(obj))
        except (_Bad, ValueError, UnicodeDecodeError, RecursionError) as exc:
            if entry_id is None:
                found = _ENTRY_ID.search(raw) if b'"type":"entry"' in raw else None
                entry_id = int(found.group(1)) if found else None
            raise BundleFormatError(number, str(exc), entry_id) from None
    if bundle is None:
        raise BundleFormatError(number + 1, "the bundle is empty")
    return bundle
