"""docker-compose.yml's ``ha`` profile: Lippstadt's node as a cluster on PostgreSQL.

No Docker engine runs here and no image can be pulled, so the profile is checked as a
file: what it starts, in which order, with which configuration, and that the load
balancer answers under the name peers and clients use for Lippstadt's node.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli import build_parser
from gateway.node.config import load_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
HAPROXY = ROOT / "deploy" / "haproxy-lippstadt.cfg"
CLUSTER = ("cluster-lippstadt-1", "cluster-lippstadt-2")


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text("utf-8"))["services"]
    return services


def test_the_profile_holds_the_database_the_instances_and_the_balancer() -> None:
    profiled = {n for n, s in _services().items() if "profiles" in s}
    assert profiled == {"postgres", "lippstadt-db", *CLUSTER, "lb-lippstadt"}
    assert all(_services()[n]["profiles"] == ["ha"] for n in profiled)
    # No top-level `name:` is needed by the profile (Debian's compose 1.29 lacks it).
    assert "profiles" not in _services()["node-lippstadt"]


def test_each_instance_is_lippstadts_node_with_workers_on_the_cluster_config() -> None:
    services = _services()
    for name in CLUSTER:
        service = services[name]
        args = build_parser().parse_args(service["command"])
        assert (args.config, args.workers) == ("/state/node-cluster.toml", 2)
        assert service["volumes"] == ["lippstadt-node:/state"]  # the node's own keys
        assert "PGPASSWORD" in service["environment"]
        depends = service["depends_on"]
        assert depends["lippstadt-db"] == {"condition": "service_completed_successfully"}
        assert "8080/health/ready" in " ".join(service["healthcheck"]["test"])


def test_the_schema_is_upgraded_once_after_the_database_is_healthy() -> None:
    db = _services()["lippstadt-db"]
    args = build_parser().parse_args(db["command"])
    assert args.config == "/state/node-cluster.toml"
    assert db["restart"] == "no"
    assert db["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert db["depends_on"]["setup"] == {"condition": "service_completed_successfully"}
    assert "pg_isready" in _services()["postgres"]["healthcheck"]["test"]


def test_the_balancer_answers_as_node_lippstadt_in_tcp_mode_over_both_instances() -> None:
    from gateway.sandbox.setup import COMPOSE_PORTS

    lb = _services()["lb-lippstadt"]
    assert lb["networks"]["default"]["aliases"] == ["node-lippstadt"]
    assert not lb.get("ports")  # reached over the compose network only
    mount = lb["volumes"][0].split(":")
    assert (ROOT / mount[0]).resolve() == HAPROXY
    config = HAPROXY.read_text("utf-8")
    assert re.search(r"^\s*mode tcp$", config, re.MULTILINE)
    for what in ("peer", "consumer"):
        port = COMPOSE_PORTS[f"node-lippstadt:{what}"]
        assert re.search(rf"^\s*bind :{port}$", config, re.MULTILINE), what
        for name in CLUSTER:
            assert f"{name}:{port} check" in config, (what, name)
    assert config.count("option httpchk GET /health/ready") == 2


@pytest.fixture(scope="module")
def compose_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from datetime import UTC, datetime

    from gateway.sandbox.setup import compose_addresses, prepare

    state = tmp_path_factory.mktemp("compose-state")
    prepare(state, compose_addresses(), datetime.now(UTC))
    return state


def test_setup_writes_the_cluster_config_beside_the_single_nodes(compose_state: Path) -> None:
    from gateway.sandbox.setup import CLUSTER_DATABASE_URL

    single = load_config(compose_state / "lippstadt-node" / "node.toml")
    cluster = load_config(compose_state / "lippstadt-node" / "node-cluster.toml")
    assert single.node.database_url is None
    assert cluster.node.database_url == CLUSTER_DATABASE_URL
    assert cluster.node.id == single.node.id
    assert cluster.node.peer_listen == single.node.peer_listen
    assert cluster.node.auth_cert == single.node.auth_cert


def test_a_setup_rerun_keeps_the_cluster_config(compose_state: Path) -> None:
    from datetime import UTC, datetime

    from gateway.sandbox.setup import compose_addresses, prepare

    path = compose_state / "lippstadt-node" / "node-cluster.toml"
    before = path.read_bytes()
    lines: list[str] = []
    prepare(compose_state, compose_addresses(), datetime.now(UTC), report=lines.append)
    assert path.read_bytes() == before
    assert f"kept node cluster configuration {path}" in lines
