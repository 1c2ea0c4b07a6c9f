"""Root keys apart from the server, and a new root signed by their holders one by one.

``gateway central init --root-key-dirs`` puts each root key in a directory of its own,
none in the server's key store; ``gateway central root prepare``, ``root sign`` (once
per holder) and ``root publish`` rotate the root; publish refuses a root short of the
threshold of the current or the new root's keys; running nodes started with the old
anchor follow the new root through their TUF client (docs/global-configuration.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.sandbox.localnet import LocalNet, ServiceSpec
from tests.integration.conftest import GEWERBEAMT, LIPPSTADT, SERVICE, SOEST, RecordingRegistry
from tests.integration.test_globalconf import query

pytestmark = pytest.mark.integration

GATEWAY = [sys.executable, "-m", "gateway"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GATEWAY, *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def gateway(*args: str) -> str:
    done = run(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def root_version(node_dir: Path) -> int:
    """The root version a node's TUF client trusts now."""
    doc = json.loads((node_dir / "globalconf" / "metadata" / "root.json").read_text("utf-8"))
    version: int = doc["signed"]["version"]
    return version


def only_key(directory: Path) -> Path:
    (key,) = directory.glob("*.pem")
    return key


def test_two_key_holders_rotate_the_root_and_the_nodes_follow(
    tmp_path: Path, registry: RecordingRegistry
) -> None:
    net = LocalNet.create(tmp_path / "net", [SOEST, LIPPSTADT], datetime.now(UTC), central=True)
    net.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    assert net.central is not None
    d = net.central.directory
    anna, bernd, clara = (tmp_path / f"holder-{n}" for n in ("anna", "bernd", "clara"))
    try:
        net.start_trust()
        gateway(
            "central", "init", "--dir", str(d), "--instance", "DE-NRW",
            "--ca-cert", str(net.ca_cert), "--ocsp-url", net.trust.ocsp_url,
            "--tsa-name", "Development TSA DE-NRW", "--tsa-url", net.trust.tsa_url,
            "--tsa-cert", str(net.trust.tsa_cert), "--url", net.central.url,
            "--root-key-dirs", str(anna), str(bernd), "--root-threshold", "2",
        )  # fmt: skip
        first = json.loads((d / "repo" / "metadata" / "1.root.json").read_text("utf-8"))
        roles = first["signed"]["roles"]
        server_keys = {p.stem for p in (d / "keys").glob("*.pem")}
        assert set(roles["root"]["keyids"]) == {only_key(anna).stem, only_key(bernd).stem}
        assert roles["root"]["threshold"] == 2
        assert not server_keys & set(roles["root"]["keyids"])  # no root key on the server
        for role in ("targets", "snapshot", "timestamp"):
            assert set(roles[role]["keyids"]) <= server_keys  # the online keys are

        net.start_central()  # the nodes' anchor: root version 1
        for city in (SOEST, LIPPSTADT):
            net.join(city.ags, datetime.now(UTC))
        net.write_configs(globalconf_refresh_seconds=1)
        net.start_node(SOEST.ags)
        net.start_node(LIPPSTADT.ags)
        assert query(net, SOEST, str(GEWERBEAMT)).status_code == 200
        assert root_version(net.nodes[SOEST.ags].directory) == 1

        # Anna's key is retired, Clara's comes in: the old root's holders (Anna, Bernd)
        # and the new root's (Bernd, Clara) must each reach the threshold of 2.
        prepared = tmp_path / "root.json"
        retired = only_key(anna).stem
        gateway(
            "central", "root", "prepare", "--dir", str(d), "--out", str(prepared),
            "--remove-key", retired, "--add-key-dir", str(clara),
        )  # fmt: skip
        assert json.loads(prepared.read_text("utf-8"))["signatures"] == []
        assert "1 signature" in gateway(
            "central", "root", "sign", "--key", str(only_key(anna)), str(prepared)
        )
        short = run("central", "root", "publish", "--dir", str(d), str(prepared))
        assert short.returncode != 0
        assert "1 valid signature(s) of the current root's keys and needs 2" in short.stderr
        gateway("central", "root", "sign", "--key", str(only_key(bernd)), str(prepared))
        short = run("central", "root", "publish", "--dir", str(d), str(prepared))
        assert short.returncode != 0
        assert "1 valid signature(s) of the new root's keys and needs 2" in short.stderr
        assert not (d / "repo" / "metadata" / "2.root.json").exists()
        gateway("central", "root", "sign", "--key", str(only_key(clara)), str(prepared))
        assert "published root version 2" in gateway(
            "central", "root", "publish", "--dir", str(d), str(prepared)
        )

        deadline = time.monotonic() + 60
        for city in (SOEST, LIPPSTADT):
            while root_version(net.nodes[city.ags].directory) != 2:
                assert time.monotonic() < deadline, f"{city.name} still trusts root version 1"
                time.sleep(0.2)
        assert query(net, SOEST, str(GEWERBEAMT)).status_code == 200
        anchor = json.loads((d / "anchor.json").read_text("utf-8"))
        assert anchor["root"]["signed"]["version"] == 2  # what new nodes start from
        assert retired not in anchor["root"]["signed"]["roles"]["root"]["keyids"]
    finally:
        net.stop()
