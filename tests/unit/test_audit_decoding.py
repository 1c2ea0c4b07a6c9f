"""The verifier's quick decoders give exactly the strict readings they stand in for.

The offline verifier reads base64, hex paths, the signed header's JSON, the JWS
signature and each entry's leaf through shortcuts that skip a regex or an object per
entry (``gateway.audit.bundle_read``, ``gateway.audit.entries``). Each is compared here
with the strict reading of docs/audit-bundle.md on arbitrary and near-miss inputs: the
same bytes when it accepts, and the same refusal, with the same message, when it does
not, so no check of a bundle is weakened by them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from itertools import accumulate
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import entries
from gateway.audit.bundle import EntryItem
from gateway.audit.bundle_read import _Bad, _bytes, _path, json_loads
from gateway.audit.parallel import _line_ends
from gateway.core.encoding import EncodingError, b64url_decode
from gateway.core.logtree import entry_leaf
from gateway.core.merkle import leaf_hash

_B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n\xe9"


def _strict_bytes(text: str) -> bytes | str:
    """docs/audit-bundle.md's base64: standard alphabet, padded, one spelling."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return "header is not base64"
    if base64.b64encode(data).decode("ascii") != text:
        return "header is not canonical base64"
    return data


def _outcome(read: Any, *args: Any) -> Any:
    try:
        return read(*args)
    except _Bad as exc:
        return str(exc)
    except EncodingError as exc:
        return ("EncodingError", str(exc))


def _near_misses(data: bytes) -> list[str]:
    """Canonical base64 of ``data`` and spellings one step away from it."""
    text = base64.b64encode(data).decode("ascii")
    misses = [text, text.rstrip("="), text + "=", " " + text, text + "\n", text.upper()]
    misses.append(text.replace("+", "-").replace("/", "_"))
    if text.endswith("=") and len(text) > 4:
        # the unused low bits of the last character set: decodes to the same bytes
        last = text.rstrip("=")
        i = _B64_CHARS.index(last[-1])
        misses.append(last[:-1] + _B64_CHARS[(i + 1) % 64] + text[len(last) :])
    return misses


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.text(alphabet=_B64_CHARS, max_size=24))
def test_base64_fields_read_as_the_strict_decoder(data: bytes, noise: str) -> None:
    for text in [*_near_misses(data), noise]:
        assert _outcome(_bytes, {"header": text}, "header") == _strict_bytes(text), text


def _strict_path(value: object) -> tuple[bytes, ...] | str:
    if not isinstance(value, list) or not all(isinstance(p, str) and len(p) == 64 for p in value):
        return "inclusion path must be a list of 64-digit hex hashes"
    if not all(c in "0123456789abcdef" for p in value for c in p):
        return "inclusion path must be lowercase hex"
    return tuple(bytes.fromhex(p) for p in value)


_HASH_TEXT = st.one_of(
    st.binary(min_size=32, max_size=32).map(bytes.hex),
    st.binary(min_size=32, max_size=32).map(lambda b: b.hex().upper()),
    st.text(alphabet="0123456789abcdefABCDEF \n", min_size=62, max_size=66),
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.lists(_HASH_TEXT, max_size=5),
        st.lists(st.one_of(_HASH_TEXT, st.integers(), st.none()), max_size=3),
        st.text(max_size=3),
    )
)
def test_hash_paths_read_as_the_strict_decoder(value: object) -> None:
    assert _outcome(_path, value, "inclusion path") == _strict_path(value)


def test_a_path_of_one_short_and_one_long_hash_is_refused() -> None:
    """128 hex digits in all, as two hashes would be, but not 64 each."""
    value = ["ab" * 31 + "a", "ab" * 32 + "b"]
    assert _outcome(_path, value, "p") == "p must be a list of 64-digit hex hashes"


_URL_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/= \xe9"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=70), st.text(alphabet=_URL_CHARS, max_size=90))
def test_jws_signatures_read_as_b64url_decode(data: bytes, noise: str) -> None:
    text = base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
    misses = [text, text + "=", text + "==", text.replace("-", "+"), text + "A", noise]
    if len(text) % 4 in (2, 3):
        i = _URL_CHARS.index(text[-1])
        misses.append(text[:-1] + _URL_CHARS[(i + 1) % 64])
    for spelling in misses:
        assert _outcome(entries._signature_bytes, spelling) == _outcome(b64url_decode, spelling)


@pytest.mark.parametrize(
    "data",
    [
        b'{"type":"request","id":"x"}',
        '{"a":"\u00e9\u20ac"}'.encode(),
        '{"a":1}'.encode("utf-16"),
        '{"a":1}'.encode("utf-16-le"),
        '{"a":1}'.encode("utf-32-be"),
        '\ufeff{"a":1}'.encode(),
        b'{"a":"\xed\xa0\x80"}',
        b"[1]",
        b"1",
        b"",
        b"{",
        b'{"a":1} x',
    ],
)
def test_signed_headers_parse_as_json_loads(data: bytes) -> None:
    def reading(loads: Any) -> Any:
        try:
            return ("value", loads(data))
        except ValueError as exc:
            return ("refused", type(exc).__name__)

    assert reading(json_loads) == reading(json.loads)


_TEXT = st.text(max_size=12)
_HEX = st.binary(min_size=32, max_size=32).map(bytes.hex)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(_TEXT, min_size=9, max_size=9),
    st.binary(max_size=64),
    st.one_of(st.none(), st.binary(max_size=16)),
    st.lists(_HEX, min_size=3, max_size=3),
    st.one_of(st.none(), _HEX),
)
def test_the_leaf_is_the_logged_entrys_leaf(
    texts: list[str], header: bytes, body: bytes | None, refs: list[str], subjects: str | None
) -> None:
    role, kind, message_id, xroad_id, client, service, created, logged_at, signature = texts
    e = EntryItem(
        1,
        0,
        b"\0" * 32,
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
        hashlib.sha256(body or b"").hexdigest(),
        signature,
        refs[0],
        refs[1] if refs[2] < refs[1] else "",
        8,
        (),
        subjects,
    )
    try:
        expected = leaf_hash(entry_leaf(e.logged_entry()))
    except UnicodeEncodeError:  # a lone surrogate: neither reading accepts it
        with pytest.raises(UnicodeEncodeError):
            entries._leaf_hash_of(e)
        return
    assert entries._leaf_hash_of(e) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from([b"a", b"\n", b"\r", b"\r\n", b'{"type":"entry"}', b'"type":"manifest"']),
        max_size=12,
    )
)
def test_a_bundle_is_cut_where_splitlines_cuts_it(pieces: list[bytes]) -> None:
    """The main process finds the lines' ends without splitting; the workers split each
    chunk, so the ends must be ``splitlines``'s, and the first entry line its."""
    data = b"".join(pieces)
    lines = data.splitlines(keepends=True)
    first, ends = _line_ends(data)
    assert ends == list(accumulate(map(len, lines)))
    assert first == next(
        (i for i, line in enumerate(lines) if b'"type":"entry"' in line), len(lines)
    )
