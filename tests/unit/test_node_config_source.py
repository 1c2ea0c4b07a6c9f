"""A node's file takes routing and trust from [globalconf] only, and says so if not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.node.config import ConfigError, ServiceSection, load_config

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


SERVICE_ID = "DE-NRW/GOV/05974040/gewerbeamt/auskunft"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "https://registry:8443"}, "set tls_ca"),
        ({"url": "http://registry", "openapi_url": "https://registry/openapi"}, "set tls_ca"),
        ({"url": "http://registry", "tls_ca": "ca.pem"}, "no https:// URL"),
        ({"url": "http://registry", "tls_client_cert": "c.pem"}, "no https:// URL"),
        (
            {"url": "https://registry", "tls_ca": "ca.pem", "tls_client_cert": "c.pem"},
            "set both tls_client_cert and tls_client_key",
        ),
        ({"url": "https://registry", "tls_pin_sha256": ["ab" * 31]}, "64 hex digits"),
    ],
)
def test_service_tls_settings_fail_closed(fields: dict[str, Any], message: str) -> None:
    """An https:// registry needs a trust anchor; TLS settings without https are refused."""
    with pytest.raises(ValidationError, match=message):
        ServiceSection(id=SERVICE_ID, **fields)


def test_service_tls_paths_are_resolved_and_pins_normalised(tmp_path: Path) -> None:
    from gateway.conf.anchor import ConfigurationAnchor, save_anchor

    root = {"signed": {"_type": "root"}, "signatures": []}
    save_anchor(
        tmp_path / "anchor.json", ConfigurationAnchor("DE-NRW", "http://x/m/", "http://x/t/", root)
    )
    pin = "AB:" * 31 + "AB"
    services = f"""
[[services]]
id = "{SERVICE_ID}"
url = "https://127.0.0.1:8443/auskunft"
tls_ca = "registry-ca.pem"
tls_pin_sha256 = ["{pin}"]
tls_client_cert = "internal.pem"
tls_client_key = "internal.key"
"""
    path = tmp_path / "node.toml"
    path.write_text(NODE + services + GLOBALCONF, "utf-8")
    section = load_config(path).services[0]
    assert section.tls_ca == tmp_path.resolve() / "registry-ca.pem"
    assert section.tls_client_cert == tmp_path.resolve() / "internal.pem"
    assert section.tls_client_key == tmp_path.resolve() / "internal.key"
    assert section.tls_pin_sha256 == ["ab" * 32]


def test_an_unreadable_registry_ca_stops_the_node_naming_the_service(tmp_path: Path) -> None:
    from gateway.node.startup import registry_contexts as _registry_contexts

    section = ServiceSection(
        id=SERVICE_ID, url="https://registry", tls_ca=tmp_path / "missing-ca.pem"
    )
    with pytest.raises(ConfigError, match=f"service {SERVICE_ID}: cannot set up TLS"):
        _registry_contexts([section])
