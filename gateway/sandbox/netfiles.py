"""Where each process of the loopback federation keeps its files, where it listens, and
what its node's ``node.toml`` says.

:class:`~gateway.sandbox.localnet.LocalNet` runs the federation; the classes here are
the plain layout it runs from (a node's keys, certificates, configuration and log; the
trust services' and the central's directories and ports; the services a city provides),
apart so that ``gateway setup`` can lay out a compose deployment with the same classes
and so that a reader finds a file's path in one place. Everything listens on
127.0.0.1 unless a set-up says otherwise; ports are chosen by the OS.
"""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.core.atrest import DataKey
from gateway.core.ids import ServiceId, SubsystemId
from gateway.fsutil import replace_atomically
from gateway.messagelog import LogStore
from gateway.sandbox.cities import City
from registries.edgetls import EdgeTls

HOST = "127.0.0.1"

_DATA_KEYS: dict[Path, DataKey] = {}
"""The sandbox nodes' data keys this process has unwrapped (``NodeFiles.log_reader``)."""


_PORTS_BELOW_EPHEMERAL = range(20000, 32768)
"""Where :func:`free_port` looks: below Linux's ephemeral range (32768-60999), which the
OS hands to outgoing connections. A port the OS chose with ``bind(0)`` lies in that
range, and between choosing it and the process that later binds it, any client socket
on the machine may take it as its local port ("address already in use")."""
_handed_out: set[int] = set()
"""Ports this process has handed out, so two processes of one federation never get the
same one (a test session starts many federations)."""


def free_port() -> int:
    """A loopback port nothing listens on now, outside the ephemeral range, not handed
    out before by this process."""
    for _ in range(200):
        port = secrets.choice(_PORTS_BELOW_EPHEMERAL)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port found below the ephemeral range")


def _listen_note(listen_host: str) -> list[str]:
    """The comment a node.toml carries when it binds beyond loopback, saying why."""
    if listen_host == HOST:
        return []
    return [
        "# In a container the ports listen on the container's interface: the portal, the",
        "# registries and the other nodes reach them over the compose network. The host",
        "# publishes the consumer port on its loopback at most (docs/deployment.md).",
    ]


