"""``gateway setup`` prepares a federation that runs, and a second run changes nothing.

The state is prepared with the real command (``--hosts loopback``: the compose topology
on 127.0.0.1), then the central, the trust services, Lippstadt's Melderegister and the
nodes of Soest and Lippstadt run from it as separate processes and make one exchange —
so the prepared state is shown usable, not only present.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from gateway.central import registry
from gateway.central.service import Central
from gateway.messagelog import read_entries
from gateway.sandbox.cities import IHK, ISERLOHN, LIPPSTADT, SOEST, TRADE_OFFICE
from gateway.sandbox.federation import start_nodes
from gateway.sandbox.localnet import wait_http
from gateway.sandbox.setup import (
    ACTOR,
    MELDEREGISTER_SERVICES,
    federation,
    loopback_addresses,
)


def gateway_setup(state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "setup", "--state", str(state), "--hosts", "loopback"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file's digest and modification time: what "changes nothing" compares."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One prepared state per module; tests that change it work on a copy."""
    state = tmp_path_factory.mktemp("setup") / "state"
    result = gateway_setup(state)
    assert result.returncode == 0, result.stderr
    assert "is complete (loopback hosts)" in result.stdout
    return state


@pytest.fixture
def state(prepared: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "state"
    shutil.copytree(prepared, copy)
    return copy


def test_the_central_lists_every_member_node_and_client_approved_by_setup(prepared: Path) -> None:
    central = Central(prepared / "central")
    nodes = {n["id"]: n for n in registry.list_nodes(central)}
    for city in (SOEST, LIPPSTADT, ISERLOHN, IHK):
        node = nodes[str(city.node)]
        assert node["address"].startswith("https://127.0.0.1:")
        assert {str(city.subsystem(s)) for s in city.subsystems} <= set(node["clients"])
    approvals = [e for e in central.audit(limit=1000) if e["action"] == "request.approve"]
    assert len(approvals) == 8  # a node and one client for each of the four members
    assert {e["actor"] for e in approvals} == {ACTOR}


def test_the_keys_stay_on_the_nodes_volumes(prepared: Path) -> None:
    central_files = {p.name for p in (prepared / "central").rglob("*")}
    assert not {"auth.key", "sign.key"} & central_files
    for volume in ("soest-node", "lippstadt-node", "iserlohn-node", "ihk-node"):
        key = prepared / volume / "auth.key"
        assert key.stat().st_mode & 0o077 == 0, f"{key} is readable by others"


def test_the_prepared_state_runs_an_exchange(state: Path) -> None:
    net = federation(state, loopback_addresses(state))
    ports = loopback_addresses(state).ports
    try:
        db = state / "lippstadt-registry" / "melderegister.sqlite"
        args = ["registry", "melderegister", "--city", "lippstadt", "--db", str(db)]
        proc = net._spawn([*args, "--port", str(ports["melderegister"])], "melderegister")
        # The processes start side by side: each takes seconds to import on a busy machine.
        with ThreadPoolExecutor(max_workers=2) as pool:
            trust, central = pool.submit(net.start_trust), pool.submit(net.start_central)
            trust.result()
            central.result()
        wait_http(f"http://127.0.0.1:{ports['melderegister']}/health", proc)
        start_nodes(net, [SOEST.ags, LIPPSTADT.ags])
        soest = net.nodes[SOEST.ags]
        response = httpx.get(
            f"{soest.consumer_url}/r1/{MELDEREGISTER_SERVICES[LIPPSTADT.ags]}",
            params={"familienname": "Schmidt", "vornamen": "Anna", "geburtsdatum": "1988-03-14"},
            headers={"X-Road-Client": str(TRADE_OFFICE), "X-Road-Issue": "GEW-2026-0815"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert "Schmidt" in response.text
        message_id = response.headers["X-Road-Request-Id"]
        for files in (soest, net.nodes[LIPPSTADT.ags]):
            kinds = {e.kind for e in read_entries(files.messagelog, message_id=message_id)}
            assert kinds == {"request", "response"}, files.city.name
    finally:
        net.stop()


def test_a_second_run_changes_nothing(state: Path) -> None:
    before = snapshot(state)
    result = gateway_setup(state)
    assert result.returncode == 0, result.stderr
    assert "0 step(s) done now" in result.stdout
    assert "created" not in result.stdout
    assert snapshot(state) == before


def test_missing_node_files_are_completed_as_before(state: Path) -> None:
    node = state / "soest-node"
    before = {name: (node / name).read_bytes() for name in ("node.toml", "anchor.json")}
    for name in before:
        (node / name).unlink()
    result = gateway_setup(state)
    assert result.returncode == 0, result.stderr
    assert f"created node configuration {node / 'node.toml'}" in result.stdout
    assert {name: (node / name).read_bytes() for name in before} == before


def test_a_node_volume_reset_after_joining_is_refused(state: Path) -> None:
    shutil.rmtree(state / "iserlohn-node")
    (state / "iserlohn-node").mkdir()
    result = gateway_setup(state)
    assert result.returncode == 2
    assert f"registers {ISERLOHN.node} with another authentication certificate" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_interrupted_ca_is_refused_before_anything_is_issued(tmp_path: Path) -> None:
    ca = tmp_path / "state" / "trust" / "ca"
    ca.mkdir(parents=True)
    (ca / "ca.key").write_text("half-written")
    result = gateway_setup(tmp_path / "state")
    assert result.returncode == 2
    assert "holds a CA without its certificate" in result.stderr
    assert not (tmp_path / "state" / "central" / "central.sqlite").exists()


def test_an_interrupted_central_init_is_refused(state: Path) -> None:
    (state / "central" / "anchor.json").unlink()
    result = gateway_setup(state)
    assert result.returncode == 2
    assert "did not finish" in result.stderr


def test_state_prepared_for_other_hosts_is_refused(state: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "setup", "--state", str(state), "--hosts", "compose"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "prepared for other hosts" in result.stderr
