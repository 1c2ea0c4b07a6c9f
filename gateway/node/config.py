"""A node's configuration file (TOML), validated before anything starts.

Relative paths are resolved against the file's own directory, so a deployment folder can
move as a whole. The ``[directory]`` section is the routing and trust part that signed
global configuration will replace; everything else is the node's own business.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.conf.directory import MemberInfo, NodeInfo, StaticDirectory
from gateway.core.ids import (
    ClientId,
    GroupId,
    MemberId,
    NodeId,
    ServiceId,
    SubsystemId,
    check_part,
    parse_client,
)
from gateway.core.policy import Grant
from gateway.pki.keys import load_certificates


class ConfigError(Exception):
    """The configuration file cannot be used; the message says where and why."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _hostport(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{value!r} must be HOST:PORT")
    return value


HostPort = Annotated[str, Field(description="HOST:PORT")]


class NodeSection(_Model):
    id: str
    consumer_listen: HostPort = "127.0.0.1:8080"
    peer_listen: HostPort = "127.0.0.1:5500"
    messagelog: Path
    auth_cert: Path
    auth_key: Path
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    message_window_seconds: int = Field(default=300, gt=0)
    peer_connect_timeout_seconds: float = Field(default=10, gt=0)
    peer_timeout_seconds: float = Field(default=60, gt=0)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        NodeId.parse(value)
        return value

    @field_validator("consumer_listen", "peer_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return _hostport(value)

    @property
    def node_id(self) -> NodeId:
        return NodeId.parse(self.id)


class SigningKey(_Model):
    member: str
    cert: Path
    key: Path

    @field_validator("member")
    @classmethod
    def _member(cls, value: str) -> str:
        MemberId.parse(value)
        return value


class Endpoint(_Model):
    method: str = "*"
    path: str = "/**"


class ServiceSection(_Model):
    id: str
    url: str
    timeout_seconds: float = Field(default=30, gt=0)
    enabled: bool = True
    openapi_url: str | None = None
    endpoints: list[Endpoint] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _service(cls, value: str) -> str:
        ServiceId.parse(value)
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("service url must be http:// or https://")
        return value.rstrip("/")

    @property
    def service_id(self) -> ServiceId:
        return ServiceId.parse(self.id)


class AccessSection(_Model):
    service: str
    client: str | None = None
    group: str | None = None
    methods: list[str] | None = None
    paths: list[str] | None = None

    def grant(self) -> Grant:
        if (self.client is None) == (self.group is None):
            raise ValueError("an access right names exactly one of client or group")
        subject: ClientId | GroupId = (
            parse_client(self.client) if self.client is not None else GroupId.parse(str(self.group))
        )
        return Grant(
            service=ServiceId.parse(self.service),
            subject=subject,
            methods=frozenset(m.upper() for m in self.methods) if self.methods else None,
            paths=tuple(self.paths) if self.paths else None,
        )


class DirectoryMember(_Model):
    id: str
    name: str
    subsystems: list[str] = Field(default_factory=list)


class DirectoryNode(_Model):
    id: str
    address: str
    auth_cert_sha256: list[str]
    clients: list[str]


class DirectoryGroup(_Model):
    id: str
    members: list[str]


class DirectorySection(_Model):
    instance: str

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str) -> str:
        check_part(value, "instance")
        return value

    ca_certs: list[Path]
    members: list[DirectoryMember] = Field(default_factory=list)
    nodes: list[DirectoryNode] = Field(default_factory=list)
    groups: list[DirectoryGroup] = Field(default_factory=list)


class NodeConfig(_Model):
    node: NodeSection
    signing: list[SigningKey]
    services: list[ServiceSection] = Field(default_factory=list)
    access: list[AccessSection] = Field(default_factory=list)
    directory: DirectorySection

    def grants(self) -> list[Grant]:
        return [a.grant() for a in self.access]

    def build_directory(self) -> StaticDirectory:
        d = self.directory
        roots = [c for path in d.ca_certs for c in load_certificates(path)]
        members = [
            MemberInfo(
                MemberId.parse(m.id),
                m.name,
                tuple(MemberId.parse(m.id).subsystem(s) for s in m.subsystems),
            )
            for m in d.members
        ]
        nodes = [
            NodeInfo(
                NodeId.parse(n.id),
                n.address.rstrip("/"),
                frozenset(fp.lower().replace(":", "") for fp in n.auth_cert_sha256),
                frozenset(parse_client(c) for c in n.clients),
            )
            for n in d.nodes
        ]
        groups = {
            GroupId.parse(g.id): frozenset(parse_client(c) for c in g.members) for g in d.groups
        }
        return StaticDirectory(d.instance, roots, members, nodes, groups)


def _resolve(data: dict[str, Any], base: Path) -> None:
    """Make every path field absolute relative to the config file's directory."""
    node = data.get("node", {})
    for key in ("messagelog", "auth_cert", "auth_key"):
        if key in node:
            node[key] = str(base / node[key])
    for entry in data.get("signing", []):
        for key in ("cert", "key"):
            if key in entry:
                entry[key] = str(base / entry[key])
    directory = data.get("directory", {})
    if "ca_certs" in directory:
        directory["ca_certs"] = [str(base / p) for p in directory["ca_certs"]]


def load_config(path: Path) -> NodeConfig:
    """Read and validate; every problem is reported with its location."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    _resolve(data, path.parent.resolve())
    try:
        config = NodeConfig.model_validate(data)
        config.grants()
        config.build_directory()
    except (ValidationError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot load a file it names: {exc}") from None
    return config


__all__ = ["ConfigError", "NodeConfig", "SubsystemId", "load_config"]
