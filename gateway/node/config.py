"""A node's configuration file (TOML), validated before anything starts.

Relative paths are resolved against the file's own directory, so a deployment folder can
move as a whole. Routing and trust come only from ``[globalconf]``: signed global
configuration fetched with TUF from the central authority (gateway/conf/tufclient.py).
The static ``[directory]`` section of early versions is refused with a message saying
what to write instead: a second, unsigned source of trust could silently disagree with
the instance's. Everything else in the file is the node's own business.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.conf.anchor import ConfigurationAnchor, load_anchor
from gateway.core.ids import (
    ClientId,
    GroupId,
    MemberId,
    NodeId,
    ServiceId,
    SubsystemId,
    parse_client,
)
from gateway.core.policy import Grant, LocalGroupId
from gateway.node.clientauth import ConnectionType
from gateway.node.config_log import (
    AuditSection,
    LoggingSection,
    RetentionSection,
    SubsystemLogging,
    TokenSection,
    TrackerSection,
)
from gateway.node.localgroup import LocalGroupSection


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
    """The plain-HTTP consumer port; bound only if some ``[[clients]]`` entry is ``http``."""
    consumer_tls_listen: HostPort = "127.0.0.1:8443"
    """The consumer TLS port (``https`` and ``https-no-auth`` clients); bound when the
    internal TLS certificate is configured."""
    internal_tls_cert: Path | None = None
    """The certificate the consumer TLS port presents to information systems (PEM),
    separate from the authentication certificate peers see."""
    internal_tls_key: Path | None = None
    client_certs: Path = Path("client-certs.json")
    """The registered information-system certificates (``gateway node client-cert``)."""
    peer_listen: HostPort = "127.0.0.1:5500"
    messagelog: Path | None = None
    """The message log's SQLite file; or, instead, ``database_url``."""
    database_url: str | None = None
    """A ``postgresql://`` URL (libpq's form; a password may come from ``PGPASSWORD`` or
    ``~/.pgpass`` instead): the message log lives in that PostgreSQL database, whose schema
    ``gateway db upgrade`` made (docs/deployment.md, PostgreSQL)."""
    auth_cert: Path
    auth_key: Path
    key_passphrase_file: Path | None = None
    """The file (mode 0600) holding the passphrase of the node's encrypted key files;
    without it, ``GATEWAY_KEY_PASSPHRASE`` or a prompt on a terminal (docs/adr/0041)."""
    development: bool = False
    """A development set-up: the node starts on unencrypted private key files, which it
    otherwise refuses (``gateway keys encrypt FILE`` encrypts one in place)."""
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    message_window_seconds: int = Field(default=300, gt=0)
    peer_connect_timeout_seconds: float = Field(default=10, gt=0)
    peer_timeout_seconds: float = Field(default=60, gt=0)
    peer_backoff_seconds: float = Field(default=5, gt=0)
    """How long a provider's node that could not be connected to is passed over when
    another node hosts the provider too; doubles with each further failure."""
    peer_backoff_max_seconds: float = Field(default=60, gt=0)
    """The longest it is passed over before an exchange tries it again."""
    timestamp_batch_size: int = Field(default=10_000, gt=0)
    """Timestamp the log's tree head early once this many entries wait (X-Road's batch)."""
    timestamp_failure_tolerance_seconds: int = Field(default=14_400, ge=0)
    """How long entries may stay untimestamped while the TSA fails before exchanges are
    refused (X-Road's acceptable-timestamp-failure-period, 4 h); 0 never refuses."""
    timestamp_timeout_seconds: float = Field(default=20, gt=0)
    """How long one time-stamp request to a TSA may take."""
    max_clock_skew_seconds: float = Field(default=2, gt=0)
    """How far the node's clock may be from the TSA's genTime (round trip taken out)
    before exchanges are refused: an entry logged by a clock ahead of the TSA lands
    after the tree head covering it and fails the audit. 2 s is well above what NTP
    keeps (milliseconds) and well below the 60 s a token's genTime may differ by."""
    leader_poll_seconds: float = Field(default=2, gt=0)
    """With ``database_url``: how often a process of a node cluster tries to become the
    one that runs the timestamper and the witness, and the leader checks it still is;
    a dead leader is replaced within about this long (docs/deployment.md, Node cluster)."""
    settings_poll_seconds: float = Field(default=5, gt=0)
    """With ``database_url``: how often a process of a node cluster checks the newest
    settings version besides listening for it, so a version another process recorded
    is in force here within this long even when its notification was lost, and its
    signing certificate files for one another process imported (docs/adr/0050)."""
    ocsp_refresh_seconds: float | None = Field(default=None, gt=0)
    """How often the node refetches the OCSP status of its own certificates; default a
    third of the directory's freshness window (X-Road: 1200 s of 3600 s), so two
    refreshes may fail before a status goes stale. Must be shorter than the window."""
    header_timeout_seconds: float = Field(default=10, gt=0)
    """Seconds a client has to finish a TLS handshake and send a request head, on the
    consumer and the peer port (gateway/net/guard.py); a slower one is closed."""
    body_timeout_seconds: float = Field(default=30, gt=0)
    """Longest pause within a request body before the connection is closed."""
    write_timeout_seconds: float = Field(default=30, gt=0)
    """Longest a client may leave an answer unread (the port's transport paused for
    writing) before the connection is closed and the unsent answer dropped."""
    max_connections: int = Field(default=1024, gt=0)
    """Open connections each of the two ports accepts; more are answered 503."""
    max_connections_per_ip: int = Field(default=512, gt=0)
    """Open connections each port accepts from one address (peers pool up to 256)."""
    metrics_listen: str = "127.0.0.1:9090"
    """The admin listener: Prometheus ``/metrics`` (open), the management API
    ``/api/v1`` and ``/operational`` (API key). Never on a consumer port; "" serves none."""
    api_keys: Path = Path("api-keys.json")
    """The management API's keys, stored hashed (``gateway node keys``; ADR 0031)."""
    admin_key: Path = Path("admin.key")
    """The first system administrator key, written 0600 when the key store is created."""
    maintenance_file: Path = Path("maintenance.json")
    """Present while the node is in maintenance mode; shared by the node's processes on
    this machine and kept over a restart (docs/adr/0059)."""
    opdata_retention_days: float = Field(default=7, gt=0)
    """How long operational monitoring records are kept (X-Road keeps them a day by
    default; a week covers a weekend's incident)."""

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        NodeId.parse(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("database_url must be a postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _one_log(self) -> NodeSection:
        if (self.messagelog is None) == (self.database_url is None):
            raise ValueError(
                "[node] needs exactly one of messagelog (a SQLite file) and database_url"
                " (a postgresql:// URL)"
            )
        return self

    @property
    def log_location(self) -> Path | str:
        """Where the message log is: the SQLite file or the PostgreSQL URL."""
        if self.database_url is not None:
            return self.database_url
        assert self.messagelog is not None
        return self.messagelog

    @field_validator("consumer_listen", "consumer_tls_listen", "peer_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return _hostport(value)

    @field_validator("metrics_listen")
    @classmethod
    def _metrics_listen(cls, value: str) -> str:
        return value if value == "" else _hostport(value)

    @model_validator(mode="after")
    def _backoff(self) -> NodeSection:
        if self.peer_backoff_max_seconds < self.peer_backoff_seconds:
            raise ValueError("peer_backoff_max_seconds must not be below peer_backoff_seconds")
        return self

    @property
    def node_id(self) -> NodeId:
        return NodeId.parse(self.id)


class SigningKey(_Model):
    member: str
    cert: Path
    key: Path | None = None
    """A key file (PEM); or ``token``, a key in a PKCS#11 token."""
    token: TokenSection | None = None

    @field_validator("member")
    @classmethod
    def _member(cls, value: str) -> str:
        MemberId.parse(value)
        return value

    @model_validator(mode="after")
    def _one_key(self) -> SigningKey:
        if (self.key is None) == (self.token is None):
            raise ValueError(
                f"[[signing]] {self.member}: give exactly one of key (a key file) or "
                "token (a key in a PKCS#11 token)"
            )
        return self

    def key_source(self) -> str:
        """Where the key is, for messages."""
        if self.token is not None:
            return f"key {self.token.key_label!r} in token {self.token.label!r}"
        return f"signing key {self.key}"


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
    require_issue: bool = False
    """Purpose binding: refuse requests without ``X-Road-Issue`` (a case number)."""
    require_user_id: bool = False
    """Purpose binding: refuse requests without ``X-Road-UserId`` (the end user)."""
    tls_ca: Path | None = None
    """For an ``https://`` registry: the CA certificate(s) (PEM) its certificate must
    chain to, with the URL's host name checked against the certificate."""
    tls_pin_sha256: list[str] = Field(default_factory=list)
    """For an ``https://`` registry: SHA-256 fingerprints (hex) of the certificates it
    may present; several during a rotation. With ``tls_ca`` as well, both must hold."""
    tls_client_cert: Path | None = None
    """The node's internal TLS client certificate (PEM) presented to the registry."""
    tls_client_key: Path | None = None
    """The key of ``tls_client_cert``."""

    @field_validator("tls_pin_sha256")
    @classmethod
    def _pins(cls, value: list[str]) -> list[str]:
        pins = [pin.replace(":", "").lower() for pin in value]
        for pin in pins:
            if len(pin) != 64 or not all(c in "0123456789abcdef" for c in pin):
                raise ValueError(f"{pin!r} is not a SHA-256 fingerprint (64 hex digits)")
        return pins

    @model_validator(mode="after")
    def _tls(self) -> ServiceSection:
        """Fail closed: an ``https://`` registry is only called with a trust anchor for
        it, and TLS settings on a plain ``http://`` service are a mistake, not a no-op."""
        https = any(
            u is not None and u.startswith("https://") for u in (self.url, self.openapi_url)
        )
        if https and self.tls_ca is None and not self.tls_pin_sha256:
            raise ValueError(
                f"service {self.id} calls an https:// registry: set tls_ca (the CA of the "
                "registry's certificate) or tls_pin_sha256 (its fingerprint)"
            )
        tls_set = self.tls_ca or self.tls_pin_sha256 or self.tls_client_cert or self.tls_client_key
        if not https and tls_set:
            raise ValueError(f"service {self.id} has TLS settings but no https:// URL")
        if (self.tls_client_cert is None) != (self.tls_client_key is None):
            raise ValueError(f"service {self.id}: set both tls_client_cert and tls_client_key")
        return self

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
    """A global group (``INSTANCE/CODE``) of the global configuration."""
    local_group: str | None = None
    """The code of a local group of the service's own subsystem (``[[local_groups]]``)."""
    methods: list[str] | None = None
    paths: list[str] | None = None

    def grant(self) -> Grant:
        named = [s for s in (self.client, self.group, self.local_group) if s is not None]
        if len(named) != 1:
            raise ValueError("an access right names exactly one of client, group or local_group")
        service = ServiceId.parse(self.service)
        subject: ClientId | GroupId | LocalGroupId
        if self.client is not None:
            subject = parse_client(self.client)
        elif self.group is not None:
            subject = GroupId.parse(self.group)
        else:
            subject = LocalGroupId(service.provider, str(self.local_group))
        return Grant(
            service=service,
            subject=subject,
            methods=frozenset(m.upper() for m in self.methods) if self.methods else None,
            paths=tuple(self.paths) if self.paths else None,
        )


class GlobalConfSection(_Model):
    """Where signed global configuration comes from and where its cache lives."""

    anchor: Path
    """The instance's anchor file (TUF root and repository URLs), obtained out of band."""
    state_dir: Path = Path("globalconf")
    """TUF metadata cache and the last applied document (survives restarts)."""
    refresh_seconds: float = Field(default=60, gt=0)
    """How often the node asks the central authority for a newer configuration."""
    fetch_timeout_seconds: float = Field(default=30, gt=0)
    """The longest one attempt to fetch the configuration may take, all downloads
    together; the first fetch blocks start-up, so an unreachable central authority
    stops the node after this long with a message instead of hanging it."""


class ClientSection(_Model):
    """One hosted subsystem's connection type (X-Road's IS connection type)."""

    id: str
    connection_type: ConnectionType = ConnectionType.HTTPS

    @field_validator("id")
    @classmethod
    def _subsystem(cls, value: str) -> str:
        SubsystemId.parse(value)
        return value


class NodeConfig(_Model):
    node: NodeSection
    signing: list[SigningKey]
    services: list[ServiceSection] = Field(default_factory=list)
    access: list[AccessSection] = Field(default_factory=list)
    globalconf: GlobalConfSection
    audit: AuditSection = Field(default_factory=AuditSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)
    tracker: TrackerSection = Field(default_factory=TrackerSection)
    retention: RetentionSection = Field(default_factory=RetentionSection)
    clients: list[ClientSection] = Field(default_factory=list)
    """Connection types of hosted subsystems; a subsystem not listed is ``https``."""
    local_groups: list[LocalGroupSection] = Field(default_factory=list)
    """``[[services]]``, ``[[access]]``, ``[[clients]]`` and ``[[local_groups]]`` are the
    bootstrap of the node's settings: once its log holds a settings version, that is in
    force (gateway/node/settings/)."""

    def connection_type(self, client: ClientId) -> ConnectionType:
        """How ``client``'s information systems must connect by this file (default
        ``https``): the bootstrap; a running node reads ``NodeContext.settings``."""
        for entry in self.clients:
            if entry.id == str(client):
                return entry.connection_type
        return ConnectionType.HTTPS

    def consumer_ports_problem(self, plain_http: bool | None = None) -> str | None:
        """Why the node would serve its information systems on no port, if it would;
        ``plain_http``: whether the settings in force have an ``http`` client (default:
        this file's ``[[clients]]``)."""
        if plain_http is None:
            plain_http = self.serves_plain_http()
        if self.node.internal_tls_cert is None and not plain_http:
            return (
                "the node would serve its information systems on no port: set [node] "
                "internal_tls_cert and internal_tls_key (the consumer TLS port's certificate, "
                "e.g. from gateway node tls-cert) or give a subsystem "
                'connection_type = "http" in [[clients]]'
            )
        return None

    def serves_plain_http(self) -> bool:
        """Whether the plain consumer port is needed: some client uses ``http``."""
        return any(c.connection_type is ConnectionType.HTTP for c in self.clients)

    def grants(self) -> list[Grant]:
        return [a.grant() for a in self.access]

    def load_anchor(self) -> ConfigurationAnchor:
        """The anchor ``[globalconf]`` names, checked against this node's instance."""
        anchor = load_anchor(self.globalconf.anchor)
        if anchor.instance != self.node.node_id.instance:
            raise ValueError(
                f"the anchor {self.globalconf.anchor} is for instance {anchor.instance}, "
                f"this node belongs to {self.node.node_id.instance}"
            )
        return anchor


STATIC_DIRECTORY_REMOVED = (
    "the static [directory] section is no longer supported: routing and trust come only "
    "from the instance's signed global configuration; replace the section with "
    '[globalconf] anchor = "anchor.json" (the anchor file the central authority\'s '
    "operator writes with gateway central anchor) and register the node with the central "
    "authority (gateway join ...; see docs/global-configuration.md)"
)
MISSING_GLOBALCONF = (
    "a [globalconf] section is required: routing and trust come from the instance's "
    'signed global configuration ([globalconf] anchor = "anchor.json", the anchor the '
    "central authority's operator hands out with gateway central anchor)"
)


def _resolve(data: dict[str, Any], base: Path) -> None:
    """Make every path field absolute relative to the config file's directory."""
    node = data.get("node", {})
    for key in (
        "messagelog",
        "auth_cert",
        "auth_key",
        "internal_tls_cert",
        "internal_tls_key",
        "key_passphrase_file",
    ):
        if key in node:
            node[key] = str(base / node[key])
    if isinstance(node, dict):
        node["client_certs"] = str(base / node.get("client_certs", "client-certs.json"))
        node["api_keys"] = str(base / node.get("api_keys", "api-keys.json"))
        node["admin_key"] = str(base / node.get("admin_key", "admin.key"))
        node["maintenance_file"] = str(base / node.get("maintenance_file", "maintenance.json"))
    for entry in data.get("signing", []):
        for key in ("cert", "key"):
            if key in entry:
                entry[key] = str(base / entry[key])
        token = entry.get("token")
        for key in ("module", "pin_file"):
            if isinstance(token, dict) and key in token:
                token[key] = str(base / token[key])
    for service in data.get("services", []):
        for key in ("tls_ca", "tls_client_cert", "tls_client_key"):
            if isinstance(service, dict) and key in service:
                service[key] = str(base / service[key])
    logging = data.get("logging", {})
    for key in ("data_key", "data_key_passphrase_file"):
        if isinstance(logging, dict) and key in logging:
            logging[key] = str(base / logging[key])
    data_key_token = logging.get("data_key_token") if isinstance(logging, dict) else None
    for key in ("module", "pin_file"):
        if isinstance(data_key_token, dict) and key in data_key_token:
            data_key_token[key] = str(base / data_key_token[key])
    audit = data.get("audit", {})
    if "admin_token_file" in audit:
        audit["admin_token_file"] = str(base / audit["admin_token_file"])
    retention = data.setdefault("retention", {})
    if isinstance(retention, dict):
        retention["archive_dir"] = str(base / retention.get("archive_dir", "archive"))
        recipients = retention.get("archive_recipients", [])
        retention["archive_recipients"] = [str(base / p) for p in recipients]
    globalconf = data.get("globalconf", {})
    for key in ("anchor", "state_dir"):
        if key in globalconf:
            globalconf[key] = str(base / globalconf[key])
    if "globalconf" in data and "state_dir" not in globalconf:
        globalconf["state_dir"] = str(base / "globalconf")


def _check_consumer_ports(config: NodeConfig) -> None:
    """The internal certificate comes with its key, and a subsystem is not listed twice
    with two connection types. (That the node serves some consumer port at all is
    checked when a node is built from the file: ``gateway.node.server.Node``.)"""
    node = config.node
    if (node.internal_tls_cert is None) != (node.internal_tls_key is None):
        raise ValueError("[node] internal_tls_cert and internal_tls_key go together")
    ids = [c.id for c in config.clients]
    if len(ids) != len(set(ids)):
        raise ValueError("[[clients]] lists a subsystem twice")


def load_config(path: Path) -> NodeConfig:
    """Read and validate; every problem is reported with its location."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    if "directory" in data:
        raise ConfigError(f"{path}: {STATIC_DIRECTORY_REMOVED}")
    if "globalconf" not in data:
        raise ConfigError(f"{path}: {MISSING_GLOBALCONF}")
    _resolve(data, path.parent.resolve())
    try:
        config = NodeConfig.model_validate(data)
        config.grants()
        config.load_anchor()
        _check_consumer_ports(config)
    except (ValidationError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot load a file it names: {exc}") from None
    return config


__all__ = [
    "AuditSection",
    "ConfigError",
    "LoggingSection",
    "NodeConfig",
    "RetentionSection",
    "SubsystemId",
    "SubsystemLogging",
    "TokenSection",
    "TrackerSection",
    "load_config",
]
