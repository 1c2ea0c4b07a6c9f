"""Only HTTP/1.0 and HTTP/1.1 on aiohttp's listeners; anything else gets 505 in HTTP/1.1.

aiohttp's parser passes a request line ending in ``HTTP/2.0`` (or ``HTTP/0.9``) to the
application, and writes the answer's status line in the version the request named: a
client would read ``HTTP/2.0 200 OK`` in HTTP/1.1 framing, a protocol these listeners
do not speak (no HTTP/2 preface or frames, no upgrade). Every aiohttp application of the
node (consumer and peer ports) and of the trust services installs ``http1_only``, which
refuses such a request before any handler runs, with ``505 HTTP Version Not Supported``
written as an HTTP/1.1 status line, and closes the connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http import HttpVersion, HttpVersion10, HttpVersion11
from aiohttp.typedefs import Middleware

SUPPORTED_VERSIONS = frozenset({HttpVersion10, HttpVersion11})

Refusal = Callable[[HttpVersion], web.StreamResponse]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def plain_refusal(version: HttpVersion) -> web.StreamResponse:
    """The default answer: a one-line text naming the version that was sent."""
    return web.Response(
        status=505,
        text=f"HTTP/{version.major}.{version.minor} is not supported; use HTTP/1.1\n",
    )


def http1_only(refuse: Refusal = plain_refusal) -> Middleware:
    """A middleware answering a request of any version but 1.0 and 1.1 with ``refuse``.

    ``refuse`` builds the answer (status 505 expected; the node answers in X-Road's
    error format). The answer is written as HTTP/1.1 and closes the connection.
    """

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        version = request.version
        if version in SUPPORTED_VERSIONS:
            return await handler(request)
        answer = refuse(version)
        answer.force_close()
        # aiohttp writes the status line with ``request.version`` and offers no public
        # way to choose another; ``version`` is a cached property read from ``_cache``.
        # tests/integration/test_http_version.py fails if a new aiohttp stops honouring
        # this, rather than answering "HTTP/2.0 505" unnoticed.
        request._cache["version"] = HttpVersion11
        return answer

    return guard
