"""The lean client against a hostile server on 127.0.0.1: a registry or a peer that
frames its answer ambiguously, talks out of turn, or floods.

Each case is a raw server (``test_http1client.Server``) writing exactly the bytes given;
the client must refuse in words (``BadAnswer``/``TooLarge``), never read one answer's
bytes as another's, and never reuse a connection whose framing it could not trust.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.net.http1client import MAX_HEADERS, BadAnswer, ClientError, Http1Client, TooLarge
from tests.unit.test_http1client import OK, Server, fixed, run


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: a\rb\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: a\x00b\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX\x00: b\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: a\r\n b\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"10000000000000002\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 " + b"r" * (MAX_HEADERS * 8190 + 1) + b"\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n" * (MAX_HEADERS * 8190 // 25 + 1) + OK,
    ],
    ids=[
        "length-and-chunked",
        "chunked-and-length",
        "two-lengths",
        "cr-in-value",
        "nul-in-value",
        "nul-in-name",
        "obs-fold",
        "negative-chunk",
        "chunk-size-overflow",
        "huge-reason",
        "interim-flood",
    ],
)
def test_an_ambiguous_or_flooding_answer_is_refused(answer: bytes) -> None:
    async def work() -> tuple[ClientError, int]:
        server = await Server([fixed(answer), fixed(OK)]).start()
        client = Http1Client(max_body=1000)
        try:
            with pytest.raises(BadAnswer) as refused:
                await client.request("GET", server.url + "/", [], b"", timeout=10)
            # The connection is dropped: the next request opens another and reads its
            # own answer.
            second = await client.request("GET", server.url + "/", [], b"", timeout=10)
            assert (second.status, second.body) == (200, b"ok")
            return refused.value, server.connections
        finally:
            await client.close()
            await server.stop()

    refused, connections = run(work)
    assert refused.sent
    assert connections == 2


def test_a_chunked_answer_over_the_limit_is_refused_while_it_streams() -> None:
    """No declared length to refuse up front: the sum of the chunks is what counts."""
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1\r\na\r\n" * 1001

    async def work() -> int:
        server = await Server([fixed(answer + b"0\r\n\r\n"), fixed(OK)]).start()
        client = Http1Client(max_body=1000)
        try:
            with pytest.raises(TooLarge):
                await client.request("GET", server.url + "/", [], b"", timeout=10)
            second = await client.request("GET", server.url + "/", [], b"", timeout=10)
            assert second.body == b"ok"
            return server.connections
        finally:
            await client.close()
            await server.stop()

    assert run(work) == 2


@pytest.mark.parametrize("late", [False, True], ids=["same-write", "afterwards"])
def test_an_unsolicited_answer_on_a_pooled_connection_is_never_read_as_the_next(
    late: bool,
) -> None:
    """A second answer nobody asked for, in the same write as the first or after it: the
    first is delivered, the connection is dropped, and the next request reads its own
    answer from a new connection rather than the planted one."""
    planted = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nplanted"

    async def work() -> tuple[bytes, bytes, int]:
        server = await Server(
            [
                fixed(OK if late else OK + planted),
                fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nown"),
            ]
        ).start()
        client = Http1Client(max_body=1000)
        try:
            first = await client.request("GET", server.url + "/", [], b"", timeout=10)
            if late:
                writer = next(iter(server._open.values()))
                writer.write(planted)
                await writer.drain()
                await asyncio.sleep(0.2)
            second = await client.request("GET", server.url + "/", [], b"", timeout=10)
            return first.body, second.body, server.connections
        finally:
            await client.close()
            await server.stop()

    assert run(work) == (b"ok", b"own", 2)


def test_a_body_on_an_answer_to_head_is_not_read_as_the_next_answer() -> None:
    head_answer = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nplanted"

    async def work() -> tuple[int, bytes, bytes, int]:
        server = await Server(
            [fixed(head_answer), fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nown")]
        ).start()
        client = Http1Client(max_body=1000)
        try:
            first = await client.request("HEAD", server.url + "/", [], b"", timeout=10)
            second = await client.request("GET", server.url + "/", [], b"", timeout=10)
            return first.status, first.body, second.body, server.connections
        finally:
            await client.close()
            await server.stop()

    assert run(work) == (200, b"", b"own", 2)
