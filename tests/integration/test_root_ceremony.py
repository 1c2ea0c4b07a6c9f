"""Root keys apart from the server, and a new root signed by their holders one by one.

``gateway central init --root-key-dirs`` puts each root key in a directory of its own,
none in the server's key store; ``gateway central root prepare``, ``root sign`` (once
per holder) and ``root publish`` rotate the root; publish refuses a root short of the
threshold of the current or the new root's keys; running nodes started with the old
anchor follow the new root through their TUF client (docs/global-configuration.md).

The keys are in PKCS#11 tokens (SoftHSM2) where the design puts them: the central's
online keys (targets, snapshot, timestamp) are generated in its token, none is a file,
and the nodes verify what they signed. Later the root moves onto two holders' tokens,
each on its own machine (its own ``SOFTHSM2_CONF``): each holder generates a root key in
their token (``gateway central root token-key``), the operator prepares the new root with
their public keys, the old root's holders and both tokens sign, and the nodes follow; a
further rotation is signed by the two tokens alone; a wrong PIN is refused with a message
naming the token and the PIN's source (docs/adr/0053).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.sandbox.localnet import LocalNet, ServiceSpec
from tests.integration.conftest import GEWERBEAMT, LIPPSTADT, SERVICE, SOEST, RecordingRegistry
from tests.integration.test_globalconf import query
from tests.softhsm import SOFTHSM_MODULE, SoftToken, init_soft_token, make_soft_token

pytestmark = pytest.mark.integration

GATEWAY = [sys.executable, "-m", "gateway"]


def run(*args: str, token: SoftToken | None = None) -> subprocess.CompletedProcess[str]:
    """``gateway ...``; with ``token``, on the machine that holds it."""
    env = dict(os.environ)
    if token is not None:
        env["SOFTHSM2_CONF"] = str(token.conf)
    return subprocess.run(
        [*GATEWAY, *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
        env=env,
    )


def gateway(*args: str, token: SoftToken | None = None) -> str:
    done = run(*args, token=token)
    assert done.returncode == 0, done.stderr
    return done.stdout


def holder_token(token: SoftToken, key_label: str, pin_file: Path | None = None) -> list[str]:
    """``root token-key`` and ``root sign``'s options for a key in ``token``."""
    return [
        "--token", token.label, "--token-module", str(SOFTHSM_MODULE),
        "--key-label", key_label, "--pin-file", str(pin_file or token.pin_file),
    ]  # fmt: skip


def signed_by(metadata: Path) -> set[str]:
    return {s["keyid"] for s in json.loads(metadata.read_text("utf-8"))["signatures"]}


def wait_for_root(net: LocalNet, version: int) -> None:
    deadline = time.monotonic() + 60
    for city in (SOEST, LIPPSTADT):
        while root_version(net.nodes[city.ags].directory) != version:
            assert time.monotonic() < deadline, f"{city.name} still trusts an older root"
            time.sleep(0.2)


def root_version(node_dir: Path) -> int:
    """The root version a node's TUF client trusts now."""
    doc = json.loads((node_dir / "globalconf" / "metadata" / "root.json").read_text("utf-8"))
    version: int = doc["signed"]["version"]
    return version


def only_key(directory: Path) -> Path:
    (key,) = directory.glob("*.pem")
    return key


