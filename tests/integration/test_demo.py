"""``gateway demo --serve``: the three-city story end to end, then the federation it leaves
running, checked from its topology file and through the portal, as a user would."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

SERVICE_ID = "DE-NRW/GOV/05974028/melderegister/einfacheAuskunft"
GEWERBEAMT_ID = "DE-NRW/GOV/05974040/gewerbeamt"
ANNA_QUERY = "familienname=Schmidt&vornamen=Anna&geburtsdatum=1988-03-14"
README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_between(start: str, end: str) -> str:
    text = README.read_text("utf-8")
    assert start in text, f"README.md no longer has {start!r}"
    return text.split(start, 1)[1].split(end, 1)[0]


def _keys(value: object) -> set[str]:
    """Every key of every object in ``value``, at any depth."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def _undocumented_keys(topology: dict[str, Any]) -> set[str]:
    """Keys the demo writes into ``topology.json`` that README's table does not name."""
    table = _readme_between("The topology file:", "Any X-Road REST client")
    documented = set(re.findall(r"`([a-z_]+)(?:\[\])?`", table))
    return _keys(topology) - documented


def _jq(value: Any, path: str) -> Any:
    """``path`` (``.a[0].b``, the jq paths README's example uses) applied to ``value``."""
    steps = re.findall(r"\.(\w+)|\[(\d+)\]", path)
    assert "".join(f".{k}" if k else f"[{i}]" for k, i in steps) == path, path
    for key, index in steps:
        value = value[key] if key else value[int(index)]
    return value


@dataclass(frozen=True)
class ReadmeCall:
    """README's ``curl`` example, with its ``jq`` look-ups made in a real topology."""

    url: str
    headers: dict[str, str]
    cert: str
    key: str
    cacert: str


def _readme_call(topology: dict[str, Any]) -> ReadmeCall:
    block = _readme_between("Any X-Road REST client works against", "```\n\n")
    block = block.split("```sh\n", 1)[1]
    select = re.search(r"""soest='\.nodes\[\] \| select\(\.name=="([^"]+)"\)'""", block)
    assert select is not None, block
    (node,) = [n for n in topology["nodes"] if n["name"] == select.group(1)]
    command = re.sub(
        r'\$\(jq -r "\$soest([^"]+)" state/topology\.json\)',
        lambda m: str(_jq(node, m.group(1))),
        block.split("\n", 1)[1].replace("\\\n", " "),
    )
    args, options, headers, urls = shlex.split(command), {}, {}, []
    assert args[:2] == ["curl", "-s"], args
    rest = iter(args[2:])
    for arg in rest:
        if arg == "-H":
            name, _, value = next(rest).partition(": ")
            headers[name] = value
        elif arg.startswith("--"):
            options[arg] = next(rest)
        else:
            urls.append(arg)
    assert set(options) == {"--cert", "--key", "--cacert"}, options
    (url,) = urls
    return ReadmeCall(url, headers, options["--cert"], options["--key"], options["--cacert"])


