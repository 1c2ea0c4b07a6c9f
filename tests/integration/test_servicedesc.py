"""Service descriptions fetched from a sample registry running as a real process.

Soest's Gewerberegister is started the way the federation starts it (``gateway registry
gewerberegister``); its ``/openapi.json`` becomes a service description whose endpoints
must be exactly the routes of the FastAPI app, templated segments as the policy's ``*``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from gateway.core.errors import Code, GatewayError
from gateway.core.openapi import DescribedEndpoint, ServiceDescription, path_pattern
from gateway.node.servicedesc import fetch_description
from gateway.sandbox.localnet import free_port, wait_http
from registries.gewerberegister.app import create_app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    db = tmp_path_factory.mktemp("servicedesc") / "gewerberegister.sqlite"
    args = ["registry", "gewerberegister", "--db", str(db), "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", *args, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fetch(url: str, max_bytes: int = 1 << 20) -> ServiceDescription:
    return asyncio.run(fetch_description(url, timeout=10, max_bytes=max_bytes, ssl=None))


def test_the_endpoints_are_the_apps_routes(registry_url: str, tmp_path: Path) -> None:
    app = create_app(tmp_path / "routes.sqlite", seed=False)
    routes = {
        DescribedEndpoint(method, path_pattern(route.path))
        for route in app.routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods or ()
    }
    assert DescribedEndpoint("GET", "/gewerbeanzeigen/*") in routes

    desc = fetch(f"{registry_url}/openapi.json")

    assert desc.title == app.title
    assert desc.version == app.version
    assert desc.openapi.startswith("3.")
    assert set(desc.endpoints) == routes
    assert len(desc.endpoints) == len(routes)


def refusal(url: str, max_bytes: int = 1 << 20) -> Code:
    with pytest.raises(GatewayError) as caught:
        fetch(url, max_bytes)
    return caught.value.code


def test_a_document_larger_than_the_limit_is_refused(registry_url: str) -> None:
    assert refusal(f"{registry_url}/openapi.json", max_bytes=200) is Code.DESCRIPTION_TOO_LARGE


def test_a_port_nothing_listens_on_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}/openapi.json"
    assert refusal(url) is Code.DESCRIPTION_UNREACHABLE


def test_an_answer_other_than_200_is_unreachable(registry_url: str) -> None:
    assert refusal(f"{registry_url}/gibt-es-nicht.json") is Code.DESCRIPTION_UNREACHABLE


def test_json_that_is_not_openapi_is_refused(registry_url: str) -> None:
    assert refusal(f"{registry_url}/health") is Code.DESCRIPTION_NOT_OPENAPI


def test_a_url_that_is_not_http_is_refused() -> None:
    assert refusal("file:///etc/passwd") is Code.DESCRIPTION_UNREACHABLE
