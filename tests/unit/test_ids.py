"""X-Road identifiers: one printer, one parser, and a refusal for everything else."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.errors import Code, GatewayError
from gateway.core.ids import (
    MAX_PART_LENGTH,
    GroupId,
    InvalidIdentifierError,
    MemberId,
    NodeId,
    ServiceId,
    SubsystemId,
    parse_client,
)

ALLOWED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'()+,-.=?"
IdType = type[MemberId] | type[SubsystemId] | type[ServiceId] | type[NodeId] | type[GroupId]
FULLWIDTH_GOV = "\uff27\uff2f\uff36"  # a look-alike of GOV that NFKC would fold
ID_TYPES: list[tuple[IdType, int]] = [
    (MemberId, 3),
    (SubsystemId, 4),
    (ServiceId, 5),
    (NodeId, 4),
    (GroupId, 2),
]


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (MemberId("EE", "GOV", "70000001"), "EE/GOV/70000001"),
        (SubsystemId("EE", "GOV", "70000001", "population-app"), "EE/GOV/70000001/population-app"),
        (
            ServiceId("EE", "GOV", "70000002", "melderegister", "persons.v1"),
            "EE/GOV/70000002/melderegister/persons.v1",
        ),
        (NodeId("EE", "GOV", "70000001", "ss1"), "EE/GOV/70000001/ss1"),
        (GroupId("EE", "security-servers"), "EE/security-servers"),
    ],
)
def test_round_trip(
    value: MemberId | SubsystemId | ServiceId | NodeId | GroupId, text: str
) -> None:
    assert str(value) == text
    assert type(value).parse(text) == value
    assert type(value).parse(str(value)) == value


def test_parse_client_picks_the_type_by_part_count() -> None:
    member = parse_client("EE/GOV/70000001")
    assert member == MemberId("EE", "GOV", "70000001")
    assert isinstance(member, MemberId)
    assert member.object_type == "MEMBER"
    sub = parse_client("EE/GOV/70000001/app")
    assert sub == SubsystemId("EE", "GOV", "70000001", "app")
    assert isinstance(sub, SubsystemId)
    assert sub.object_type == "SUBSYSTEM"


def test_relations_between_ids() -> None:
    member = MemberId("EE", "GOV", "1")
    sub = member.subsystem("app")
    service = sub.service("svc")
    assert sub == SubsystemId("EE", "GOV", "1", "app")
    assert service == ServiceId("EE", "GOV", "1", "app", "svc")
    assert service.provider == sub
    assert service.member == sub.member == member.member == member
    assert NodeId("EE", "GOV", "1", "ss1").owner == member
    assert member.parts == ("EE", "GOV", "1")


def test_ids_of_different_types_are_not_equal() -> None:
    subsystem: object = SubsystemId("EE", "GOV", "1", "x")
    node: object = NodeId("EE", "GOV", "1", "x")
    assert str(subsystem) == str(node)
    assert subsystem != node


# --------------------------------------------------------------------------- percent-encoding


@pytest.mark.parametrize(
    ("part", "printed"),
    [
        ("a'b", "a'b"),
        ("(x)", "(x)"),
        ("a+b", "a+b"),
        ("a,b", "a,b"),
        ("a=b", "a=b"),
        ("a-b.c", "a-b.c"),
        ("why?", "why%3F"),
        ("'()+,-.=?", "'()+,-.=%3F"),
    ],
)
def test_allowed_punctuation(part: str, printed: str) -> None:
    value = SubsystemId("EE", "GOV", "1", part)
    assert str(value) == f"EE/GOV/1/{printed}"
    assert SubsystemId.parse(str(value)) == value
    assert parse_client(str(value)) == value


def test_question_mark_is_encoded_so_the_id_fits_in_a_path() -> None:
    assert "?" not in str(ServiceId("EE", "GOV", "1", "a?", "b?"))


def test_encoded_forms_of_allowed_characters_decode() -> None:
    assert MemberId.parse("EE/GOV/a%27%28%29%2B%2C%3D%3F") == MemberId("EE", "GOV", "a'()+,=?")


# --------------------------------------------------------------------------- refusals

BAD_MEMBER_TEXTS = [
    pytest.param("EE//1", id="empty-middle-part"),
    pytest.param("EE/GOV/", id="empty-last-part"),
    pytest.param("/GOV/1", id="empty-first-part"),
    pytest.param("", id="empty"),
    pytest.param("EE/GOV", id="two-parts"),
    pytest.param("EE/GOV/1/x", id="four-parts"),
    pytest.param("EE/GOV/a%2Fb", id="encoded-slash"),
    pytest.param("EE/GOV/a%2fb", id="encoded-slash-lower"),
    pytest.param("EE/GOV/a%252Fb", id="double-encoded-slash"),
    pytest.param("EE/GOV/%25", id="encoded-percent"),
    pytest.param(f"EE/{FULLWIDTH_GOV}/1", id="fullwidth-raw"),
    pytest.param("EE/" + quote(FULLWIDTH_GOV) + "/1", id="fullwidth-encoded"),
    pytest.param("EE/GOV/a\x00", id="nul-raw"),
    pytest.param("EE/GOV/a%00", id="nul-encoded"),
    pytest.param("EE/GOV/a\rb", id="cr-raw"),
    pytest.param("EE/GOV/a\nb", id="lf-raw"),
    pytest.param("EE/GOV/a%0D%0Ab", id="crlf-encoded"),
    pytest.param("EE/GOV/a b", id="space-raw"),
    pytest.param("EE/GOV/a%20b", id="space-encoded"),
    pytest.param("EE/GOV/a+%20", id="space-after-plus"),
    pytest.param("EE/GOV/a\tb", id="tab"),
    pytest.param("EE/GOV/a:b", id="colon"),
    pytest.param("EE/GOV/a%3Ab", id="colon-encoded"),
    pytest.param("EE/GOV/a;b", id="semicolon"),
    pytest.param("EE/GOV/a\\b", id="backslash"),
    pytest.param("EE/GOV/a%5Cb", id="backslash-encoded"),
    pytest.param("EE/GOV/a%", id="lone-percent"),
    pytest.param("EE/GOV/a%zz", id="bad-percent"),
    pytest.param("EE/GOV/a_b", id="underscore"),
    pytest.param("EE/GOV/a*b", id="asterisk"),
    pytest.param("EE/GOV/a#b", id="hash"),
    pytest.param("EE/GOV/%E2%80%8B", id="zero-width-space"),
    pytest.param("EE/GOV/%EF%BB%BF1", id="bom"),
    pytest.param("EE/GOV/%C3%A9", id="e-acute"),
    pytest.param("EE/GOV/" + "a" * (MAX_PART_LENGTH + 1), id="256-chars"),
    pytest.param("EE/GOV/%ff", id="invalid-utf8"),
    pytest.param("EE/GOV/%C3", id="truncated-utf8"),
    pytest.param("EE/GOV/%C3%28", id="bad-continuation"),
    pytest.param("EE/GOV/%C0%AF", id="overlong-slash"),
    pytest.param("EE/GOV/%ED%A0%80", id="encoded-surrogate"),
]


@pytest.mark.parametrize("text", BAD_MEMBER_TEXTS)
def test_member_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidIdentifierError) as caught:
        MemberId.parse(text)
    assert caught.value.code is Code.BAD_REQUEST
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "text",
    # Four parts is a valid subsystem shape, so that one case does not apply here.
    [p for p in BAD_MEMBER_TEXTS if p.values[0] != "EE/GOV/1/x"],
)
def test_parse_client_rejects_with_its_own_code(text: str) -> None:
    with pytest.raises(InvalidIdentifierError) as caught:
        parse_client(text)
    assert caught.value.code is Code.INVALID_CLIENT_IDENTIFIER
    assert caught.value.status == 400
    assert caught.value.body()["type"] == "client.invalid_client_identifier"


@pytest.mark.parametrize(
    "text",
    ["EE/GOV/1/a%2Fb", "EE/GOV/1/a b", "EE/GOV/1/", "EE/GOV/1/x/y", "EE", "EE/GOV/1/%ff"],
)
def test_parse_client_rejects_bad_subsystems_and_counts(text: str) -> None:
    with pytest.raises(InvalidIdentifierError) as caught:
        parse_client(text)
    assert caught.value.code is Code.INVALID_CLIENT_IDENTIFIER


def test_the_caller_chooses_the_code() -> None:
    with pytest.raises(InvalidIdentifierError) as caught:
        ServiceId.parse("EE/GOV/1/sub", Code.INVALID_SERVICE_IDENTIFIER)
    assert caught.value.code is Code.INVALID_SERVICE_IDENTIFIER
    with pytest.raises(InvalidIdentifierError) as caught:
        ServiceId.from_parts(["EE", "GOV", "1", "sub", "a%2Fb"], Code.INVALID_SERVICE_IDENTIFIER)
    assert caught.value.code is Code.INVALID_SERVICE_IDENTIFIER
    with pytest.raises(InvalidIdentifierError) as caught:
        parse_client("EE/GOV", Code.BAD_REQUEST)
    assert caught.value.code is Code.BAD_REQUEST


def test_invalid_identifier_error_is_both_gateway_and_value_error() -> None:
    with pytest.raises(InvalidIdentifierError) as caught:
        MemberId.parse("EE/GOV")
    assert isinstance(caught.value, GatewayError)
    assert isinstance(caught.value, ValueError)
    assert "3 parts" in caught.value.message


def test_longest_part_is_accepted() -> None:
    part = "a" * MAX_PART_LENGTH
    assert MemberId.parse(f"EE/GOV/{part}").member_code == part


@pytest.mark.parametrize(
    "parts",
    [("EE", "GOV", ""), ("EE", "GOV", "a/b"), ("EE", FULLWIDTH_GOV, "1"), ("EE", "GOV", "a b")],
)
def test_constructor_checks_parts(parts: tuple[str, str, str]) -> None:
    with pytest.raises(InvalidIdentifierError) as caught:
        MemberId(*parts)
    assert caught.value.code is Code.BAD_REQUEST


def test_error_names_the_offending_character() -> None:
    with pytest.raises(InvalidIdentifierError, match=r"U\+FF27"):
        MemberId.parse(f"EE/{FULLWIDTH_GOV}/1")


@pytest.mark.parametrize("text", ["EE/GOV/..", "EE/GOV/%2e%2e", "EE/GOV/%2E%2E", "EE/GOV/."])
def test_rejects_dot_segments(text: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        MemberId.parse(text)


def test_rejects_surrogate_escaped_header_bytes() -> None:
    # aiohttp decodes a header byte that is not UTF-8 as a lone surrogate.
    with pytest.raises(InvalidIdentifierError):
        parse_client("EE/GOV/\udcff1")


@pytest.mark.parametrize("ws", ["\r\n", "\x0b", "\x1c", "\x85", "\u2028", "\u3000"])
def test_parse_client_strips_only_http_white_space(ws: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        parse_client(f"EE/GOV/70000001{ws}")


def test_parse_client_tolerates_http_optional_white_space() -> None:
    # Header values may carry OWS (SP / HTAB) around them (RFC 9110 section 5.5).
    assert parse_client(" \tEE/GOV/1 ") == MemberId("EE", "GOV", "1")


# --------------------------------------------------------------------------- properties

_part = st.text(alphabet=ALLOWED, min_size=1, max_size=20).filter(lambda p: p not in (".", ".."))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ID_TYPES), st.data())
def test_print_then_parse_is_identity(kind: tuple[IdType, int], data: st.DataObject) -> None:
    cls, count = kind
    parts = data.draw(st.tuples(*[_part] * count))
    value = cls(*parts)
    text = str(value)
    assert cls.parse(text) == value
    assert text.split("/") == [quote(p, safe="'()+,-.=") for p in parts]
    if cls in (MemberId, SubsystemId):
        assert parse_client(text) == value


_bad_char = st.characters(codec="utf-8").filter(lambda c: c not in ALLOWED)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(ID_TYPES),
    st.data(),
    _bad_char,
    st.text(alphabet=ALLOWED, max_size=5),
    st.text(alphabet=ALLOWED, max_size=5),
)
def test_a_disallowed_character_is_always_refused(
    kind: tuple[IdType, int], data: st.DataObject, bad: str, before: str, after: str
) -> None:
    cls, count = kind
    parts = list(data.draw(st.tuples(*[_part] * count)))
    where = data.draw(st.integers(min_value=0, max_value=count - 1))
    parts[where] = before + bad + after
    with pytest.raises(InvalidIdentifierError):
        cls(*parts)
    # Percent-encoded, as a path or header would carry it.
    encoded = "/".join(quote(p, safe="") for p in parts)
    with pytest.raises(InvalidIdentifierError):
        cls.parse(encoded)
    # Raw, where the character survives into the part ('%' would start an escape).
    if bad != "%":
        with pytest.raises(InvalidIdentifierError):
            cls.parse("/".join(parts))
