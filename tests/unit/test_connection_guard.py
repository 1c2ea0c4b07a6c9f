"""The connection guard's view of HTTP/1.1 framing, and its caps, without a network.

The guard times what a client owes; it must agree with the server behind it on where a
head and a body end, in whatever pieces the bytes arrive, or it would close a good
connection (a wrong end) or let a slow one live (no end).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.net.framing import HEAD_LIMIT, Framing, Phase, _head_end
from gateway.net.guard import ConnectionGuard, GuardSettings

GET = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED = (
    b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n10\r\n" + b"x" * 16 + b"\r\n0\r\nX-Trailer: 1\r\n\r\n"
)


def _fed(data: bytes, piece: int) -> Framing:
    framing = Framing()
    for start in range(0, len(data), piece):
        framing.feed(data[start : start + piece])
    return framing


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 1000])
def test_pipelined_requests_end_where_the_server_ends_them(piece: int) -> None:
    framing = _fed(b"\r\n" + GET + POST + CHUNKED + GET, piece)
    assert framing.completed == 4
    assert framing.phase == Phase.HEAD and not framing.head_started


@pytest.mark.parametrize(
    ("data", "phase"),
    [
        (b"GET /a HTTP/1.1\r\nHo", Phase.HEAD),
        (POST[:-1], Phase.LENGTH),
        (CHUNKED[:-2], Phase.TRAILER),
        (CHUNKED[: CHUNKED.index(b"hello") + 2], Phase.CHUNK_DATA),
        (CHUNKED[: CHUNKED.index(b"10\r\n") + 1], Phase.CHUNK_SIZE),
    ],
)
def test_an_unfinished_request_is_still_owed(data: bytes, phase: int) -> None:
    for piece in (1, len(data)):
        framing = _fed(data, piece)
        assert framing.completed == 0
        assert framing.phase == phase


def test_bare_line_feeds_end_a_head() -> None:
    framing = _fed(b"GET /a HTTP/1.1\nHost: x\n\nPOST /b HTTP/1.1\nContent-Length: 2\n\nok", 1)
    assert framing.completed == 2


@pytest.mark.parametrize(
    "head",
    [
        b"POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/1.1\r\nX: " + b"a" * (HEAD_LIMIT + 5000),
    ],
)
def test_a_framing_the_server_will_refuse_is_only_timed(head: bytes) -> None:
    """Not followed, never completed: the body stall timeout ends it if the server
    does not refuse it first."""
    framing = _fed(head + GET, 4096)
    assert framing.phase == Phase.OPAQUE
    assert framing.completed == 0


def test_caps_count_per_address_and_in_total() -> None:
    guard = ConnectionGuard(GuardSettings(max_connections=3, max_connections_per_ip=2))
    assert guard.admit("10.0.0.1") and guard.admit("10.0.0.1")
    assert not guard.admit("10.0.0.1")
    assert guard.admit("10.0.0.2")
    assert not guard.admit("10.0.0.3")  # three open in total
    guard.release("10.0.0.1")
    assert guard.admit("10.0.0.3")
    assert guard.per_ip == {"10.0.0.1": 1, "10.0.0.2": 1, "10.0.0.3": 1}


@pytest.mark.parametrize(
    "bad",
    [
        {"header_timeout": 0},
        {"body_timeout": -1},
        {"max_connections": 0},
        {"max_connections_per_ip": 0},
    ],
)
def test_settings_refuse_limits_that_would_refuse_everything(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        GuardSettings(**bad)  # type: ignore[arg-type]


def test_the_end_of_a_head_is_where_the_first_empty_line_ends() -> None:
    """Every mix of CR and LF around an empty line, with the head's own CRLFs before it
    and a body after it (which may hold more empty lines): the end found is the first
    match of ``\\r?\\n\\r?\\n``, the grammar's empty line with bare LFs allowed."""
    import itertools
    import random
    import re

    grammar = re.compile(rb"\r?\n\r?\n")
    pieces = [b"a", b"\r", b"\n", b"\r\n", b": "]
    rng = random.Random(7)
    samples = [b"".join(p) for n in range(1, 6) for p in itertools.product(pieces, repeat=n)]
    samples += [
        bytes(rng.choice(b"ab\r\n") for _ in range(rng.randint(0, 40))) for _ in range(5000)
    ]
    for data in samples:
        for start in range(min(len(data), 4) + 1):
            match = grammar.search(data, start)
            want = None if match is None else (match.start(), match.end())
            assert _head_end(data, start) == want, (data, start)
            assert _head_end(bytearray(data), start) == want, (data, start)


def _framing_with_crlf_folded(head: bytes) -> tuple[int, int, int]:
    """The head's framing as read with every CRLF turned into LF first, the reading
    ``Framing`` had before it split at LF alone: what the two make of a head must agree."""
    framing = Framing()
    framing._framing(head.replace(b"\r\n", b"\n"))
    return framing.phase, framing.remaining, framing.completed


_HEAD_PIECES = st.sampled_from(
    [
        b"\r\n",
        b"\n",
        b"\r",
        b" ",
        b"\t",
        b":",
        b",",
        b"5",
        b"12",
        b"x",
        b"Content-Length",
        b"content-length:",
        b"CONTENT-LENGTH : 7",
        b"Transfer-Encoding:",
        b"chunked",
        b"gzip",
        b"CONNECT ",
        b"POST / HTTP/1.1",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_HEAD_PIECES, max_size=24))
def test_a_head_is_framed_alike_with_crlf_or_lf(pieces: list[bytes]) -> None:
    head = b"".join(pieces)
    framing = Framing()
    framing._framing(head)
    assert (framing.phase, framing.remaining, framing.completed) == (
        _framing_with_crlf_folded(head)
    )


def _head_end_by_two_searches(buf: bytes, start: int) -> tuple[int, int] | None:
    """The end of a head as the guard found it before one regex search: the earlier of
    ``\\n\\n`` and ``\\n\\r\\n`` from ``start``, with a CR before it taken into the end."""
    crlf = buf.find(b"\n\r\n", start)
    lf = buf.find(b"\n\n", start, len(buf) if crlf < 0 else crlf + 1)
    if lf >= 0:
        newline, end = lf, lf + 2
    elif crlf >= 0:
        newline, end = crlf, crlf + 3
    else:
        return None
    begin = newline - 1 if newline > start and buf[newline - 1] == 0x0D else newline
    return begin, end


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from([b"\r", b"\n", b"a", b"\r\n", b"\n\r"]), max_size=30),
    st.integers(min_value=0, max_value=40),
)
def test_the_end_of_a_head_is_found_where_two_searches_found_it(
    pieces: list[bytes], start: int
) -> None:
    buf = b"".join(pieces)
    start = min(start, len(buf))
    assert _head_end(buf, start) == _head_end_by_two_searches(buf, start)
    assert _head_end(bytearray(buf), start) == _head_end_by_two_searches(buf, start)
