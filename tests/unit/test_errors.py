"""The error table: one row per code, X-Road's naming and status rules, the JSON shape."""

from __future__ import annotations

import json
import re
import uuid
from enum import StrEnum
from typing import Any

import pytest

from gateway.audit.verify import AuditError, AuditFailure
from gateway.core.errors import ERROR_TABLE, Code, ErrorSpec, GatewayError, ReasonedError
from gateway.core.logtree import ProofError, ProofFailure
from gateway.core.treehead import TreeHeadError, TreeHeadFailure
from gateway.pki.ocsp import OcspError, OcspFailure
from gateway.pki.tsa import TimestampError, TimestampFailure

_DOTTED_SNAKE = re.compile(r"[a-z]+(?:_[a-z]+)*(?:\.[a-z]+(?:_[a-z]+)*)+")


def test_every_code_has_exactly_one_row() -> None:
    assert set(ERROR_TABLE) == set(Code)
    assert len(ERROR_TABLE) == len(Code)
    for spec in ERROR_TABLE.values():
        assert isinstance(spec, ErrorSpec)
        assert spec.meaning.strip()
        assert spec.meaning.endswith(".")


def test_codes_are_unique() -> None:
    values = [c.value for c in Code]
    assert len(values) == len(set(values))
    assert len({v.lower() for v in values}) == len(values)


@pytest.mark.parametrize("code", list(Code), ids=lambda c: c.value)
def test_code_is_dotted_lower_snake_case(code: Code) -> None:
    assert _DOTTED_SNAKE.fullmatch(code.value), code.value


@pytest.mark.parametrize("code", list(Code), ids=lambda c: c.value)
def test_status_follows_the_prefix(code: Code) -> None:
    status = ERROR_TABLE[code].status
    if code is Code.HTTP_VERSION_NOT_SUPPORTED:
        assert status == 505  # HTTP's own answer to the caller's protocol version
    elif code.value.startswith("client."):
        assert 400 <= status < 500
    else:
        assert code.value.startswith(("server.clientproxy.", "server.serverproxy."))
        assert 500 <= status < 600


def test_statuses_are_x_roads_except_where_http_has_one() -> None:
    odd = {c for c, spec in ERROR_TABLE.items() if spec.status not in (400, 500)}
    assert odd == {
        Code.REQUEST_TOO_LARGE,
        Code.EXPECTATION_FAILED,
        Code.HTTP_VERSION_NOT_SUPPORTED,
    }
    assert ERROR_TABLE[Code.REQUEST_TOO_LARGE].status == 413
    assert ERROR_TABLE[Code.EXPECTATION_FAILED].status == 417
    assert ERROR_TABLE[Code.HTTP_VERSION_NOT_SUPPORTED].status == 505


@pytest.mark.parametrize(
    ("code", "value"),
    [
        (Code.BAD_REQUEST, "client.bad_request"),
        (Code.INVALID_CLIENT_IDENTIFIER, "client.invalid_client_identifier"),
        (Code.SP_ACCESS_DENIED, "server.serverproxy.access_denied"),
        (Code.SP_UNKNOWN_SERVICE, "server.serverproxy.unknown_service"),
        (Code.SP_SSL_AUTHENTICATION_FAILED, "server.serverproxy.ssl_authentication_failed"),
        (Code.CP_INCONSISTENT_RESPONSE, "server.clientproxy.inconsistent_response"),
        (Code.SP_SERVICE_TIMEOUT, "server.serverproxy.service_failed.timeout"),
    ],
)
def test_stable_values(code: Code, value: str) -> None:
    # Clients match on these strings; renaming one is a breaking change.
    assert code.value == value
    assert Code(value) is code


def test_body_shape() -> None:
    err = GatewayError(Code.SP_ACCESS_DENIED, "no access right")
    body = err.body()
    assert set(body) == {"type", "message", "detail"}
    assert body["type"] == "server.serverproxy.access_denied"
    assert body["message"] == "no access right"
    assert str(uuid.UUID(body["detail"])) == body["detail"]
    assert json.loads(json.dumps(body)) == body
    assert err.status == 500
    assert err.code is Code.SP_ACCESS_DENIED
    assert str(err) == "server.serverproxy.access_denied: no access right"


def test_detail_is_a_fresh_correlation_id_unless_given() -> None:
    first = GatewayError(Code.BAD_REQUEST, "x")
    second = GatewayError(Code.BAD_REQUEST, "x")
    assert first.detail != second.detail
    given = GatewayError(Code.BAD_REQUEST, "x", detail="log-123")
    assert given.body()["detail"] == "log-123"


@pytest.mark.parametrize("code", list(Code), ids=lambda c: c.value)
def test_every_code_renders(code: Code) -> None:
    err = GatewayError(code, "m")
    assert err.status == ERROR_TABLE[code].status
    assert err.body()["type"] == code.value


def test_protocol_document_lists_codes_with_their_status_and_meaning() -> None:
    """docs/protocol.md's error table is the one clients read: it must match this one."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text("utf-8")
    rows = {
        m.group(1): (int(m.group(2)), m.group(3))
        for m in re.finditer(r"^\| `([a-z_.]+)` \| (\d{3}) \| (.+) \|$", doc, re.MULTILINE)
    }
    from gateway.central.errors import CENTRAL_ERROR_TABLE
    from gateway.console.errors import CONSOLE_ERROR_TABLE
    from gateway.core.errors import ADMIN_ERROR_TABLE

    specs = [
        *ERROR_TABLE.items(),
        *CENTRAL_ERROR_TABLE.items(),
        *ADMIN_ERROR_TABLE.items(),
        *CONSOLE_ERROR_TABLE.items(),
    ]
    table = {c.value: (s.status, s.meaning) for c, s in specs}
    assert {code: table.get(code) for code in rows} == rows, "a documented row is stale"
    missing = sorted(code for code in table if code not in rows)
    assert not missing, f"codes without a row in docs/protocol.md: {missing}"


# ------------------------------------------------ one base for refusals with a reason


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (OcspError, OcspFailure.STALE),
        (TimestampError, TimestampFailure.NONCE_MISMATCH),
        (ProofError, ProofFailure.NOT_INCLUDED),
        (TreeHeadError, TreeHeadFailure.SPLIT_VIEW),
    ],
)
def test_every_check_refuses_through_the_one_base(
    error: type[ReasonedError[Any]], failure: StrEnum
) -> None:
    refusal = error(failure, "what went wrong")
    assert isinstance(refusal, ReasonedError)
    assert refusal.reason is failure
    assert refusal.detail == "what went wrong"
    assert str(refusal) == f"{failure.value}: what went wrong"
    with pytest.raises(ReasonedError) as caught:
        raise refusal
    assert caught.value is refusal


def test_an_audit_refusal_names_its_piece_first() -> None:
    refusal = AuditError(AuditFailure.LEAF_MISMATCH, "entries.jsonl:7", "leaf differs")
    assert isinstance(refusal, ReasonedError)
    assert (refusal.reason, refusal.piece, refusal.detail) == (
        AuditFailure.LEAF_MISMATCH,
        "entries.jsonl:7",
        "leaf differs",
    )
    assert str(refusal) == "entries.jsonl:7: leaf_mismatch: leaf differs"
