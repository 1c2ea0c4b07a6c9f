"""A node reads a body whole and byte for byte, and refuses one a byte over its limit.

Through a real aiohttp server on 127.0.0.1 and the node's registry client: bodies with
a length and chunked ones in pieces of every size around the transport's, so the limit
is checked wherever the pieces fall.
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from gateway.core.errors import Code, GatewayError
from gateway.core.ids import ServiceId
from gateway.node.transport import RegistryClient

SERVICE = ServiceId("DE", "GOV", "lippstadt", "melderegister", "persons")
LIMIT = 300_000


def _body(size: int) -> bytes:
    return bytes(i * 7 % 251 for i in range(size))


async def _read(size: int, piece: int | None) -> bytes:
    """The body the client read; ``piece`` None sends it with a length, else chunked."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = _body(size)
        if piece is None:
            return web.Response(body=body)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, size, piece):
            await response.write(body[start : start + piece])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    client = RegistryClient(max_body=LIMIT)
    try:
        reply = await client.call(
            "GET", f"http://127.0.0.1:{port}/x", [], b"", 10.0, service=SERVICE, tls=None
        )
        return reply.body
    finally:
        await client.close()
        await runner.cleanup()


@pytest.mark.parametrize("piece", [None, 1000, 65_536, 100_000, 299_999])
def test_a_body_within_the_limit_is_read_whole(piece: int | None) -> None:
    for size in (0, 1, LIMIT - 1, LIMIT):
        assert asyncio.run(_read(size, piece)) == _body(size)


@pytest.mark.parametrize("piece", [None, 1000, 65_536, 299_999, 300_001])
def test_a_body_a_byte_over_the_limit_is_refused(piece: int | None) -> None:
    with pytest.raises(GatewayError) as refused:
        asyncio.run(_read(LIMIT + 1, piece))
    assert refused.value.code is Code.SP_RESPONSE_TOO_LARGE
