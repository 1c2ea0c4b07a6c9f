"""Which HTTP headers travel end to end: one rule for requests and responses."""

from __future__ import annotations

import pytest

from gateway.core.headers import HOP_BY_HOP, NOT_FORWARDED, PROTOCOL_PREFIXES, end_to_end_headers


@pytest.mark.parametrize(
    "name",
    [
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    ],
)
def test_hop_by_hop_headers_are_removed(name: str) -> None:
    assert end_to_end_headers([(name, "x"), ("Accept", "*/*")]) == [("accept", "*/*")]
    assert end_to_end_headers([(name.upper(), "x")]) == []
    assert end_to_end_headers([(name.lower(), "x")]) == []


@pytest.mark.parametrize("name", ["Host", "User-Agent", "Server", "Content-Length", "Date"])
def test_per_hop_headers_are_removed(name: str) -> None:
    assert end_to_end_headers([(name, "x")]) == []


def test_headers_named_in_connection_are_removed() -> None:
    items = [
        ("Connection", "keep-alive, X-Secret ,  Close,,"),
        ("X-Secret", "1"),
        ("x-secret", "2"),
        ("Close", "3"),
        ("X-Public", "4"),
    ]
    assert end_to_end_headers(items) == [("x-public", "4")]


def test_every_connection_header_counts() -> None:
    items = [("Connection", "x-a"), ("Connection", "X-B"), ("X-A", "1"), ("X-B", "2"), ("X-C", "3")]
    assert end_to_end_headers(items) == [("x-c", "3")]


def test_connection_names_apply_to_earlier_headers_too() -> None:
    assert end_to_end_headers([("X-A", "1"), ("Connection", "x-a")]) == []


@pytest.mark.parametrize(
    "name",
    [
        "X-Road-Client",
        "x-road-id",
        "X-ROAD-USERID",
        "X-Road-Issue",
        "X-Road-Request-Hash",
        "X-Road-Error",
        "X-Road-Anything",
        "X-Gw-Envelope",
        "x-gw-signature",
        "X-GW-Whatever",
    ],
)
def test_protocol_headers_are_removed(name: str) -> None:
    assert end_to_end_headers([(name, "v"), ("Accept", "a")]) == [("accept", "a")]


@pytest.mark.parametrize("name", ["X-Roads", "X-Road", "X-Gw", "X-Gateway-Id", "Road-X-Id"])
def test_look_alikes_of_protocol_prefixes_are_kept(name: str) -> None:
    assert end_to_end_headers([(name, "v")]) == [(name.lower(), "v")]


def test_order_and_repeats_are_kept_and_names_lower_cased() -> None:
    items = [
        ("Accept", "application/json"),
        ("X-Custom", "1"),
        ("Host", "reg.example"),
        ("Content-Type", "application/json"),
        ("x-custom", "2"),
        ("X-CUSTOM", "3"),
        ("Authorization", "Bearer t"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
    ]
    assert end_to_end_headers(items) == [
        ("accept", "application/json"),
        ("x-custom", "1"),
        ("content-type", "application/json"),
        ("x-custom", "2"),
        ("x-custom", "3"),
        ("authorization", "Bearer t"),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
    ]


def test_values_are_not_touched() -> None:
    items = [("X-A", "  spaced  "), ("X-B", ""), ("X-C", "MiXeD, Case; q=1")]
    assert end_to_end_headers(items) == [
        ("x-a", "  spaced  "),
        ("x-b", ""),
        ("x-c", "MiXeD, Case; q=1"),
    ]


def test_end_to_end_headers_accepts_any_iterable_and_empty() -> None:
    assert end_to_end_headers([]) == []
    assert end_to_end_headers(iter([("A", "1")])) == [("a", "1")]
    assert end_to_end_headers({"B": "2"}.items()) == [("b", "2")]


def test_the_tables() -> None:
    assert HOP_BY_HOP <= NOT_FORWARDED
    assert {"host", "user-agent", "server", "content-length", "date"} <= NOT_FORWARDED
    assert all(n == n.lower() for n in NOT_FORWARDED)
    assert PROTOCOL_PREFIXES == ("x-road-", "x-gw-")
