"""docker-compose.yml is valid Compose and every service runs a real ``gateway`` command.

No Docker engine runs here, so the file is checked instead of started: against the
Compose Specification (compose-spec's validating parser) and against our own CLI parser,
so a renamed subcommand or option breaks this test rather than a deployment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_spec import PyOptions
from cryptography import x509

from gateway.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def _full() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text("utf-8"))
    return doc


def _doc() -> dict[str, Any]:
    """The file as ``docker compose up`` runs it: without the services of an optional
    profile (the node cluster's, tests/unit/test_compose_ha.py)."""
    doc = _full()
    doc["services"] = {n: s for n, s in doc["services"].items() if "profiles" not in s}
    return doc


def test_the_file_follows_the_compose_specification() -> None:
    # apply_merge: the file shares its service defaults with a YAML merge key (<<).
    compose = PyOptions(apply_merge=True).from_yaml(COMPOSE.read_text("utf-8"))
    compose.validate()
    assert set(compose.service_names()) == set(_full()["services"])


def test_an_invalid_file_is_refused_by_the_same_check() -> None:
    broken = COMPOSE.read_text("utf-8").replace("services:", "servicez:", 1)
    with pytest.raises(ValueError):
        PyOptions(apply_merge=True).from_yaml(broken).validate()


@pytest.mark.parametrize("name", sorted(_doc()["services"]))
def test_every_service_command_is_a_gateway_subcommand(name: str) -> None:
    service = _doc()["services"][name]
    command = service["command"]
    assert isinstance(command, list) and all(isinstance(a, str) for a in command)
    args = build_parser().parse_args(command)  # exits (SystemExit) on anything unknown
    assert callable(args.func)


def test_one_image_and_state_on_named_volumes() -> None:
    doc = _doc()
    assert (ROOT / "Dockerfile").is_file()
    named = set(doc["volumes"])
    for name, service in doc["services"].items():
        assert service["build"] == ".", name
        for mount in service["volumes"]:
            source = mount.split(":", 1)[0]
            assert source in named, f"{name} mounts {source}, not a named volume"


# --- the one-shot `setup` service ---------------------------------------------------------


def _state_paths(service: dict[str, Any]) -> list[str]:
    """The /state paths a service's command names (its volume is mounted at /state)."""
    return [a for a in service["command"] if a == "/state" or a.startswith("/state/")]


def test_setup_is_a_one_shot_gateway_setup_for_compose_hosts() -> None:
    from gateway.sandbox.setup_cli import cmd_setup

    setup = _doc()["services"]["setup"]
    args = build_parser().parse_args(setup["command"])
    assert args.func is cmd_setup
    assert (args.state, args.hosts) == ("/state", "compose")
    assert setup["restart"] == "no"  # restarting a finished one-shot would loop


def test_every_other_service_starts_only_after_setup_succeeded() -> None:
    services = _doc()["services"]
    for name, service in services.items():
        if name == "setup":
            continue
        depends = service["depends_on"]
        assert depends["setup"] == {"condition": "service_completed_successfully"}, name
        if name.startswith("node-"):
            assert depends["central"] == {"condition": "service_healthy"}, name
            assert depends["trust"] == {"condition": "service_healthy"}, name
    for needed in ("central", "trust"):
        assert "healthcheck" in services[needed]


def test_setup_mounts_every_volume_where_gateway_setup_expects_it() -> None:
    from gateway.sandbox.setup import VOLUMES

    doc = _doc()
    assert set(doc["volumes"]) == set(VOLUMES)
    assert set(doc["services"]["setup"]["volumes"]) == {f"{v}:/state/{v}" for v in VOLUMES}
    # The image has each mount point, owned by the gateway user (see Dockerfile).
    dockerfile = (ROOT / "Dockerfile").read_text("utf-8")
    for volume in VOLUMES:
        assert f"/state/{volume} " in dockerfile or f"/state/{volume}\n" in dockerfile, volume


def test_the_fixed_ports_are_the_ones_the_services_listen_on() -> None:
    from gateway.sandbox.setup import COMPOSE_PORTS

    for name, service in _doc()["services"].items():
        command = service["command"]
        if "--port" in command:
            assert int(command[command.index("--port") + 1]) == COMPOSE_PORTS[name], name


@pytest.fixture(scope="module")
def compose_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``gateway setup --hosts compose`` for real, into a directory per volume."""
    from datetime import UTC, datetime

    from gateway.sandbox.setup import compose_addresses, prepare

    state = tmp_path_factory.mktemp("compose-state")
    prepare(state, compose_addresses(), datetime.now(UTC))
    return state


def test_setup_writes_every_file_the_services_commands_name(compose_state: Path) -> None:
    for name, service in _doc()["services"].items():
        if name == "setup":
            continue
        (mount,) = service["volumes"]
        volume = compose_state / mount.split(":", 1)[0]
        command = service["command"]
        for path in _state_paths(service):
            local = volume / path.removeprefix("/state").lstrip("/")
            if command[command.index(path) - 1] == "--db":
                assert local.parent.is_dir(), f"{name}: {path}"  # the registry creates it
            else:
                assert local.exists(), f"{name}: {path} is not on volume {volume.name}"


def test_node_configurations_name_compose_hosts_that_serve_them(compose_state: Path) -> None:
    import tomllib
    from urllib.parse import urlsplit

    from gateway.conf.anchor import load_anchor
    from gateway.keys.files import load_certificate
    from gateway.sandbox.setup import NODES

    services = _doc()["services"]

    def served(url: str) -> None:
        parts = urlsplit(url)
        assert parts.hostname in services, url
        command = services[parts.hostname]["command"]
        if "--port" in command:
            assert str(parts.port) == command[command.index("--port") + 1], url

    for node in NODES:
        volume = compose_state / node.volume
        config = tomllib.loads((volume / "node.toml").read_text("utf-8"))
        assert config["node"]["consumer_listen"] == "0.0.0.0:8080"
        assert config["node"]["peer_listen"] == "0.0.0.0:8443"
        # The admin listener stays on the container's loopback (docs/deployment.md).
        assert config["node"]["metrics_listen"].startswith("127.0.0.1:")
        assert config["globalconf"]["anchor"] == "anchor.json"
        for spec in config.get("services", []):
            served(spec["url"])
        anchor = load_anchor(volume / config["globalconf"]["anchor"])
        assert anchor.metadata_url == "http://central:8100/tuf/metadata/"
        cert = load_certificate(volume / "auth.pem")
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert node.service in san.get_values_for_type(x509.DNSName)
    for name in ("gewerberegister", "portal"):
        command = services[name]["command"]
        for option in ("--ihk-consumer-url", "--consumer-url", "--gewerberegister-url"):
            if option in command:
                served(command[command.index(option) + 1])


# --- what reaches the host, and the nodes' healthchecks -----------------------------------


def _published(service: dict[str, Any]) -> list[tuple[str | None, int, int]]:
    """``(host address or None for every interface, host port, container port)`` of each
    entry of a service's ``ports`` (the short syntax ``[HOST_IP:]HOST_PORT:CONTAINER_PORT``)."""
    published = []
    for entry in service.get("ports", []):
        assert isinstance(entry, str), f"only the short syntax is checked here: {entry!r}"
        parts = entry.split(":")
        assert len(parts) in (2, 3), entry
        address = parts[0] if len(parts) == 3 else None
        published.append((address, int(parts[-2]), int(parts[-1])))
    return published


def test_only_the_portal_is_published_on_every_host_interface() -> None:
    from gateway.sandbox.setup import COMPOSE_PORTS

    for name, service in _doc()["services"].items():
        for address, _, container in _published(service):
            if name == "portal":
                assert container == COMPOSE_PORTS["portal"], name
            else:
                # Anything else on the host is for the host's own operator: loopback.
                assert address == "127.0.0.1", f"{name} publishes {container} on {address}"


def test_a_nodes_consumer_port_is_published_at_most_on_the_hosts_loopback() -> None:
    from gateway.sandbox.setup import COMPOSE_PORTS

    for name, service in _doc()["services"].items():
        if not name.startswith("node-"):
            continue
        consumer = COMPOSE_PORTS[f"{name}:consumer"]
        for address, _, container in _published(service):
            assert container == consumer, f"{name} publishes {container}"
            assert address == "127.0.0.1", f"{name} publishes its consumer port on {address}"


def test_no_trust_service_central_or_registry_port_is_published() -> None:
    for name, service in _doc()["services"].items():
        if name == "portal" or name.startswith("node-"):
            continue
        assert not service.get("ports"), f"{name} is reached over the compose network only"


def test_every_node_is_healthy_only_while_ready() -> None:
    from gateway.sandbox.setup import COMPOSE_PORTS

    services = _doc()["services"]
    for name, service in services.items():
        if not name.startswith("node-"):
            continue
        test = service["healthcheck"]["test"]
        consumer = COMPOSE_PORTS[f"{name}:consumer"]
        assert f"http://127.0.0.1:{consumer}/health/ready" in " ".join(test), name
    # The portal calls Soest's node: it starts once that node would accept exchanges.
    assert services["portal"]["depends_on"]["node-soest"] == {"condition": "service_healthy"}


def test_the_compose_node_configuration_says_why_it_binds_every_interface(
    compose_state: Path,
) -> None:
    from gateway.sandbox.setup import NODES

    for node in NODES:
        text = (compose_state / node.volume / "node.toml").read_text("utf-8")
        assert "listen on the container's interface" in text, node.service
