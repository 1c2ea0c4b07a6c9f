"""The bench's baselines relay for real: the lean Python pair and the nginx pair.

Each pair stands where the two nodes stand, mutual TLS between its two proxies with the
nodes' certificates, in front of the recording registry of the integration conftest.
Correctness only: what arrives at the registry and what comes back, keep-alive, a
refused client without a certificate, a failed next hop. Speed is ``make bench``'s.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gateway.sandbox.bench import nginx, wrk
from gateway.sandbox.localnet import LocalNet, free_port, wait_http
from tests.integration.conftest import LIPPSTADT, SOEST, RecordingRegistry

pytestmark = pytest.mark.integration

BODY = b'{"pad":"' + b"x" * 3000 + b'"}'


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> LocalNet:
    """The federation's CA and the two nodes' authentication certificates (no process)."""
    return LocalNet.create(tmp_path_factory.mktemp("net"), [SOEST, LIPPSTADT], datetime.now(UTC))


def _stop(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _relay(certs: LocalNet, ags: str, port: int, upstream: str, tls_in: bool) -> list[str]:
    node = certs.nodes[ags]
    args = [
        sys.executable, "-m", "gateway.sandbox.bench.relay", "--port", str(port),
        "--upstream", upstream, "--cert", str(node.auth_cert),
        "--key", str(node.directory / "auth.key"), "--ca", str(certs.ca_cert),
        "--key-passphrase-file", str(node.key_passphrase_file),
    ]  # fmt: skip
    return [*args, "--tls-in"] if tls_in else args


@pytest.fixture(scope="module")
def lean_pair(certs: LocalNet, registry: RecordingRegistry) -> Iterator[tuple[str, str]]:
    """The lean relay pair; yields the front's URL and the back's (mutual TLS) URL."""
    back_port, front_port = free_port(), free_port()
    back = subprocess.Popen(_relay(certs, LIPPSTADT.ags, back_port, registry.url, True))
    front = subprocess.Popen(
        _relay(certs, SOEST.ags, front_port, f"https://127.0.0.1:{back_port}", False)
    )
    try:
        wait_http(f"http://127.0.0.1:{front_port}/health", front)
        yield f"http://127.0.0.1:{front_port}", f"https://127.0.0.1:{back_port}"
    finally:
        _stop(front, back)


@pytest.fixture(scope="module")
def nginx_pair(
    certs: LocalNet, registry: RecordingRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    if nginx.executable() is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx)")
    root = tmp_path_factory.mktemp("nginx")
    soest, lippstadt = certs.nodes[SOEST.ags], certs.nodes[LIPPSTADT.ags]
    back_port, front_port = free_port(), free_port()
    registry_port = int(registry.url.rsplit(":", 1)[1])
    back = nginx.start(
        root / "back",
        port=back_port,
        upstream_port=registry_port,
        cert=lippstadt.auth_cert,
        key=lippstadt.directory / "auth.key",
        password_file=lippstadt.key_passphrase_file,
        ca=certs.ca_cert,
        tls_in=True,
        tls_out=False,
    )
    front = nginx.start(
        root / "front",
        port=front_port,
        upstream_port=back_port,
        cert=soest.auth_cert,
        key=soest.directory / "auth.key",
        password_file=soest.key_passphrase_file,
        ca=certs.ca_cert,
        tls_in=False,
        tls_out=True,
        peer_name=nginx.common_name(lippstadt.auth_cert),
    )
    try:
        wait_http(f"http://127.0.0.1:{front_port}/health", front)
        yield f"http://127.0.0.1:{front_port}", f"https://127.0.0.1:{back_port}"
    finally:
        _stop(front, back)


def _relays_end_to_end(front: str, registry: RecordingRegistry) -> None:
    before = registry.count()
    with httpx.Client(base_url=front) as client:
        answers = [
            client.post(
                f"/echo/{i}?q=1",
                content=BODY,
                headers={"Content-Type": "application/json", "X-Probe": f"probe-{i}"},
            )
            for i in range(3)
        ]
        again = client.get("/personen?name=Anna")
    for i, resp in enumerate(answers):
        assert resp.status_code == 200
        assert resp.headers["x-registry"] == "recording"
        document = resp.json()
        assert document["path"] == f"/echo/{i}?q=1"
        assert document["echo"].encode() == BODY
    assert again.status_code == 200
    assert again.json()["path"] == "/personen?name=Anna"
    calls = registry.calls[before:]
    assert [c.method for c in calls] == ["POST", "POST", "POST", "GET"]
    assert [c.headers.get("x-probe") for c in calls[:3]] == ["probe-0", "probe-1", "probe-2"]
    assert all(c.body == BODY for c in calls[:3])


def _refuses_without_client_certificate(back: str, certs: LocalNet) -> None:
    """The back proxy speaks only to a client with a certificate of the federation."""
    context = ssl.create_default_context(cafile=str(certs.ca_cert))
    context.check_hostname = False
    with pytest.raises(httpx.TransportError):
        resp = httpx.post(f"{back}/echo", content=BODY, verify=context)
        # nginx answers a missing client certificate with 400 instead of an alert.
        if resp.status_code == 400:
            raise httpx.TransportError("refused: no client certificate")


def test_lean_relay_pair_relays_requests_and_answers(
    lean_pair: tuple[str, str], registry: RecordingRegistry
) -> None:
    _relays_end_to_end(lean_pair[0], registry)


def test_lean_relay_back_requires_a_client_certificate(
    lean_pair: tuple[str, str], certs: LocalNet
) -> None:
    _refuses_without_client_certificate(lean_pair[1], certs)


def test_lean_relay_answers_502_when_the_next_hop_is_down(certs: LocalNet) -> None:
    port, nobody = free_port(), free_port()
    front = subprocess.Popen(_relay(certs, SOEST.ags, port, f"http://127.0.0.1:{nobody}", False))
    try:
        answer: httpx.Response | None = None
        deadline = time.monotonic() + 20
        while answer is None and time.monotonic() < deadline:
            assert front.poll() is None, "the relay exited"
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/echo", content=BODY)
            except httpx.ConnectError:
                time.sleep(0.05)  # not listening yet
        assert answer is not None
        assert answer.status_code == 502
    finally:
        _stop(front)


def test_nginx_pair_relays_requests_and_answers(
    nginx_pair: tuple[str, str], registry: RecordingRegistry
) -> None:
    _relays_end_to_end(nginx_pair[0], registry)


def test_nginx_back_requires_a_client_certificate(
    nginx_pair: tuple[str, str], certs: LocalNet
) -> None:
    _refuses_without_client_certificate(nginx_pair[1], certs)


@pytest.mark.parametrize("generator", ["python", "wrk"])
def test_both_load_generators_send_what_they_are_told(
    generator: str, registry: RecordingRegistry, tmp_path: Path
) -> None:
    """A GET for the sample registry's lookups, a POST with headers and body for the
    exchanges: each generator counts the answers it got and sends the request asked."""
    if generator == "wrk" and wrk.executable() is None:
        pytest.skip("wrk is not installed (Debian: apt-get install wrk)")
    for method in ("GET", "POST"):
        before = registry.count()
        url = f"{registry.url}/bench-{method.lower()}"
        if generator == "wrk":
            result = wrk.run(
                url,
                concurrency=2,
                duration=1,
                headers={"Content-Type": "application/json", "X-Probe": "wrk"},
                body=BODY if method == "POST" else b"",
                method=method,
                workdir=tmp_path,
            )
        else:
            args = [
                sys.executable, "-m", "gateway.sandbox.bench.loadgen", "--url", url,
                "--concurrency", "2", "--duration", "0.5", "--method", method,
                "--header", "X-Probe: python", "--body-bytes", str(len(BODY)),
            ]  # fmt: skip
            done = subprocess.run(args, capture_output=True, check=True, timeout=60)
            result = json.loads(done.stdout)
        calls = registry.calls[before:]
        assert result["errors"] == 0, result["first_error"]
        assert result["ok"] > 0
        assert len(calls) >= result["ok"]
        assert {c.method for c in calls} == {method}
        assert {c.headers.get("x-probe") for c in calls} == {generator}
        if method == "POST":
            assert all(c.body.startswith(b'{"pad":') and len(c.body) > 3000 for c in calls)
        else:
            assert all(c.body == b"" for c in calls)
