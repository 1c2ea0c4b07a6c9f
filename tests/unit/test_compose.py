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

from gateway.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text("utf-8"))
    return doc


def test_the_file_follows_the_compose_specification() -> None:
    # apply_merge: the file shares its service defaults with a YAML merge key (<<).
    compose = PyOptions(apply_merge=True).from_yaml(COMPOSE.read_text("utf-8"))
    compose.validate()
    assert set(compose.service_names()) == set(_doc()["services"])


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
