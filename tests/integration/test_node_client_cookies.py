"""A node's HTTP clients keep no cookies.

A registry (or a load balancer in front of it) may answer with ``Set-Cookie``. The
provider's node calls it on behalf of every client, with exactly the headers that were
signed; a cookie kept from one answer and sent with the next call would be a header
nobody signed, and would carry one client's session into another client's call.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway.core.ids import ServiceId
from gateway.node.transport import RegistryClient

SERVICE = ServiceId("DE", "GOV", "lippstadt", "melderegister", "persons")


async def _calls() -> list[str]:
    async def handle(request: web.Request) -> web.Response:
        response = web.Response(text=request.headers.get("Cookie", "-"))
        response.set_cookie("session", "of-the-first-client", path="/")
        return response

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    client = RegistryClient(max_body=1 << 20)
    try:
        seen = []
        for _ in range(2):
            reply = await client.call(
                "GET", f"http://localhost:{port}/x", [], b"", 5.0, service=SERVICE, tls=None
            )
            assert reply.status == 200
            assert "Set-Cookie" in reply.headers  # passed on to the client as it was
            seen.append(reply.body.decode())
        return seen
    finally:
        await client.close()
        await runner.cleanup()


def test_a_registrys_cookie_is_never_sent_back_to_it() -> None:
    assert asyncio.run(_calls()) == ["-", "-"]
