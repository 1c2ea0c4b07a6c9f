"""Fetching a registry's OpenAPI document for the node's management functions.

The operator names a service's ``openapi_url``; the node fetches the document once, reads
at most ``max_bytes`` (a registry is not trusted to be small), follows no redirect (the
operator named the URL, a redirect could point anywhere) and parses it with the pure
:func:`gateway.core.openapi.parse_openapi`. Each failure is refused with a stable code
(``client.service_description.*``) the management API hands on.
"""

from __future__ import annotations

from ssl import SSLContext

import aiohttp

from gateway.core.errors import Code, GatewayError
from gateway.core.openapi import (
    DescribedEndpoint,
    EndpointDiff,
    ServiceDescription,
    diff_endpoints,
    parse_openapi,
)
from gateway.node.config import Endpoint
from gateway.node.transport import read_limited

__all__ = [
    "DescribedEndpoint",
    "EndpointDiff",
    "ServiceDescription",
    "config_endpoints",
    "diff_endpoints",
    "fetch_description",
    "parse_openapi",
]


async def fetch_description(
    url: str, *, timeout: float, max_bytes: int, ssl: SSLContext | None
) -> ServiceDescription:
    """GET ``url`` (an ``http://`` or ``https://`` OpenAPI 3 JSON document) and parse it.

    ``ssl`` verifies an ``https://`` registry (``None``: the system's defaults);
    ``timeout`` bounds the whole fetch.
    """
    if not url.startswith(("http://", "https://")):
        raise GatewayError(Code.DESCRIPTION_UNREACHABLE, f"{url!r} is not an http(s) URL")
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    try:
        async with (
            aiohttp.ClientSession(timeout=client_timeout) as session,
            session.get(
                url,
                headers={"Accept": "application/json"},
                allow_redirects=False,
                ssl=ssl if ssl is not None else True,
            ) as resp,
        ):
            if resp.status != 200:
                raise GatewayError(
                    Code.DESCRIPTION_UNREACHABLE, f"{url} answered HTTP {resp.status}, not 200"
                )
            if resp.content_length is not None and resp.content_length > max_bytes:
                raise GatewayError(
                    Code.DESCRIPTION_TOO_LARGE,
                    f"{url} announces {resp.content_length} bytes; at most {max_bytes} are read",
                )
            body = await read_limited(resp.content, max_bytes)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise GatewayError(
            Code.DESCRIPTION_UNREACHABLE, f"{url} cannot be fetched: {type(exc).__name__} {exc}"
        ) from None
    if body is None:
        raise GatewayError(Code.DESCRIPTION_TOO_LARGE, f"{url} sent more than {max_bytes} bytes")
    return parse_openapi(body)


def config_endpoints(description: ServiceDescription) -> list[Endpoint]:
    """The description's endpoints as a service's ``endpoints`` in the node's file."""
    return [Endpoint(method=e.method, path=e.path) for e in description.endpoints]