@pytest.mark.timeout(300)  # three rotations against running nodes, on a shared machine
def test_two_key_holders_rotate_the_root_and_the_nodes_follow(
    tmp_path: Path, registry: RecordingRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    central_token = make_soft_token(tmp_path / "hsm-central", monkeypatch, "central-online")
    tokens = [init_soft_token(tmp_path / f"hsm-{n}", n) for n in ("dora", "emil")]
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
            "--online-token", central_token.label,
            "--online-token-module", str(SOFTHSM_MODULE),
            "--online-pin-file", str(central_token.pin_file),
        )  # fmt: skip
        first = json.loads((d / "repo" / "metadata" / "1.root.json").read_text("utf-8"))
        roles = first["signed"]["roles"]
        assert set(roles["root"]["keyids"]) == {only_key(anna).stem, only_key(bernd).stem}
        assert roles["root"]["threshold"] == 2
        assert not list((d / "keys").glob("*.pem"))  # no key file on the server at all
        online = {r: set(roles[r]["keyids"]) for r in ("targets", "snapshot", "timestamp")}
        assert all(online.values())  # the online keys are in the central's token

        net.start_central()  # the nodes' anchor: root version 1
        for city in (SOEST, LIPPSTADT):
            net.join(city.ags, datetime.now(UTC))
        net.write_configs(globalconf_refresh_seconds=1)
        net.start_node(SOEST.ags)
        net.start_node(LIPPSTADT.ags)
        assert query(net, SOEST, str(GEWERBEAMT)).status_code == 200
        assert root_version(net.nodes[SOEST.ags].directory) == 1
        # What the nodes verified was signed by the token's keys.
        node_meta = net.nodes[SOEST.ags].directory / "globalconf" / "metadata"
        assert signed_by(node_meta / "timestamp.json") == online["timestamp"]
        assert signed_by(node_meta / "snapshot.json") == online["snapshot"]

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

        wait_for_root(net, 2)
        assert query(net, SOEST, str(GEWERBEAMT)).status_code == 200
        anchor = json.loads((d / "anchor.json").read_text("utf-8"))
        assert anchor["root"]["signed"]["version"] == 2  # what new nodes start from
        assert retired not in anchor["root"]["signed"]["roles"]["root"]["keyids"]

        # The root moves onto two tokens: each holder makes a key in their own token
        # and hands over its public key; Bernd and Clara (the current root) and both
        # tokens (the new one) sign.
        pubs = [tmp_path / f"{t.label}.pub.json" for t in tokens]
        for token, pub in zip(tokens, pubs, strict=True):
            out = gateway(
                "central", "root", "token-key", *holder_token(token, "tuf-root"),
                "--out", str(pub), token=token,
            )  # fmt: skip
            assert "generated root key" in out
        token_keyids = {json.loads(p.read_text("utf-8"))["keyid"] for p in pubs}
        prepared = tmp_path / "root-3.json"
        gateway(
            "central", "root", "prepare", "--dir", str(d), "--out", str(prepared),
            "--remove-key", only_key(bernd).stem, "--remove-key", only_key(clara).stem,
            "--add-public-key", str(pubs[0]), "--add-public-key", str(pubs[1]),
        )  # fmt: skip
        for holder in (bernd, clara):
            gateway("central", "root", "sign", "--key", str(only_key(holder)), str(prepared))
        gateway(
            "central", "root", "sign", *holder_token(tokens[0], "tuf-root"), str(prepared),
            token=tokens[0],
        )  # fmt: skip
        short = run("central", "root", "publish", "--dir", str(d), str(prepared))
        assert "1 valid signature(s) of the new root's keys and needs 2" in short.stderr
        gateway(
            "central", "root", "sign", *holder_token(tokens[1], "tuf-root"), str(prepared),
            token=tokens[1],
        )  # fmt: skip
        assert "published root version 3" in gateway(
            "central", "root", "publish", "--dir", str(d), str(prepared)
        )
        wait_for_root(net, 3)
        third = json.loads((d / "repo" / "metadata" / "3.root.json").read_text("utf-8"))
        assert set(third["signed"]["roles"]["root"]["keyids"]) == token_keyids

        # A wrong PIN is refused, naming the token and the PIN's source, never the PIN.
        prepared = tmp_path / "root-4.json"
        gateway("central", "root", "prepare", "--dir", str(d), "--out", str(prepared))
        wrong_pin = tmp_path / "wrong-pin"
        wrong_pin.write_text("000000\n")
        wrong_pin.chmod(0o600)
        refused = run(
            "central", "root", "sign", *holder_token(tokens[0], "tuf-root", wrong_pin),
            str(prepared), token=tokens[0],
        )  # fmt: skip
        assert refused.returncode != 0
        assert f"the PIN of token 'dora' (from {wrong_pin}) is wrong" in refused.stderr
        assert "000000" not in refused.stderr
        assert json.loads(prepared.read_text("utf-8"))["signatures"] == []

        # Root version 4 is signed by the two tokens alone, and the nodes follow.
        for token in tokens:
            gateway(
                "central", "root", "sign", *holder_token(token, "tuf-root"), str(prepared),
                token=token,
            )  # fmt: skip
        assert signed_by(prepared) == token_keyids
        assert "published root version 4" in gateway(
            "central", "root", "publish", "--dir", str(d), str(prepared)
        )
        wait_for_root(net, 4)
        assert query(net, SOEST, str(GEWERBEAMT)).status_code == 200
    finally:
        net.stop()
