"""The registry stand-in for the benchmark: echoes POST bodies, answers GET with JSON.

It is deliberately cheap so the figures are dominated by what sits in front of it.
"""

from __future__ import annotations

import argparse
import json

from aiohttp import web

DOCUMENT = json.dumps(
    {"ergebnis": "gefunden", "person": {"familienname": "Schmidt", "vornamen": "Anna"}}
).encode()


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(body=body, content_type="application/json")


async def document(request: web.Request) -> web.Response:
    return web.Response(body=DOCUMENT, content_type="application/json")


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_app() -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/echo", echo)
    app.router.add_get("/echo", document)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="benchmark registry stub")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        loop_factory = None
    web.run_app(
        create_app(),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        loop=loop_factory() if loop_factory else None,
    )


if __name__ == "__main__":
    main()