@dataclass
class NodeFiles:
    """Where one city's node keeps its keys, certificates, configuration and log."""

    city: City
    directory: Path
    consumer_port: int
    peer_port: int
    host: str = HOST
    """The name peers and clients reach this node by (a compose service name, say)."""
    listen_host: str = HOST
    """The address the node binds (``0.0.0.0`` in a container)."""
    consumer_tls_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    """The admin listener (``/metrics``, ``/operational``), always on loopback."""
    connection_type: str = "http"
    """The connection type written for every subsystem of the city (``[[clients]]``):
    ``http`` for the tests that are not about it, ``https`` in the demo."""
    connection_types: dict[str, str] = field(default_factory=dict)
    """Per subsystem code, a connection type other than ``connection_type``."""
    database_url: str | None = None
    """A PostgreSQL database for the node's log (``[node] database_url``) instead of
    ``messagelog.sqlite``; its schema made with ``gateway db upgrade``."""
    env: tuple[tuple[str, str], ...] = ()
    """Extra environment of the node's process, kept across its restarts (the fault
    harness's faked clock)."""

    def connection_type_of(self, subsystem: str) -> str:
        return self.connection_types.get(subsystem, self.connection_type)

    @property
    def config(self) -> Path:
        return self.directory / "node.toml"

    @property
    def key_passphrase_file(self) -> Path:
        """The throwaway passphrase (0600) of this node's encrypted key files."""
        return self.directory / "key-passphrase"

    @property
    def passphrase(self) -> bytes:
        """The passphrase of this node's key files, made on first use (0600, random): a
        sandbox node runs on encrypted keys as a deployed one does (docs/adr/0041)."""
        path = self.key_passphrase_file
        if not path.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            replace_atomically(path, secrets.token_urlsafe(32).encode("ascii") + b"\n", 0o600)
        return path.read_bytes().strip()

    @property
    def internal_cert(self) -> Path:
        """The consumer TLS port's certificate: what a client of this node trusts."""
        return self.directory / "internal-tls.pem"

    @property
    def internal_key(self) -> Path:
        return self.directory / "internal-tls.key"

    @property
    def client_certs(self) -> Path:
        """The node's store of registered information-system certificates."""
        return self.directory / "client-certs.json"

    def client_cert(self, subsystem: str) -> Path:
        """The certificate the information systems of ``subsystem`` present."""
        return self.directory / "information-systems" / f"{subsystem}.pem"

    def client_key(self, subsystem: str) -> Path:
        return self.directory / "information-systems" / f"{subsystem}.key"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    @property
    def consumer_tls_url(self) -> str:
        return f"https://{self.host}:{self.consumer_tls_port}"

    @property
    def client_url(self) -> str:
        """Where this city's information systems call: the plain port for ``http``."""
        return self.consumer_url if self.connection_type == "http" else self.consumer_tls_url

    def edge_tls(self, subsystem: str) -> EdgeTls | None:
        """How ``subsystem``'s information systems connect (None: plain HTTP)."""
        connection = self.connection_type_of(subsystem)
        if connection == "http":
            return None
        if connection == "https-no-auth":
            return EdgeTls(self.internal_cert)
        return EdgeTls(self.internal_cert, self.client_cert(subsystem), self.client_key(subsystem))

    @property
    def messagelog(self) -> Path:
        return self.directory / "messagelog.sqlite"

    @property
    def log_location(self) -> Path | str:
        """Where the node's log is: its database URL, else its SQLite file."""
        return self.database_url or self.messagelog

    @property
    def data_key_file(self) -> Path:
        """The node's data key, if the sandbox gave it one (``make_data_key``)."""
        return self.directory / "data.key"

    @property
    def data_key_passphrase_file(self) -> Path:
        return self.directory / "data-key.pass"

    def make_data_key(self) -> None:
        """A data key under a throwaway passphrase (0600, random), so the node seals the
        personal data it logs (docs/message-log.md#at-rest); ``node_toml`` names both in
        ``[logging]``. Nothing if the node has one already."""
        from gateway.keys.datakey import create_data_key

        if self.data_key_file.exists():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        passphrase = secrets.token_urlsafe(32).encode("ascii")
        replace_atomically(self.data_key_passphrase_file, passphrase + b"\n", 0o600)
        create_data_key(self.data_key_file, passphrase)

    def log_reader(self) -> LogStore | Path | str:
        """The node's log for a reader in this process: opened with its data key when
        it has one (sealed rows read as they were written), else where it is."""
        if not self.data_key_file.exists():
            return self.log_location
        from gateway.keys.datakey import load_data_key
        from gateway.keys.passphrase import read_passphrase_file
        from gateway.messagelog import open_store

        key = _DATA_KEYS.get(self.data_key_file)
        if key is None:  # unwrapped once per process: scrypt is slow on purpose
            passphrase = read_passphrase_file(self.data_key_passphrase_file)
            key = _DATA_KEYS[self.data_key_file] = load_data_key(self.data_key_file, passphrase)
        return open_store(self.log_location, key)

    @property
    def auth_cert(self) -> Path:
        return self.directory / "auth.pem"

    @property
    def sign_cert(self) -> Path:
        return self.directory / "sign.pem"

    @property
    def consumer_url(self) -> str:
        return f"http://{self.host}:{self.consumer_port}"

    @property
    def peer_url(self) -> str:
        return f"https://{self.host}:{self.peer_port}"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """A service a city provides, and who may call it."""

    id: ServiceId
    url: str
    openapi_url: str | None
    allowed: tuple[SubsystemId, ...]
    methods: tuple[str, ...] = ("GET",)
    timeout_seconds: float = 10.0
    enabled: bool = True
    require_issue: bool = False
    """Purpose binding: the provider refuses calls without ``X-Road-Issue``."""
    require_user_id: bool = False
    """Purpose binding: the provider refuses calls without ``X-Road-UserId``."""
    tls: tuple[tuple[str, str | tuple[str, ...]], ...] = ()
    """TLS settings for an ``https://`` registry (``tls_ca``, ``tls_pin_sha256``,
    ``tls_client_cert``, ``tls_client_key``), written into the service's section."""


@dataclass
class TrustFiles:
    """The CA's OCSP responder and TSA: one ``gateway trust serve`` process."""

    ca_dir: Path
    directory: Path
    port: int
    ocsp_validity_seconds: int = 3600
    """nextUpdate - thisUpdate of OCSP answers; tests with a short freshness window
    shorten it to match (see ``gateway trust serve --ocsp-validity``)."""
    host: str = HOST

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ocsp_url(self) -> str:
        return f"{self.url}/ocsp"

    @property
    def tsa_url(self) -> str:
        return f"{self.url}/tsa"

    @property
    def tsa_cert(self) -> Path:
        return self.directory / "tsa.pem"

    def serve_args(self, host: str) -> list[str]:
        """``gateway trust serve``'s arguments for these files, listening on ``host``."""
        d = self.directory
        return [
            "trust", "serve", "--ca", str(self.ca_dir),
            "--ocsp-cert", str(d / "ocsp.pem"), "--ocsp-key", str(d / "ocsp.key"),
            "--tsa-cert", str(d / "tsa.pem"), "--tsa-key", str(d / "tsa.key"),
            "--host", host, "--port", str(self.port),
            "--ocsp-validity", str(self.ocsp_validity_seconds),
            "--development",  # the sandbox's CA and services keep plain keys
        ]  # fmt: skip