def _wait_for_topology(path: Path, proc: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"demo exited with {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            topology: dict[str, Any] = json.loads(path.read_text("utf-8"))
            return topology
        time.sleep(0.2)
    pytest.fail(f"{path} did not appear within 120 s:\n{log.read_text()}")


def _pid_of(args: tuple[str, ...]) -> int:
    """The pid of the one process whose command line holds ``args`` in this order."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            joined = "\0".join(argv)
            if "\0".join(args) in joined:
                found.append(int(entry.name))
    assert len(found) == 1, found
    return found[0]


def _wait_for_line(log: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text("utf-8"):
            return
        time.sleep(0.2)
    pytest.fail(f"{text!r} not in the demo's output within {timeout} s:\n{log.read_text()}")


def _check_story(out: str) -> None:
    """The printed story: joins, Iserlohn joining late, Anna's journey, logs, proofs."""
    assert re.search(r"anchor root fingerprint\s+[0-9a-f]{64}", out), out
    approvals = re.findall(
        r"registration request #[0-9a-f]+ (auth-cert|client) (DE-NRW/GOV/[\w-]+(?:/\w+)?) "
        r"signed with (?:both keys|the member key): approved → configuration serial (\d+)",
        out,
    )
    assert [(kind, who) for kind, who, _ in approvals] == [
        ("auth-cert", "DE-NRW/GOV/05974028/ss1"),
        ("client", "DE-NRW/GOV/05974028/melderegister"),
        ("auth-cert", "DE-NRW/GOV/05974040/ss1"),
        ("client", "DE-NRW/GOV/05974040/gewerbeamt"),
        ("auth-cert", "DE-NRW/GOV/IHK-ARNSBERG/ss1"),
        ("client", "DE-NRW/GOV/IHK-ARNSBERG/kammer"),
    ], out
    serials = [int(serial) for _, _, serial in approvals]
    assert serials == sorted(set(serials)), out  # every approval publishes a new serial
    # Iserlohn joins while the federation runs: pending, refused, approved, reached.
    assert re.search(r"DE-NRW/GOV/05962024/ss1 signed with both keys: pending", out), out
    assert "cannot route to Iserlohn:\n     HTTP 500 server.clientproxy." in out, out
    assert re.search(r"Iserlohn's node and Melderegister started; Soest's node reached it", out)
    # All six certificates of the first three members are good at the responder.
    assert len(re.findall(r"(auth|sign) serial [0-9a-f]+: good", out)) == 6, out
    # Anna's journey: data read through the gateway for a case, confirmed, registered.
    case = re.search(r"Vorgang \(X-Road-Issue\)\s+(GA-\d{4}-\d+)", out)
    assert case is not None, out
    assert re.search(r"Anschrift\s+Lange Straße 12, 59555 Lippstadt", out), out
    aktenzeichen = re.search(r"Aktenzeichen im Gewerberegister\s+(GEW-\d{4}-\d+)", out)
    assert aktenzeichen is not None, out
    # The signed header carries the case and the portal as user.
    assert f'"issue": "{case.group(1)}"' in out
    assert '"user_id": "portal-gewerbeamt-soest"' in out
    for city, role in (("Soest", "consumer"), ("Lippstadt", "provider")):
        for kind in ("request", "response"):
            assert any(line.split()[:3] == [city, role, kind] for line in out.splitlines()), (
                f"no {city} {role} {kind} log line in:\n{out}"
            )
    assert f"IHK inbox: 1 notification(s) for {aktenzeichen.group(1)}" in out, out
    # The tracker lists exactly the one read, naming Soest's trade office and the case.
    tracker = re.findall(r"Zugriff \d+\s+(.*)", out)
    assert len(tracker) == 1, out
    assert "Stadt Lippstadt" in tracker[0] and "Stadt Soest (gewerbeamt)" in tracker[0]
    assert case.group(1) in tracker[0]
    # Every entry of the exchange proven against a timestamped tree head, on both nodes.
    proven = re.findall(r"(consumer|provider) +(request|response) +#\d+: leaf \d+ of tree", out)
    assert sorted(proven) == [
        ("consumer", "request"),
        ("consumer", "response"),
        ("provider", "request"),
        ("provider", "response"),
    ], out
    # Partner nodes co-signed Lippstadt's signed tree head, and nobody saw a split view.
    witnesses = re.findall(r"(DE-NRW/GOV/[\w-]+/ss1) co-signed Lippstadt's head", out)
    assert len(set(witnesses)) >= 2, out
    assert "split views detected: 0" in out, out
    # The closing offline audit of Lippstadt's log, co-signatures included.
    assert re.search(r"OK: \d+ entries with \d+ signatures", out), out
    cosigned = re.search(r"(\d+) co-signatures by witnesses", out)
    assert cosigned is not None and int(cosigned.group(1)) >= 2, out
    # The configuration versions Lippstadt applied (before and after Iserlohn joined) are
    # carried, and the entries are placed under the one in force when they were logged.
    versions = re.search(r"configuration versions in force \(serials (\d+(?:, \d+)+)\)", out)
    assert versions is not None, out
    assert re.search(r"in force: entries \d+(?:-\d+)? under serial \d+", out), out
    # Both nodes' log files were grepped for Anna's IDNr, name and moving-in date, and
    # hold none of them: their data keys seal what they log.
    for city in ("Soest", "Lippstadt"):
        assert re.search(rf"Stadt {city}: messagelog\.sqlite \(\d+ bytes\): none of them", out), out
    assert "52693074139, Schmidt, 2016-08-01" in out, out
    subjects = re.search(r"(\d+) entries checked, (\d+) naming a person, 0 mismatches", out)
    assert subjects is not None and int(subjects.group(2)) >= 1, out
    # An operator grants Iserlohn's trade office access on Lippstadt's running node with
    # the CLI: refused before, allowed after, refused again once revoked; no restart.
    chapter = out.split("== 11. An operator grants", 1)[1]
    refusals = re.findall(r"HTTP 500 (server\.serverproxy\.access_denied)", chapter)
    assert len(refusals) == 2, chapter
    assert "gateway node admin --url http://127.0.0.1:" in chapter, chapter
    assert re.search(
        r"access grant DE-NRW/GOV/05974028/melderegister/einfacheAuskunft "
        r"--client DE-NRW/GOV/05962024/gewerbeamt\n",
        chapter,
    ), chapter
    assert "the same call: HTTP 200, Anna Schmidt" in chapter, chapter
    assert chapter.count("exit status 0") == 2, chapter


@pytest.mark.timeout(300)  # the whole story in real processes, on a shared machine
def test_demo_tells_the_story_and_keeps_the_federation_running(tmp_path: Path) -> None:
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
        _check_story(log.read_text("utf-8"))

        assert topology["instance"] == "DE-NRW"
        [estonia] = topology["federated_instances"]
        assert estonia["instance"] == "EE-TEST"
        assert [n["member"] for n in estonia["nodes"]] == ["EE-TEST/GOV/70000310"]
        assert Path(topology["ca_certificate"]).is_file()
        assert topology["central_url"].startswith("http://127.0.0.1:")
        assert Path(topology["anchor"]).is_file()
        timestamp = httpx.get(f"{topology['central_url']}/tuf/metadata/timestamp.json")
        assert timestamp.status_code == 200, timestamp.text
        nodes = {n["name"]: n for n in topology["nodes"]}
        assert set(nodes) == {"Stadt Soest", "Stadt Lippstadt", "Stadt Iserlohn", "IHK Arnsberg"}
        soest = nodes["Stadt Soest"]
        assert soest["id"] == "DE-NRW/GOV/05974040/ss1"
        assert soest["clients"] == [GEWERBEAMT_ID]
        for node in nodes.values():
            # Every subsystem is https: the TLS port only, and the credentials to use it.
            assert node["consumer_url"] == node["consumer_tls_url"]
            assert node["consumer_tls_url"].startswith("https://127.0.0.1:")
            assert Path(node["consumer_tls_ca"]).is_file()
            assert [c["client"] for c in node["client_credentials"]] == node["clients"]
            for credential in node["client_credentials"]:
                assert credential["connection_type"] == "https"
                assert Path(credential["certificate"]).is_file()
                assert Path(credential["key"]).is_file()
            assert node["peer_url"].startswith("https://127.0.0.1:")
            assert node["metrics_url"].startswith("http://127.0.0.1:")
            # The node's API and its system administrator's key file, as an operator uses them.
            admin_key = Path(node["admin_key"]).read_text("ascii").strip()
            who = httpx.get(
                f"{node['admin_url']}/whoami",
                headers={"Authorization": f"Bearer {admin_key}"},
                timeout=10,
            )
            assert who.status_code == 200, who.text
            assert (who.json()["role"], who.json()["node"]) == ("system_administrator", node["id"])
            assert Path(node["messagelog"]).is_file()
        services = {s["id"]: s for s in topology["services"]}
        assert services[SERVICE_ID]["allowed_clients"] == [GEWERBEAMT_ID]
        metrics = httpx.get(f"{soest['metrics_url']}/metrics", timeout=10)
        assert metrics.status_code == 200 and "gateway_exchanges_total" in metrics.text

        # Every key of the file is in README's table, so a client can be written from it.
        assert _undocumented_keys(topology) == set()
        # The README's call, read from README.md and made with its jq look-ups in this
        # topology file: curl --cert/--key (the trade office's registered certificate)
        # --cacert (the node's internal TLS certificate). Without the certificate it is
        # refused.
        readme = _readme_call(topology)
        credential = soest["client_credentials"][0]
        assert (readme.cert, readme.key) == (credential["certificate"], credential["key"])
        assert readme.headers["X-Road-Client"] == credential["client"] == GEWERBEAMT_ID
        assert readme.cacert == soest["consumer_tls_ca"]
        assert readme.url == f"{soest['consumer_tls_url']}/r1/{SERVICE_ID}?{ANNA_QUERY}"
        edge = ssl.create_default_context(cafile=readme.cacert)
        anonymous = ssl.create_default_context(cafile=readme.cacert)
        edge.load_cert_chain(readme.cert, readme.key)
        call = (readme.url, readme.headers)
        refused = httpx.get(call[0], headers=call[1], verify=anonymous, timeout=30)
        assert refused.headers.get("X-Road-Error") == "client.ssl_authentication_failed"
        response = httpx.get(call[0], headers=call[1], verify=edge, timeout=30)
        assert response.status_code == 200, response.text
        assert "X-Data-Subject" not in response.headers
        person = response.json()["person"]
        assert (person["familienname"], person["vornamen"]) == ("Schmidt", "Anna")
        # The console runs over the central and Soest's node; a demo key of each role
        # signs in.
        console = topology["console"]
        roles = {(c["api"], c["role"]) for c in console["credentials"]}
        assert roles == {
            ("central", "system_administrator"),
            ("central", "registration_officer"),
            ("central", "observer"),
            ("node", "system_administrator"),
        }
        for credential in console["credentials"]:
            key_file = Path(credential["api_key_file"])
            assert key_file.stat().st_mode & 0o077 == 0
            with httpx.Client(base_url=console["url"], timeout=30) as browser:
                form = browser.get("/signin", params={"api": credential["api"]}).text
                token = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
                key = key_file.read_text("ascii").strip()
                signed_in = browser.post(
                    "/signin",
                    data={"csrf": token, "api": credential["api"], "key": key},
                    follow_redirects=True,
                )
                if credential["api"] == "central":
                    assert f'id="role">{credential["role"]}<' in signed_in.text
                    assert "Stadt Iserlohn" in signed_in.text  # the members page
                else:
                    assert soest["id"] in signed_in.text  # the node's diagnostics
                    assert 'id="ready" class="notice ok"' in signed_in.text
        # The portal stays up for a browser.
        portal = httpx.get(topology["portal_url"], timeout=10)
        assert portal.status_code == 200
        assert "Digitales Gewerbeamt" in portal.text

        # A fault tried by hand: kill -9 Lippstadt's Melderegister. The demo reports it
        # and restarts it; everything else keeps running and the call works again.
        lippstadt_db = state / "registries" / "melderegister.sqlite"
        victim = _pid_of(("registry", "melderegister", "--db", str(lippstadt_db)))
        os.kill(victim, signal.SIGKILL)
        _wait_for_line(log, f"process melderegister (pid {victim}) killed by signal SIGKILL")
        _wait_for_line(log, "restarted melderegister as pid")
        assert proc.poll() is None, log.read_text()
        assert httpx.get(topology["portal_url"], timeout=10).status_code == 200
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            again = httpx.get(call[0], headers=call[1], verify=edge, timeout=30)
            if again.status_code == 200:
                break
            time.sleep(0.5)
        assert again.status_code == 200, again.text

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "result: OK" in log.read_text("utf-8")
    # The demo stopped what it started.
    for node in nodes.values():
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{node['consumer_url']}/health", verify=anonymous, timeout=5)
