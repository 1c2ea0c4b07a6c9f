"""An entry record read all at once reads as the field-by-field reading it stands in for.

``gateway.audit.bundle_read`` reads a well-formed entry record with a few C calls over
all its fields and leaves any record it doubts to the field-by-field checks, which
name the first bad field. Here, on a valid record and on records with one field (or
two) replaced by an arbitrary or near-miss value, the reading must be exactly the
field-by-field one: the same entry when it accepts, the same refusal when it does not,
so the quick reading accepts nothing the checks of docs/audit-bundle.md refuse.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit.bundle import EntryItem
from gateway.audit.bundle_read import _Bad, _entry, _entry_by_field, _well_formed_entry


def _record() -> dict[str, Any]:
    return {
        "type": "entry",
        "id": 7,
        "leaf_index": 6,
        "leaf_hash": "ab" * 32,
        "logged_at": "2025-06-01T08:00:00.123Z",
        "role": "provider",
        "kind": "request",
        "message_id": "m-1",
        "xroad_id": "x-1",
        "client": "DE-NRW/GOV/05974040/gewerbeamt",
        "service": "DE-NRW/GOV/05974028/melderegister/einfacheAuskunft",
        "created": "2025-06-01T08:00:00.000Z",
        "header": base64.b64encode(b'{"h":1}').decode(),
        "body": base64.b64encode(b"body!").decode(),
        "body_sha256": "cd" * 32,
        "signature": "eyJ9..c2ln",
        "cert_ref": "ef" * 32,
        "ocsp_ref": "",
        "inclusion": {"tree_size": 9, "path": ["01" * 32, "02" * 32]},
        "subjects_sha256": "12" * 32,
    }


def _reading(obj: dict[str, Any]) -> EntryItem | str:
    try:
        return _entry(obj)
    except _Bad as exc:
        return str(exc)


def _by_field(obj: dict[str, Any]) -> EntryItem | str:
    try:
        return _entry_by_field(obj, obj["inclusion"])
    except _Bad as exc:
        return str(exc)


_FIELDS = [k for k in _record() if k not in ("type", "inclusion")]
_HEXISH = st.text(alphabet="0123456789abcdefABCDEF g\xe9", min_size=0, max_size=66)
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=2**70),
    st.floats(allow_nan=False),
    _HEXISH,
    _HEXISH.map(lambda t: (t * 64)[:64]),
    st.sampled_from(["", "ab" * 32, "AB" * 32, "ab" * 31 + "a ", "ab" * 33, "ZmFrZQ", "ZmFrZQ=="]),
    st.sampled_from(["Zm9v", "Zm9v\n", " Zm9v", "Zm9=", "Zm8=", "Zm9-", "Zm9vYg==", "Zm9vYh=="]),
    st.lists(st.sampled_from(["01" * 32, "0" * 63, "AB" * 32, ""]), max_size=3),
)


def test_a_well_formed_record_is_read_at_once_as_field_by_field() -> None:
    obj = _record()
    quick = _well_formed_entry(obj, obj["inclusion"])
    assert quick is not None
    assert quick == _by_field(obj)
    assert quick.leaf_hash == bytes.fromhex("ab" * 32) and quick.body == b"body!"
    for optional in ("body", "subjects_sha256"):
        del obj[optional]
        assert _reading(obj) == _by_field(obj) == _well_formed_entry(obj, obj["inclusion"])


def test_doubtful_records_are_left_to_the_field_checks() -> None:
    # Each of these would slip through a reading that checked the fields only together.
    for changes in (
        {"subjects_sha256": None},
        {"body": None},
        {"leaf_hash": "", "ocsp_ref": ""},
        {"cert_ref": "ab" * 16, "ocsp_ref": "ab" * 48},
        {"id": True},
        {"leaf_index": -1},
        {"header": "Zm9v\n"},
    ):
        obj = {**_record(), **changes}
        assert _well_formed_entry(obj, obj["inclusion"]) is None, changes
        assert isinstance(_reading(obj), str), changes


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([*_FIELDS, "tree_size", "path"]), _VALUES),
        min_size=1,
        max_size=2,
    )
)
def test_any_record_reads_as_field_by_field(changes: list[tuple[str, Any]]) -> None:
    obj = copy.deepcopy(_record())
    for key, value in changes:
        if key in ("tree_size", "path"):
            obj["inclusion"][key] = value
        else:
            obj[key] = value
    assert _reading(obj) == _by_field(obj)