@dataclass
class CentralFiles:
    """The federation's central authority: one ``gateway central serve`` process."""

    directory: Path
    port: int
    refresh_seconds: float | None = None
    """How often the central re-signs its timestamp metadata (default: expiry/3)."""
    host: str = HOST
    database_url: str | None = None
    """The registry's PostgreSQL database (``gateway central init --database-url``);
    None: ``central.sqlite`` in the directory."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token(self) -> str:
        """The system administrator's API key ``gateway central init`` wrote."""
        return (self.directory / "admin.key").read_text().strip()


def node_toml(
    files: NodeFiles,
    services: Sequence[ServiceSpec],
    extra: dict[str, Any] | None,
    source: Sequence[str],
) -> str:
    """The text of one node's ``node.toml``: its ports and files, ``extra`` keys in its
    ``[node]`` section, its clients, the ``services`` its city provides with their
    access rights, and ``source``, the ``[globalconf]`` section it takes routing and
    trust from (see :meth:`~gateway.sandbox.localnet.LocalNet.write_configs`)."""
    lines = [
        "# Generated by gateway.sandbox.localnet for a loopback federation.",
        "[node]",
        f'id = "{files.city.node}"',
        *_listen_note(files.listen_host),
        f'consumer_listen = "{files.listen_host}:{files.consumer_port}"',
        f'peer_listen = "{files.listen_host}:{files.peer_port}"',
        f'metrics_listen = "127.0.0.1:{files.metrics_port}"',
        (
            'messagelog = "messagelog.sqlite"'
            if files.database_url is None
            else f"database_url = {json.dumps(files.database_url)}"
        ),
        'auth_cert = "auth.pem"',
        'auth_key = "auth.key"',
    ]
    if files.key_passphrase_file.exists():
        lines.append(f'key_passphrase_file = "{files.key_passphrase_file.name}"')
    if files.internal_cert.exists():
        lines += [
            f'consumer_tls_listen = "{files.listen_host}:{files.consumer_tls_port}"',
            f'internal_tls_cert = "{files.internal_cert.name}"',
            f'internal_tls_key = "{files.internal_key.name}"',
            f'client_certs = "{files.client_certs.name}"',
        ]
    for key, value in (extra or {}).items():
        lines.append(f"{key} = {json.dumps(value)}")
    if files.data_key_file.exists():
        lines += [
            "",
            "[logging]",
            f'data_key = "{files.data_key_file.name}"',
            f'data_key_passphrase_file = "{files.data_key_passphrase_file.name}"',
        ]
    lines += [
        "",
        "[[signing]]",
        f'member = "{files.city.member}"',
        'cert = "sign.pem"',
        'key = "sign.key"',
    ]
    for code in files.city.subsystems:
        lines += [
            "",
            "[[clients]]",
            f'id = "{files.city.subsystem(code)}"',
            f'connection_type = "{files.connection_type_of(code)}"',
        ]
    for spec in services:
        if spec.id.member != files.city.member:
            continue
        lines += [
            "",
            "[[services]]",
            f'id = "{spec.id}"',
            f'url = "{spec.url}"',
            f"timeout_seconds = {spec.timeout_seconds}",
            f"enabled = {str(spec.enabled).lower()}",
            f"require_issue = {str(spec.require_issue).lower()}",
            f"require_user_id = {str(spec.require_user_id).lower()}",
        ]
        if spec.openapi_url:
            lines.append(f'openapi_url = "{spec.openapi_url}"')
        for key, value in spec.tls:
            lines.append(f"{key} = {json.dumps(value)}")
        for method in spec.methods:
            lines += ["[[services.endpoints]]", f'method = "{method}"', 'path = "/**"']
        for subject in spec.allowed:
            methods = ", ".join(f'"{m}"' for m in spec.methods)
            lines += [
                "",
                "[[access]]",
                f'service = "{spec.id}"',
                f'client = "{subject}"',
                f"methods = [{methods}]",
            ]
    return "\n".join([*lines, "", *source, ""])
