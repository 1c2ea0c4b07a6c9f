"""Each sample registry started by ``gateway registry ...`` as a real process on loopback."""

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gateway.sandbox.localnet import free_port, wait_http

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("registry", "options", "title", "path"),
    [
        ("melderegister", [], "Melderegister Lippstadt", "/datenuebermittlung/personen"),
        ("melderegister", ["--city", "iserlohn"], "Melderegister Iserlohn", "/personen"),
        ("gewerberegister", [], "Gewerberegister Soest", "/gewerbeanzeigen"),
        ("ihk", [], "IHK Benachrichtigungen", "/benachrichtigungen"),
    ],
)
def test_registry_serves_health_and_openapi(
    tmp_path: Path, registry: str, options: list[str], title: str, path: str
) -> None:
    port = free_port()
    db = tmp_path / f"{registry}.sqlite"
    command = [sys.executable, "-m", "gateway", "registry", registry, "--db", str(db), *options]
    proc = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health", proc)

        health = httpx.get(f"{base}/health", timeout=5)
        openapi = httpx.get(f"{base}/openapi.json", timeout=5)

        assert health.json() == {"status": "ok"}
        assert openapi.status_code == 200
        assert openapi.json()["info"]["title"] == title
        assert path in openapi.json()["paths"]
        assert db.exists()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
