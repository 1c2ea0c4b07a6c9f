"""``python -m gateway`` as an operator uses it: PKI, config checks, the error table, demo."""

from __future__ import annotations

import stat
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.central.errors import CENTRAL_ERROR_TABLE, CentralCode
from gateway.conf.anchor import save_anchor
from gateway.conf.tufdev import DevRepository
from gateway.console.errors import CONSOLE_ERROR_TABLE, ConsoleCode
from gateway.core.errors import ADMIN_ERROR_TABLE, ERROR_TABLE, Code
from gateway.sandbox.cities import LIPPSTADT, SOEST
from gateway.sandbox.localnet import LocalNet

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
    secret = tmp_path / "passphrase"
    secret.write_text("Soester-Boerde\n")
    secret.chmod(0o600)
    result = gateway(
        "pki", "request", "--kind", "auth", "--id", node_id, "--key", str(key), "--csr", str(csr),
        "--passphrase-file", str(secret),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
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
    "static-directory": Broken(
        "[globalconf]",
        '[directory]\ninstance = "DE-NRW"\n\n[globalconf]',
        ("[directory] section is no longer supported", "[globalconf]", "gateway central anchor"),
    ),
    "no-globalconf": Broken(
        "[globalconf]", "[globalconfig]", ("a [globalconf] section is required",)
    ),
}
OCSP_PROBLEMS = {
    # ``{anchor}`` is the federation's anchor; ``{no_ocsp_anchor}`` one of a repository
    # whose configuration lists the same CA without any OCSP responder.
    "no-ocsp-responder": Broken(
        'anchor = "{anchor}"',
        'anchor = "{no_ocsp_anchor}"',
        ("lists no OCSP responder", "does not start", "must list an OCSP responder"),
    ),
    # The window comes from the global configuration (3600 s), the interval from the file.
    "ocsp-refresh-too-long": Broken(
        'auth_key = "auth.key"',
        'auth_key = "auth.key"\nocsp_refresh_seconds = 3600',
        ("OCSP refresh interval (3600 s)", "shorter than the freshness window (3600 s)"),
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
    root = tmp_path_factory.mktemp("cli")
    net = LocalNet.create(root, [SOEST, LIPPSTADT], datetime.now(UTC))
    net.write_configs()
    no_ocsp = DevRepository(root / "tuf-no-ocsp", "DE-NRW")
    no_ocsp.serve()
    conf = net.globalconf()
    conf = replace(conf, cas=tuple(replace(ca, ocsp_urls=()) for ca in conf.cas))
    no_ocsp.publish(conf.to_bytes())
    save_anchor(root / "anchor-no-ocsp.json", no_ocsp.anchor())
    places = {"anchor": str(net.anchor_path), "no_ocsp_anchor": str(root / "anchor-no-ocsp.json")}
    files = net.nodes[SOEST.ags]
    text = files.config.read_text("utf-8")
    configs = {"valid": files.config}
    cases = {**CONFIG_PROBLEMS, **KEY_PROBLEMS}
    cases |= {
        name: Broken(case.original.format(**places), case.broken.format(**places), case.mentions)
        for name, case in OCSP_PROBLEMS.items()
    }
    for name, case in cases.items():
        assert case.original in text, name
        # Checks run concurrently: each keeps its own TUF cache.
        variant = text.replace('state_dir = "globalconf"', f'state_dir = "globalconf-{name}"')
        configs[name] = files.directory / f"broken-{name}.toml"
        configs[name].write_text(variant.replace(case.original, case.broken, 1), "utf-8")
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
        no_ocsp.shutdown()
        net.stop()
    return results


def test_node_check_accepts_a_generated_config(checks: Checked) -> None:
    _, result = checks["valid"]
    assert result.returncode == 0, result.stderr
    assert f"valid for node {SOEST.node}" in result.stdout
    assert result.stderr == ""
    assert "OCSP: freshness window 3600 s (global configuration), refresh every 1200 s (node)" in (
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
    expected = {c.value: ERROR_TABLE[c].status for c in Code}
    expected |= {c.value: CENTRAL_ERROR_TABLE[c].status for c in CentralCode}
    expected |= {c.value: spec.status for c, spec in ADMIN_ERROR_TABLE.items()}
    expected |= {c.value: CONSOLE_ERROR_TABLE[c].status for c in ConsoleCode}
    assert listed == expected


def test_parser_does_not_load_the_registry_apps() -> None:
    """Every command builds the whole parser; the sample web apps load only when run."""
    probe = (
        "import sys, gateway.cli; gateway.cli.build_parser(); "
        "print(sorted(m for m in sys.modules if m == 'fastapi' or m.endswith('.app')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
