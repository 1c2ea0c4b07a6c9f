"""An admin record's canonical bytes: what the node signs and its log's leaf commits to."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.core.adminrecord import (
    ADMIN_RECORD_TYPE,
    AdminRecord,
    AdminRecordError,
    admin_message_id,
)
from gateway.core.roles import ApiRole, key_actor

AT = datetime(2026, 5, 4, 9, 30, 0, 123456, tzinfo=UTC)


def grant(**changes: object) -> AdminRecord:
    fields: dict[str, object] = {
        "at": AT,
        "actor": key_actor("a1b2c3d4e5f6", "anna"),
        "role": ApiRole.SERVICE_ADMINISTRATOR.value,
        "action": "access.grant",
        "target": "DE-NRW/GOV/05974028/melderegister/einfacheAuskunft",
        "before": None,
        "after": {"subjects": ["DE-NRW/GOV/05974040/gewerbeamt"], "limit": 3},
    }
    fields.update(changes)
    return AdminRecord(**fields)  # type: ignore[arg-type]


def test_the_bytes_are_canonical_json_with_every_field() -> None:
    data = grant().to_bytes()
    assert data == (
        b'{"action":"access.grant","actor":"key:a1b2c3d4e5f6:anna",'
        b'"after":{"limit":3,"subjects":["DE-NRW/GOV/05974040/gewerbeamt"]},'
        b'"at":"2026-05-04T09:30:00.123Z","before":null,"role":"service_administrator",'
        b'"target":"DE-NRW/GOV/05974028/melderegister/einfacheAuskunft",'
        b'"type":"gateway-admin-record/v1"}'
    )
    assert json.loads(data)["type"] == ADMIN_RECORD_TYPE


def test_a_record_reads_back_equal_to_the_one_written() -> None:
    record = grant(before={"subjects": []}, after=None)
    assert AdminRecord.from_bytes(record.to_bytes()) == record
    # kept to the millisecond in UTC, so the equality holds for any input time
    east = AT.astimezone(timezone(timedelta(hours=2)))
    assert grant(at=east).at == datetime(2026, 5, 4, 9, 30, 0, 123000, tzinfo=UTC)
    assert grant(at=east).created == "2026-05-04T09:30:00.123Z"


def test_the_message_id_is_bound_to_the_bytes() -> None:
    one, other = grant().to_bytes(), grant(target="other").to_bytes()
    assert admin_message_id(one) == admin_message_id(one)
    assert admin_message_id(one) != admin_message_id(other)
    assert admin_message_id(one).startswith("admin-")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"at": datetime(2026, 5, 4, 9, 30)}, "timezone-aware"),
        ({"actor": ""}, "actor"),
        ({"role": "root"}, "role 'root'"),
        ({"action": "Access Grant"}, "dotted lower-case"),
        ({"action": ""}, "dotted lower-case"),
        ({"target": 7}, "target"),
        ({"after": {"ratio": 0.5}}, "after is not a JSON value"),
        ({"before": object()}, "before is not a JSON value"),
    ],
)
def test_values_the_log_could_not_sign_are_refused(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(AdminRecordError, match=message):
        grant(**changes)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not an admin record"),
        (b'{"type": "gateway-admin-record/v1"}', "not an admin record"),  # not canonical
        (b'{"type":"gateway-admin-record/v1"}', "fields"),
        (
            grant().to_bytes().replace(b"gateway-admin-record/v1", b"gateway-log-leaf/v1"),
            "type 'gateway-log-leaf/v1'",
        ),
        (grant().to_bytes().replace(b"09:30:00.123Z", b"09:30:00Z"), "milliseconds"),
        (grant().to_bytes().replace(b"09:30:00.123Z", b"09:30:99.123Z"), "not a time"),
        (grant().to_bytes().replace(b'"role":"service', b'"role":"servant'), "role"),
        (grant().to_bytes().replace(b'"before":null', b'"before":1.5'), "not an admin"),
        (grant().to_bytes().replace(b'"actor":"key:a1b2c3d4e5f6:anna"', b'"actor":3'), "actor"),
    ],
)
def test_malformed_bytes_are_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(AdminRecordError, match=message):
        AdminRecord.from_bytes(data)
