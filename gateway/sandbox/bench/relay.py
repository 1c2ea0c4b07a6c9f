"""Baseline (b): two plain reverse proxies with mutual TLS between them.

Same server and client library as the node, same TLS 1.3 and pooled connections, but no
signing, verification or logging: the cost floor of relaying over two hops. The ratio of
the gateway's throughput to this one is what the security work costs.
"""

from __future__ import annotations

import argparse
import ssl
from pathlib import Path

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway.core.headers import end_to_end_headers
from gateway.keys.files import load_certificates
from gateway.node.tls import client_context, server_context


def create_app(upstream: str, client_ssl: ssl.SSLContext | None) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)

    async def startup(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=256, ssl=client_ssl or False),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )

    async def cleanup(app: web.Application) -> None:
        await app["session"].close()

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        session: aiohttp.ClientSession = app["session"]
        async with session.request(
            request.method,
            URL(upstream + request.raw_path, encoded=True),
            headers=CIMultiDict(end_to_end_headers(request.headers.items())),
            data=body or None,
            allow_redirects=False,
        ) as resp:
            data = await resp.read()
            headers = CIMultiDict(end_to_end_headers(resp.headers.items()))
            return web.Response(status=resp.status, body=data, headers=headers)

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="plain relay (benchmark baseline)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--tls-in", action="store_true", help="listen with mutual TLS")
    args = parser.parse_args()
    roots = load_certificates(args.ca)
    client_ssl = (
        client_context(args.cert, args.key, roots) if args.upstream.startswith("https") else None
    )
    server_ssl = server_context(args.cert, args.key, roots) if args.tls_in else None
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        loop = None
    web.run_app(
        create_app(args.upstream, client_ssl),
        host="127.0.0.1",
        port=args.port,
        ssl_context=server_ssl,
        access_log=None,
        print=None,
        loop=loop,
    )


if __name__ == "__main__":
    main()
