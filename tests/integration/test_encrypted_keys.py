"""A node on encrypted key files, the sandbox's default: exchanges run on them; a plain
key stops the node unless it is a development set-up; a wrong or missing passphrase
stops it with a message that names the file and never the passphrase (docs/adr/0041).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.keys.files import is_encrypted_key_file, load_private_key, write_private_key
from gateway.keys.passphrase import PASSPHRASE_ENV
from gateway.node.config import ConfigError, NodeConfig, load_config
from gateway.node.server import Node
from gateway.sandbox.localnet import LocalNet
from tests.integration.conftest import LIPPSTADT, SOEST, call

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def enet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    net = LocalNet.create(tmp_path_factory.mktemp("keys"), [SOEST, LIPPSTADT], datetime.now(UTC))
    net.write_configs()
    net.start_trust()
    try:
        yield net
    finally:
        net.stop()


def _soest(net: LocalNet, **node_changes: Any) -> NodeConfig:
    config = load_config(net.nodes[SOEST.ags].config)
    return config.model_copy(update={"node": config.node.model_copy(update=node_changes)})


def _starts(config: NodeConfig) -> None:
    async def run() -> None:
        node = Node(config)
        await node.start()
        await node.stop()

    asyncio.run(run())


def _refused(config: NodeConfig) -> str:
    with pytest.raises(ConfigError) as caught:
        Node(config)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_every_node_key_of_the_sandbox_is_encrypted_and_exchanges_run(net: LocalNet) -> None:
    for ags in (SOEST.ags, LIPPSTADT.ags):
        files = net.nodes[ags]
        config = load_config(files.config)
        assert config.node.key_passphrase_file == files.key_passphrase_file
        assert not config.node.development
        for key in (config.node.auth_key, config.node.internal_tls_key, config.signing[0].key):
            assert key is not None and is_encrypted_key_file(key), key
    response = call(net)
    assert response.status_code == 200, response.text


def test_an_encrypted_key_starts_with_its_passphrase_from_the_environment(
    enet: LocalNet, monkeypatch: pytest.MonkeyPatch
) -> None:
    _starts(_soest(enet))  # from the passphrase file node.toml names
    monkeypatch.setenv(PASSPHRASE_ENV, enet.nodes[SOEST.ags].passphrase.decode())
    _starts(_soest(enet, key_passphrase_file=None))


def test_without_any_passphrase_the_node_says_where_to_put_one(
    enet: LocalNet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    message = _refused(_soest(enet, key_passphrase_file=None))
    assert "key_passphrase_file" in message and PASSPHRASE_ENV in message


def test_a_plain_key_is_refused_unless_the_node_is_a_development_set_up(
    enet: LocalNet, tmp_path: Path
) -> None:
    files = enet.nodes[SOEST.ags]
    plain = files.directory / "auth-plain.key"
    if not plain.exists():
        write_private_key(plain, load_private_key(files.directory / "auth.key", files.passphrase))
    message = _refused(_soest(enet, auth_key=plain))
    assert str(plain) in message
    assert f"gateway keys encrypt {plain}" in message
    assert "development = true" in message
    _starts(_soest(enet, auth_key=plain, development=True))


def test_a_wrong_passphrase_is_named_without_being_shown(enet: LocalNet, tmp_path: Path) -> None:
    wrong = "Soester-Allerheiligenkirmes-1337"
    secret = tmp_path / "wrong-passphrase"
    secret.write_text(wrong + "\n")
    secret.chmod(0o600)
    config = _soest(enet, key_passphrase_file=secret)
    message = _refused(config)
    assert "wrong passphrase" in message and str(config.node.auth_key) in message
    assert wrong not in message
    # The same through the command an operator runs: one line, no passphrase.
    broken = enet.nodes[SOEST.ags].directory / "wrong-passphrase.toml"
    text = enet.nodes[SOEST.ags].config.read_text("utf-8")
    broken.write_text(
        text.replace('key_passphrase_file = "key-passphrase"', f'key_passphrase_file = "{secret}"')
    )
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "node", "check", "--config", str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode != 0
    assert "wrong passphrase" in done.stderr and wrong not in done.stderr + done.stdout
    loose = tmp_path / "loose-passphrase"
    loose.write_bytes(enet.nodes[SOEST.ags].passphrase)
    loose.chmod(0o644)
    assert "chmod 600" in _refused(_soest(enet, key_passphrase_file=loose))
