"""The OpenAPI 3 document of a node's management API, built from its route table.

Built from the same :class:`~gateway.node.adminapi.ApiRoute` list the listener serves,
so every route is described and nothing else is; each operation names the permission it
needs (``x-permission``) and the roles holding it, from ``NODE_ROLE_PERMISSIONS``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from gateway.core.errors import ADMIN_ERROR_TABLE
from gateway.core.roles import NODE_ROLE_PERMISSIONS
from gateway.node.adminapi import ApiRoute

_PARAM = re.compile(r"\{([a-z_]+)\}")

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "message", "detail"],
    "properties": {
        "type": {"type": "string", "enum": sorted(c.value for c in ADMIN_ERROR_TABLE)},
        "message": {"type": "string"},
        "detail": {"type": "string", "description": "correlation id in the node's log"},
    },
}


def _operation_id(route: ApiRoute) -> str:
    path = _PARAM.sub(r"\1", route.path).strip("/").replace("/", "_").replace("-", "_")
    return f"{route.method.lower()}_{path}"


def _operation(route: ApiRoute) -> dict[str, Any]:
    roles = sorted(r.value for r, held in NODE_ROLE_PERMISSIONS.items() if route.permission in held)
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    responses: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {}}}}
    for code, spec in ADMIN_ERROR_TABLE.items():
        responses.setdefault(str(spec.status), {"description": "", **error})
        responses[str(spec.status)]["description"] += f"`{code.value}`: {spec.meaning} "
    operation: dict[str, Any] = {
        "summary": route.summary,
        "operationId": _operation_id(route),
        "tags": list(route.tags),
        "x-permission": route.permission.value,
        "description": f"Needs `{route.permission.value}`, held by: {', '.join(roles)}.",
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(route.path)
        ]
        + [
            {"name": name, "in": "query", "description": text, "schema": {"type": "string"}}
            for name, text in route.query
        ],
        "responses": responses,
    }
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": route.body}},
        }
    return operation


def openapi_document(routes: Iterable[ApiRoute], node: str) -> dict[str, Any]:
    """The document for ``routes`` of node ``node``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": f"Management API of node {node}",
            "version": "1",
            "description": "Every call needs `Authorization: Bearer <API key>` "
            "(gateway node keys); see docs/node-admin.md.",
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
    }
