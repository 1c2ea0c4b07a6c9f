"""A node's file takes routing and trust from [globalconf] only, and says so if not."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.node.config import ConfigError, load_config

NODE = """
[node]
id = "DE-NRW/GOV/05974040/ss1"
messagelog = "log.sqlite"
auth_cert = "auth.pem"
auth_key = "auth.key"

[[signing]]
member = "DE-NRW/GOV/05974040"
cert = "sign.pem"
key = "sign.key"
"""
DIRECTORY = """
[directory]
instance = "DE-NRW"
ca_certs = ["ca.pem"]
"""
GLOBALCONF = """
[globalconf]
anchor = "anchor.json"
refresh_seconds = 1
"""


def test_static_directory_is_refused_with_what_to_write_instead(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(NODE + DIRECTORY + GLOBALCONF, "utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    message = str(refused.value)
    assert str(path) in message
    assert "[directory] section is no longer supported" in message
    assert '[globalconf] anchor = "anchor.json"' in message
    assert "gateway central anchor" in message


def test_globalconf_is_required(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(NODE, "utf-8")
    with pytest.raises(ConfigError, match=r"a \[globalconf\] section is required"):
        load_config(path)


def test_missing_anchor_is_named(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(NODE + GLOBALCONF, "utf-8")
    with pytest.raises(ConfigError, match=r"anchor\.json"):
        load_config(path)


def test_state_dir_defaults_next_to_the_file(tmp_path: Path) -> None:
    from gateway.conf.anchor import ConfigurationAnchor, save_anchor

    root = {"signed": {"_type": "root"}, "signatures": []}
    save_anchor(
        tmp_path / "anchor.json", ConfigurationAnchor("DE-NRW", "http://x/m/", "http://x/t/", root)
    )
    path = tmp_path / "node.toml"
    path.write_text(NODE + GLOBALCONF, "utf-8")
    config = load_config(path)
    assert config.globalconf.state_dir == tmp_path.resolve() / "globalconf"
    assert config.globalconf.refresh_seconds == 1
    assert config.globalconf.fetch_timeout_seconds == 30


def test_anchor_of_another_instance_is_refused(tmp_path: Path) -> None:
    from gateway.conf.anchor import ConfigurationAnchor, save_anchor

    root = {"signed": {"_type": "root"}, "signatures": []}
    save_anchor(
        tmp_path / "anchor.json", ConfigurationAnchor("DE-BY", "http://x/m/", "http://x/t/", root)
    )
    path = tmp_path / "node.toml"
    path.write_text(NODE + GLOBALCONF, "utf-8")
    with pytest.raises(ConfigError, match="instance DE-BY"):
        load_config(path)
