"""``python -m gateway`` as an operator uses it: PKI, config checks, the error table, demo."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.core.errors import ERROR_TABLE, Code
from gateway.localnet import LIPPSTADT, SOEST, LocalNet

pytestmark = pytest.mark.integration

ANNA_QUERY = "familienname=Schmidt&vornamen=Anna&geburtsdatum=1988-03-14"
SERVICE_ID = "DE-NRW/GOV/05974028/melderegister/einfacheAuskunft"
GEWERBEAMT_ID = "DE-NRW/GOV/05974040/gewerbeamt"


def gateway(
    *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def assert_usage_error(result: subprocess.CompletedProcess[str], *mentions: str) -> None:
    """Exit 2, and the message is a single ``gateway: error:`` line, not a traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("gateway: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for text in mentions:
        assert text in result.stderr, result.stderr


# ---------------------------------------------------------------- pki


def test_pki_init_request_issue(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    key, csr, cert = tmp_path / "auth.key", tmp_path / "auth.csr", tmp_path / "auth.pem"

    result = gateway("pki", "init", str(ca))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((ca / "ca.key").stat().st_mode) == 0o600

    node_id = "DE-NRW/GOV/05974040/ss1"
    result = gateway(
        "pki", "request", "--kind", "auth", "--id", node_id, "--key", str(key), "--csr", str(csr)
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert csr.read_text().startswith("-----BEGIN CERTIFICATE REQUEST-----")

    result = gateway(
        "pki", "issue", "--ca", str(ca), "--csr", str(csr), "--kind", "auth", "--out", str(cert)
    )
    assert result.returncode == 0, result.stderr
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca / "ca.pem"), str(cert)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.strip() == f"{cert}: OK"
    subject = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-subject", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert node_id in subject.stdout
    assert f"urn:x-road:node:{node_id}" in subject.stdout

    again = gateway("pki", "init", str(ca))
    assert_usage_error(again, "already exists")
    assert len(again.stderr.strip().splitlines()) == 1


def test_pki_request_with_a_bad_id(tmp_path: Path) -> None:
    key, csr = tmp_path / "bad.key", tmp_path / "bad.csr"
    result = gateway(
        "pki",
        "request",
        "--kind",
        "auth",
        "--id",
        "DE-NRW/GOV",
        "--key",
        str(key),
        "--csr",
        str(csr),
    )
    assert_usage_error(result, "node id", "4 parts")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not key.exists()
    assert not csr.exists()


# ---------------------------------------------------------------- node check


@dataclass(frozen=True)
class Broken:
    """Soest's generated config with the first ``original`` replaced by ``broken``."""

    original: str
    broken: str
    mentions: tuple[str, ...]


CONFIG_PROBLEMS = {
    "typo-key": Broken(
        "consumer_listen =", "consumer_lisen =", ("node.consumer_lisen", "Extra inputs")
    ),
    "bad-node-id": Broken(
        f'id = "{SOEST.node}"', f'id = "{SOEST.member}"', ("node.id", "node id has 4 parts")
    ),
    "bad-port": Broken(
        'peer_listen = "127.0.0.1:', 'peer_listen = "127.0.0.1:9', ("peer_listen", "HOST:PORT")
    ),
    "typo-section": Broken("[[signing]]", "[[signer]]", ("signer", "signing")),
    "ocsp-refresh-too-long": Broken(
        'auth_key = "auth.key"',
        'auth_key = "auth.key"\nocsp_refresh_seconds = 3600',
        ("ocsp_refresh_seconds (3600)", "must be shorter", "ocsp_freshness_seconds (3600)"),
    ),
}
OCSP_PROBLEMS = {
    # The responder entry becomes a second TSA entry: still a valid file, no responder.
    "no-ocsp-responder": Broken(
        "[[directory.ocsp_responders]]\nca_cert =",
        '[[directory.tsas]]\nname = "not a responder"\ncert =',
        ("lists no OCSP responder", "does not start", "[[directory.ocsp_responders]]"),
    ),
}
KEY_PROBLEMS = {
    "auth-key-missing": Broken(
        'auth_key = "auth.key"', 'auth_key = "missing.key"', ("missing.key",)
    ),
    "auth-key-not-the-certs": Broken(
        'auth_key = "auth.key"', 'auth_key = "sign.key"', ("sign.key",)
    ),
    "auth-key-not-a-key": Broken('auth_key = "auth.key"', 'auth_key = "node.toml"', ("node.toml",)),
    "sign-key-not-the-certs": Broken('key = "sign.key"', 'key = "auth.key"', ("auth.key",)),
}

Checked = dict[str, tuple[Path, subprocess.CompletedProcess[str]]]


@pytest.fixture(scope="module")
def checks(tmp_path_factory: pytest.TempPathFactory) -> Checked:
    """``node check`` on Soest's generated config and on each broken variant of it.

    The checks run concurrently: each one pays the interpreter's start-up and imports.
    """
    net = LocalNet.create(tmp_path_factory.mktemp("cli"), [SOEST, LIPPSTADT], datetime.now(UTC))
    net.write_configs()
    files = net.nodes[SOEST.ags]
    text = files.config.read_text("utf-8")
    configs = {"valid": files.config}
    for name, case in {**CONFIG_PROBLEMS, **KEY_PROBLEMS, **OCSP_PROBLEMS}.items():
        assert case.original in text, name
        configs[name] = files.directory / f"broken-{name}.toml"
        configs[name].write_text(text.replace(case.original, case.broken, 1), "utf-8")
    procs: dict[str, subprocess.Popen[str]] = {}
    results: Checked = {}
    net.start_trust()  # 'node check' asks the OCSP responder about the node's certificates
    try:
        for name, config in configs.items():
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "gateway", "node", "check", "--config", str(config)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=60)
            results[name] = (
                configs[name],
                subprocess.CompletedProcess(proc.args, proc.returncode, out, err),
            )
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        net.stop()
    return results


def test_node_check_accepts_a_generated_config(checks: Checked) -> None:
    _, result = checks["valid"]
    assert result.returncode == 0, result.stderr
    assert f"valid for node {SOEST.node}" in result.stdout
    assert result.stderr == ""
    assert "OCSP: freshness window 3600 s (directory), refresh every 1200 s (node)" in (
        result.stdout
    )
    for certificate in (f"authentication certificate of {SOEST.node}", f"of {SOEST.member}"):
        line = next(x for x in result.stdout.splitlines() if certificate in x)
        assert "/ocsp" in line and "; good, thisUpdate" in line, result.stdout


@pytest.mark.parametrize("case", sorted(CONFIG_PROBLEMS))
def test_node_check_names_the_problem(checks: Checked, case: str) -> None:
    config, result = checks[case]
    assert_usage_error(result, str(config), *CONFIG_PROBLEMS[case].mentions)


@pytest.mark.parametrize("case", sorted(KEY_PROBLEMS))
def test_node_check_names_a_bad_key_file(checks: Checked, case: str) -> None:
    _, result = checks[case]
    assert_usage_error(result, *KEY_PROBLEMS[case].mentions)
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("case", sorted(OCSP_PROBLEMS))
def test_node_check_refuses_a_node_that_cannot_learn_its_ocsp_status(
    checks: Checked, case: str
) -> None:
    _, result = checks[case]
    assert_usage_error(result, *OCSP_PROBLEMS[case].mentions)
    assert len(result.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- errors


def test_errors_lists_every_code() -> None:
    result = gateway("errors")
    assert result.returncode == 0, result.stderr
    listed: dict[str, int] = {}
    for line in result.stdout.splitlines():
        status, code, *_ = line.split()
        listed[code] = int(status)
    assert set(listed) == {c.value for c in Code}
    assert listed == {c.value: ERROR_TABLE[c].status for c in Code}


# ---------------------------------------------------------------- demo


def _wait_for_topology(path: Path, proc: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"demo exited with {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            topology: dict[str, Any] = json.loads(path.read_text("utf-8"))
            return topology
        time.sleep(0.1)
    pytest.fail(f"{path} did not appear within 60 s:\n{log.read_text()}")


def test_demo_serve(tmp_path: Path) -> None:
    state, log = tmp_path / "state", tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "demo", "--serve", "--dir", str(state)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        topology = _wait_for_topology(state / "topology.json", proc, log)

        assert topology["instance"] == "DE-NRW"
        assert Path(topology["ca_certificate"]).is_file()
        # The federation is run by a real central authority the nodes bootstrap from.
        assert topology["central_url"].startswith("http://127.0.0.1:")
        assert Path(topology["anchor"]).is_file()
        timestamp = httpx.get(f"{topology['central_url']}/tuf/metadata/timestamp.json")
        assert timestamp.status_code == 200, timestamp.text
        nodes = {n["name"]: n for n in topology["nodes"]}
        assert set(nodes) == {"Stadt Soest", "Stadt Lippstadt"}
        soest, lippstadt = nodes["Stadt Soest"], nodes["Stadt Lippstadt"]
        assert soest["id"] == "DE-NRW/GOV/05974040/ss1"
        assert lippstadt["id"] == "DE-NRW/GOV/05974028/ss1"
        assert soest["clients"] == [GEWERBEAMT_ID]
        assert lippstadt["clients"] == ["DE-NRW/GOV/05974028/melderegister"]
        for node in (soest, lippstadt):
            assert node["consumer_url"].startswith("http://127.0.0.1:")
            assert node["peer_url"].startswith("https://127.0.0.1:")
            assert Path(node["messagelog"]).is_file()
            assert Path(node["config"]).is_file()
        (service,) = topology["services"]
        assert service["id"] == SERVICE_ID
        assert service["allowed_clients"] == [GEWERBEAMT_ID]
        assert "GET" in service["methods"]

        # The README's call, made from the topology file.
        response = httpx.get(
            f"{soest['consumer_url']}/r1/{SERVICE_ID}?{ANNA_QUERY}",
            headers={"X-Road-Client": GEWERBEAMT_ID},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert response.headers["X-Road-Service"] == SERVICE_ID
        person = response.json()["person"]
        assert (person["familienname"], person["vornamen"]) == ("Schmidt", "Anna")
        address = person["anschrift"]
        assert (address["strasse"], address["postleitzahl"], address["wohnort"]) == (
            "Lange Straße",
            "59555",
            "Lippstadt",
        )

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The demo stopped the nodes it started.
    for node in (soest, lippstadt):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{node['consumer_url']}/health", timeout=5)


def test_demo_runs_once_and_explains_both_logs(tmp_path: Path) -> None:
    result = gateway("demo", "--dir", str(tmp_path / "state"), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Message logs" in out
    for city, role in (("Soest", "consumer"), ("Lippstadt", "provider")):
        for kind in ("request", "response"):
            assert any(line.split()[:3] == [city, role, kind] for line in out.splitlines()), (
                f"no {city} {role} {kind} line in:\n{out}"
            )
    assert "result: OK, both nodes logged request and response" in out
    assert "Lange Straße" in out
    # The central authority runs the federation and both cities join through it.
    assert re.search(
        r"central authority up at http://127\.0\.0\.1:\d+, anchor root fingerprint [0-9a-f]{64}",
        out,
    ), out
    approvals = re.findall(
        r"registration request #[0-9a-f]+ (auth-cert|client) (DE-NRW/GOV/\d+(?:/\w+)?) "
        r"signed with (?:both keys|the member key), approved → configuration serial (\d+)",
        out,
    )
    assert [(kind, who) for kind, who, _ in approvals] == [
        ("auth-cert", "DE-NRW/GOV/05974028/ss1"),
        ("client", "DE-NRW/GOV/05974028/melderegister"),
        ("auth-cert", "DE-NRW/GOV/05974040/ss1"),
        ("client", "DE-NRW/GOV/05974040/gewerbeamt"),
    ], out
    serials = [int(serial) for _, _, serial in approvals]
    assert serials == sorted(set(serials)), out  # every approval publishes a new serial
    for city in ("Lippstadt", "Soest"):
        assert f"{city} joins: keys, CSR, certificates" in out
    assert f"Nodes started on the signed global configuration, serial {serials[-1]}" in out
    # OCSP status of all four certificates, verified by the demo itself.
    assert len(re.findall(r"(auth|sign) serial [0-9a-f]+: good, thisUpdate", out)) == 4, out
    # Every entry of the exchange proven against a timestamped tree head, on both nodes.
    proven = re.findall(
        r"(consumer|provider) +(request|response) +#\d+: leaf \d+ of tree head", out
    )
    assert sorted(proven) == [
        ("consumer", "request"),
        ("consumer", "response"),
        ("provider", "request"),
        ("provider", "response"),
    ], out
