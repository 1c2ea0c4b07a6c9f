"""How the lean server hands an answer to its transport: a large body after its head, as
the handler's own object, never copied onto the head; a small one in the same write.

The transport here records what the connection writes (the bytes a socket would carry
are their concatenation); the server, its parser and its route table are the real ones.
The byte-for-byte framing against real sockets is in ``test_http1server.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
import pytest

from gateway.net.http1messages import BODY_SPLIT, HttpResponse, encode, encode_parts
from gateway.net.http1server import Http1Server, Request, Routes

LARGE = b"\x00\xff" * (BODY_SPLIT // 2 + 7) + b"end"


class _Recording(asyncio.Transport):
    """A transport that keeps each piece written, in order, as the object given."""

    def __init__(self) -> None:
        super().__init__()
        self.pieces: list[bytes] = []
        self.writes = 0
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes += 1
        self.pieces.append(data)

    def writelines(self, list_of_data: Any) -> None:
        self.writes += 1
        self.pieces.extend(list_of_data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class _Parsed:
    """The answer as a client's parser reads it back from the written bytes."""

    def __init__(self, data: bytes) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.body = b""
        self.complete = False
        self.parser = httptools.HttpResponseParser(self)
        self.parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


def _answer(method: str, body: bytes) -> tuple[_Recording, bytes]:
    """Serve one request whose handler answers ``body``; the transport and the bytes."""

    async def handler(request: Request) -> HttpResponse:
        return HttpResponse(200, body, [("X-Kind", "test")], "application/octet-stream")

    async def main() -> _Recording:
        routes = Routes()
        routes.add(None, "/answer", handler)
        conn = Http1Server(routes, name="test")()
        transport = _Recording()
        conn.connection_made(transport)
        conn.data_received(f"{method} /answer HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        for _ in range(100):
            if transport.pieces:
                break
            await asyncio.sleep(0)
        conn.connection_lost(None)
        return transport

    transport = asyncio.run(main())
    return transport, b"".join(transport.pieces)


def test_a_large_body_is_written_after_its_head_as_the_handlers_own_object() -> None:
    transport, data = _answer("GET", LARGE)
    assert transport.writes == 1
    assert len(transport.pieces) == 2
    assert transport.pieces[1] is LARGE  # not a copy joined onto the head
    parsed = _Parsed(data)
    assert parsed.complete
    assert parsed.body == LARGE
    assert parsed.headers[b"content-length"] == str(len(LARGE)).encode()
    assert parsed.headers[b"x-kind"] == b"test"


def test_a_small_body_goes_out_in_one_piece_with_its_head() -> None:
    small = b"x" * (BODY_SPLIT - 1)
    transport, data = _answer("GET", small)
    assert transport.writes == 1
    assert len(transport.pieces) == 1
    assert _Parsed(data).body == small


def test_a_head_request_gets_the_large_bodys_head_and_no_body() -> None:
    transport, data = _answer("HEAD", LARGE)
    assert len(transport.pieces) == 1
    assert data.endswith(b"\r\n\r\n")
    assert f"Content-Length: {len(LARGE)}\r\n".encode() in data
    assert LARGE[:64] not in data


@pytest.mark.parametrize("status", [100, 200, 204, 304, 404])
@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest.mark.parametrize("keep_alive", [True, False])
@pytest.mark.parametrize("head", [True, False])
@pytest.mark.parametrize("body", [b"", b"small", LARGE])
def test_the_parts_are_the_whole_answer(
    status: int, version: str, keep_alive: bool, head: bool, body: bytes
) -> None:
    response = HttpResponse(status, body, [("X-A", "1")])
    start, rest = encode_parts(response, version, keep_alive=keep_alive, head=head)
    assert start + rest == encode(response, version, keep_alive=keep_alive, head=head)
    assert start.endswith(b"\r\n\r\n") and start.count(b"\r\n\r\n") == 1
    assert rest == (b"" if head or status < 200 or status in (204, 304) else body)


def test_the_parts_refuse_a_header_that_would_split_the_answer() -> None:
    response = HttpResponse(200, LARGE, [("X-Bad", "a\r\nSet-Cookie: s=1")])
    with pytest.raises(ValueError):
        encode_parts(response, "1.1", keep_alive=True, head=False)
