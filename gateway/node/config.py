"""A node's configuration file (TOML), validated before anything starts.

Relative paths are resolved against the file's own directory, so a deployment folder can
move as a whole. Routing and trust come from exactly one of two sections: ``[globalconf]``
(signed global configuration fetched with TUF from the central authority, see
gateway/conf/tufclient.py) or the static ``[directory]`` (for tests and small set-ups);
everything else is the node's own business.
"""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.conf.anchor import Anchor, load_anchor
from gateway.conf.directory import MemberInfo, NodeInfo, StaticDirectory, TrustParameters, TsaInfo
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


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{value!r} must be an http:// or https:// URL")
    return value.rstrip("/")


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
    timestamp_batch_size: int = Field(default=10_000, gt=0)
    """Timestamp the log's tree head early once this many entries wait (X-Road's batch)."""
    timestamp_failure_tolerance_seconds: int = Field(default=14_400, ge=0)
    """How long entries may stay untimestamped while the TSA fails before exchanges are
    refused (X-Road's acceptable-timestamp-failure-period, 4 h); 0 never refuses."""
    timestamp_timeout_seconds: float = Field(default=20, gt=0)
    """How long one time-stamp request to a TSA may take."""
    ocsp_refresh_seconds: float | None = Field(default=None, gt=0)
    """How often the node refetches the OCSP status of its own certificates; default a
    third of the directory's freshness window (X-Road: 1200 s of 3600 s), so two
    refreshes may fail before a status goes stale. Must be shorter than the window."""

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
        return _http_url(value)

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


class DirectoryOcspResponder(_Model):
    """An OCSP responder for the certificates one of ``ca_certs`` issued."""

    ca_cert: Path
    url: str

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)


class DirectoryTsa(_Model):
    name: str
    url: str
    cert: Path

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)


class DirectorySection(_Model):
    instance: str
    ocsp_freshness_seconds: int = Field(default=3600, gt=0)
    timestamping_interval_seconds: int = Field(default=60, gt=0, le=3600)
    ocsp_responders: list[DirectoryOcspResponder] = Field(default_factory=list)
    tsas: list[DirectoryTsa] = Field(default_factory=list)

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str) -> str:
        check_part(value, "instance")
        return value

    ca_certs: list[Path]
    members: list[DirectoryMember] = Field(default_factory=list)
    nodes: list[DirectoryNode] = Field(default_factory=list)
    groups: list[DirectoryGroup] = Field(default_factory=list)


class GlobalConfSection(_Model):
    """Where signed global configuration comes from and where its cache lives."""

    anchor: Path
    """The instance's anchor file (TUF root and repository URLs), obtained out of band."""
    state_dir: Path = Path("globalconf")
    """TUF metadata cache and the last applied document (survives restarts)."""
    refresh_seconds: float = Field(default=60, gt=0)
    """How often the node asks the central authority for a newer configuration."""


class NodeConfig(_Model):
    node: NodeSection
    signing: list[SigningKey]
    services: list[ServiceSection] = Field(default_factory=list)
    access: list[AccessSection] = Field(default_factory=list)
    directory: DirectorySection | None = None
    globalconf: GlobalConfSection | None = None

    def grants(self) -> list[Grant]:
        return [a.grant() for a in self.access]

    def check_source(self) -> None:
        """Exactly one source of routing and trust: two could disagree, none is nothing."""
        if (self.directory is None) == (self.globalconf is None):
            raise ValueError(
                "exactly one of [globalconf] (signed global configuration) or [directory] "
                "(static routing and trust) must be present"
            )

    def load_anchor(self) -> Anchor:
        """The anchor ``[globalconf]`` names, checked against this node's instance."""
        assert self.globalconf is not None
        anchor = load_anchor(self.globalconf.anchor)
        if anchor.instance != self.node.node_id.instance:
            raise ValueError(
                f"the anchor {self.globalconf.anchor} is for instance {anchor.instance}, "
                f"this node belongs to {self.node.node_id.instance}"
            )
        return anchor

    def ocsp_refresh(self) -> timedelta:
        """The OCSP refresh interval, checked against the directory's freshness window."""
        if self.directory is None:
            # Global configuration sets the window; the node checks it once loaded.
            refresh_seconds = self.node.ocsp_refresh_seconds
            return timedelta(seconds=refresh_seconds or 1200)
        freshness = self.directory.ocsp_freshness_seconds
        refresh = self.node.ocsp_refresh_seconds
        if refresh is None:
            return timedelta(seconds=freshness / 3)
        if refresh >= freshness:
            raise ValueError(
                f"node.ocsp_refresh_seconds ({refresh:g}) must be shorter than "
                f"directory.ocsp_freshness_seconds ({freshness}): a status must be refetched "
                "before it goes stale"
            )
        return timedelta(seconds=refresh)

    def build_directory(self) -> StaticDirectory:
        d = self.directory
        if d is None:
            raise ValueError("this node takes routing and trust from [globalconf]")
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
        root_ders = {c.public_bytes(Encoding.DER) for c in roots}
        ocsp: dict[bytes, list[str]] = {}
        for responder in d.ocsp_responders:
            for ca in load_certificates(responder.ca_cert):
                der = ca.public_bytes(Encoding.DER)
                if der not in root_ders:
                    raise ValueError(
                        f"OCSP responder {responder.url} is for {responder.ca_cert}, "
                        "which is not one of directory.ca_certs"
                    )
                ocsp.setdefault(der, []).append(responder.url.rstrip("/"))
        tsas = [TsaInfo(t.name, t.url.rstrip("/"), load_certificates(t.cert)[0]) for t in d.tsas]
        parameters = TrustParameters(d.ocsp_freshness_seconds, d.timestamping_interval_seconds)
        return StaticDirectory(
            d.instance, roots, members, nodes, groups, ocsp=ocsp, tsas=tsas, parameters=parameters
        )


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
    globalconf = data.get("globalconf", {})
    for key in ("anchor", "state_dir"):
        if key in globalconf:
            globalconf[key] = str(base / globalconf[key])
    if "globalconf" in data and "state_dir" not in globalconf:
        globalconf["state_dir"] = str(base / "globalconf")
    directory = data.get("directory", {})
    if "ca_certs" in directory:
        directory["ca_certs"] = [str(base / p) for p in directory["ca_certs"]]
    for entry in directory.get("ocsp_responders", []):
        if "ca_cert" in entry:
            entry["ca_cert"] = str(base / entry["ca_cert"])
    for entry in directory.get("tsas", []):
        if "cert" in entry:
            entry["cert"] = str(base / entry["cert"])


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
        config.check_source()
        config.grants()
        if config.directory is not None:
            config.build_directory()
        else:
            config.load_anchor()
        config.ocsp_refresh()
    except (ValidationError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot load a file it names: {exc}") from None
    return config


__all__ = ["ConfigError", "NodeConfig", "SubsystemId", "load_config"]
