"""A registry's OpenAPI 3 document as the node's service description (X-Road's REST
service descriptions): its title, version and endpoints.

Pure: the document arrives as bytes (``gateway.node.servicedesc`` fetches it). Each
operation becomes an endpoint of an HTTP method and a path *pattern* in the form the
access policy matches (``gateway.core.policy.path_matches``): a templated segment
``{id}`` becomes ``*``, which matches within one segment, as the registry's route does.
A character the pattern syntax would read as a wildcard (``*``, ``?``, ``[``) is
escaped, so a literal path in the document never grants more than that path.

JSON only: YAML would need a parser the product does not depend on, and every sample
registry (FastAPI) serves ``/openapi.json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.core.errors import Code, GatewayError

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
"""The operation keys of an OpenAPI path item (OpenAPI 3.0 and 3.1)."""

ANY_METHOD = "*"
"""The endpoint method of a path item given only as a ``$ref`` (not resolved here)."""

_TEMPLATE = re.compile(r"\{[^{}/]*\}")
_WILDCARD_CHARS = {"*": "[*]", "?": "[?]", "[": "[[]"}


@dataclass(frozen=True, slots=True, order=True)
class DescribedEndpoint:
    """One operation of a service description: a method and a policy path pattern."""

    method: str
    path: str


@dataclass(frozen=True, slots=True)
class ServiceDescription:
    """What the node keeps of an OpenAPI document: enough to list and grant endpoints."""

    title: str
    version: str
    openapi: str
    """The document's ``openapi`` field, e.g. ``3.1.0``."""
    endpoints: tuple[DescribedEndpoint, ...]
    """Sorted, without duplicates."""


@dataclass(frozen=True, slots=True)
class EndpointDiff:
    """What a refreshed description adds and removes, each sorted."""

    added: tuple[DescribedEndpoint, ...]
    removed: tuple[DescribedEndpoint, ...]

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


class _Route(Protocol):
    """Anything with a method and a path pattern (a described or configured endpoint)."""

    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str: ...


def path_pattern(template: str) -> str:
    """The policy pattern of an OpenAPI path template: ``/personen/{id}`` ->
    ``/personen/*``; wildcard characters outside the templates are escaped."""
    out: list[str] = []
    last = 0
    for match in _TEMPLATE.finditer(template):
        out.append(_escape(template[last : match.start()]))
        out.append("*")
        last = match.end()
    out.append(_escape(template[last:]))
    return "".join(out)


def _escape(literal: str) -> str:
    return "".join(_WILDCARD_CHARS.get(c, c) for c in literal)


def parse_openapi(document: bytes) -> ServiceDescription:
    """The service description of an OpenAPI 3 document, or refuse with a stable code:
    ``client.service_description.not_json``, ``.not_openapi`` or ``.no_paths``."""
    try:
        data = json.loads(document.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # or nested too deep
        raise GatewayError(Code.DESCRIPTION_NOT_JSON, f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise GatewayError(Code.DESCRIPTION_NOT_JSON, "the document is not a JSON object")
    version = data.get("openapi")
    if not isinstance(version, str) or not version.startswith("3."):
        found = "a Swagger 2 document" if "swagger" in data else f"openapi = {version!r}"
        raise GatewayError(Code.DESCRIPTION_NOT_OPENAPI, f"not OpenAPI 3: {found}")
    info = data.get("info")
    if not isinstance(info, dict) or not all(
        isinstance(info.get(k), str) for k in ("title", "version")
    ):
        raise GatewayError(
            Code.DESCRIPTION_NOT_OPENAPI, "info must be an object with a title and a version"
        )
    paths = data.get("paths")
    if paths is None:
        raise GatewayError(Code.DESCRIPTION_NO_PATHS, "the document has no paths")
    if not isinstance(paths, dict):
        raise GatewayError(Code.DESCRIPTION_NOT_OPENAPI, "paths must be an object")
    endpoints = sorted(set(_endpoints(paths)))
    if not endpoints:
        raise GatewayError(Code.DESCRIPTION_NO_PATHS, "the document describes no operation")
    return ServiceDescription(
        title=info["title"],
        version=info["version"],
        openapi=version,
        endpoints=tuple(endpoints),
    )


def _endpoints(paths: dict[str, Any]) -> Iterable[DescribedEndpoint]:
    for template, item in paths.items():
        if not template.startswith("/"):
            raise GatewayError(
                Code.DESCRIPTION_NOT_OPENAPI, f"path {template!r} does not start with /"
            )
        if not isinstance(item, dict):
            raise GatewayError(
                Code.DESCRIPTION_NOT_OPENAPI, f"path {template!r} is not a path item object"
            )
        pattern = path_pattern(template)
        methods = [m for m in HTTP_METHODS if m in item]
        for method in methods:
            yield DescribedEndpoint(method.upper(), pattern)
        if not methods and "$ref" in item:
            yield DescribedEndpoint(ANY_METHOD, pattern)


def diff_endpoints(old: Iterable[_Route], new: Iterable[_Route]) -> EndpointDiff:
    """The endpoints ``new`` adds to ``old`` and those it drops (by method and path)."""
    before = {DescribedEndpoint(e.method, e.path) for e in old}
    after = {DescribedEndpoint(e.method, e.path) for e in new}
    return EndpointDiff(added=tuple(sorted(after - before)), removed=tuple(sorted(before - after)))
