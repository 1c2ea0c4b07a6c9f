"""A federation on loopback: PKI, node configurations and processes for a few cities.

The demo, the integration tests and the benchmark all stand up the same topology through
this module, so what the tests check is what the demo shows. Everything listens on
127.0.0.1 only; ports are chosen by the OS.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from gateway.conf.anchor import ConfigurationAnchor, save_anchor
from gateway.conf.directory import TrustParameters
from gateway.conf.globalconf import CaEntry, GlobalConf, MemberEntry, NodeEntry, TsaEntry
from gateway.conf.tufdev import DevRepository
from gateway.core.encoding import format_time
from gateway.core.ids import ServiceId, SubsystemId
from gateway.keys.files import new_key_and_csr, new_self_signed
from gateway.node.clientauth import ClientCertStore
from gateway.pki.keys import fingerprint_sha256
from gateway.pki.profiles import CertKind, ServiceKind
from gateway.sandbox.cities import INSTANCE, City
from gateway.trust.ca_store import init_ca, issue_from_csr, issue_service
from registries.edgetls import EdgeTls

HOST = "127.0.0.1"
DEFAULT_GLOBALCONF_REFRESH = 2.0
"""How often LocalNet's nodes refresh global configuration (seconds): short, so tests
that publish a change see it applied within a few seconds."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


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

    def connection_type_of(self, subsystem: str) -> str:
        return self.connection_types.get(subsystem, self.connection_type)

    @property
    def config(self) -> Path:
        return self.directory / "node.toml"

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

    def issue_consumer_tls(self, now: datetime) -> None:
        """The node's internal TLS certificate and a certificate for each subsystem's
        information systems, registered in the node's store; keeps existing files."""
        if not self.internal_cert.exists():
            hosts = tuple(dict.fromkeys((self.host, HOST, "localhost")))
            new_self_signed(
                self.internal_cert,
                self.internal_key,
                f"{self.city.node} internal TLS",
                now,
                days=825,
                hosts=hosts,
                server=True,
            )
        store = ClientCertStore(self.client_certs)
        for code in self.city.subsystems:
            if self.client_cert(code).exists():
                continue
            client = self.city.subsystem(code)
            cert = new_self_signed(
                self.client_cert(code),
                self.client_key(code),
                str(client),
                now,
                days=825,
                client=True,
            )
            store.add(client, cert)

    @property
    def messagelog(self) -> Path:
        return self.directory / "messagelog.sqlite"

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


@dataclass
class CentralFiles:
    """The federation's central authority: one ``gateway central serve`` process."""

    directory: Path
    port: int
    refresh_seconds: float | None = None
    """How often the central re-signs its timestamp metadata (default: expiry/3)."""
    host: str = HOST

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token(self) -> str:
        """The system administrator's API key ``gateway central init`` wrote."""
        return (self.directory / "admin.key").read_text().strip()


@dataclass(frozen=True, slots=True)
class JoinResult:
    """What one city's join through the central authority produced."""

    city: City
    auth_sha256: str
    sign_sha256: str
    requests: tuple[dict[str, Any], ...]
    """The registration requests as the central answered their approval."""
    serials: tuple[int, ...]
    """The configuration serial each approval published (parallel to ``requests``)."""
    member_serial: int | None = None
    """The serial that published the member, if the operator registered it just now."""

    @property
    def serial(self) -> int:
        return self.serials[-1]


@dataclass(frozen=True, slots=True)
class Launch:
    """How one process of the federation was started, to start it again the same way."""

    name: str
    """The process's name in reports and its log's file name (``node-05974040``)."""
    args: tuple[str, ...]
    """The ``gateway`` command line after ``python -m gateway``."""
    log: Path
    """The file its stdout and stderr go to (appended across restarts)."""


@dataclass
class LocalNet:
    """The files of a federation; ``start_*`` run its processes."""

    root: Path
    nodes: dict[str, NodeFiles]
    ca_cert: Path
    trust: TrustFiles
    services: list[ServiceSpec] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    trust_process: subprocess.Popen[bytes] | None = None
    tuf: DevRepository | None = None
    """The development TUF repository of ``enable_globalconf`` (signed configuration)."""
    serial: int = 0
    parameters: TrustParameters = field(default_factory=TrustParameters)
    """The instance-wide settings the development publisher signs into every version."""
    central: CentralFiles | None = None
    """Set by ``create(..., central=True)``: a real central authority runs the federation
    and the cities join it (``join``) instead of being published by the development
    publisher."""
    central_process: subprocess.Popen[bytes] | None = None
    launches: dict[int, Launch] = field(default_factory=dict)
    """How each running process was started, by pid (``gateway.sandbox.supervisor`` restarts)."""

    # ---------------------------------------------------------------- building

    @classmethod
    def create(
        cls, root: Path, cities: Sequence[City], now: datetime, *, central: bool = False
    ) -> LocalNet:
        """Make a CA with its OCSP responder and TSA certificates and, per city, a node
        authentication and a member signing certificate.

        With ``central`` the cities get no keys here: ``start_central`` runs a central
        authority and ``join`` takes each city through the partner-city flow (keys and
        CSRs, certificates from the CA, signed registration, approval).
        """
        root = root.resolve()
        root.mkdir(parents=True, exist_ok=True)
        # Certificates hold whole seconds: with a fractional ``now`` the 3650-day TSA
        # certificate would end a fraction of a second after the 3650-day CA.
        now = now.replace(microsecond=0)
        ca_dir = root / "ca"
        init_ca(ca_dir, "Development CA DE-NRW", now)
        trust = TrustFiles(ca_dir, root / "trust", free_port())
        trust.directory.mkdir(parents=True, exist_ok=True)
        issue_service(ca_dir, ServiceKind.OCSP, trust.directory, now)
        issue_service(ca_dir, ServiceKind.TSA, trust.directory, now, days=1825)
        nodes: dict[str, NodeFiles] = {}
        for city in cities:
            files = NodeFiles(city, root / city.ags, free_port(), free_port())
            files.directory.mkdir(parents=True, exist_ok=True)
            nodes[city.ags] = files
            files.issue_consumer_tls(now)
            if central:
                continue
            new_key_and_csr(
                CertKind.AUTH,
                city.node,
                files.directory / "auth.key",
                files.directory / "auth.csr",
                city.name,
            )
            issue_from_csr(
                ca_dir,
                files.directory / "auth.csr",
                CertKind.AUTH,
                files.auth_cert,
                now,
                ip_addresses=(HOST,),
            )
            new_key_and_csr(
                CertKind.SIGN,
                city.member,
                files.directory / "sign.key",
                files.directory / "sign.csr",
                city.name,
            )
            issue_from_csr(
                ca_dir, files.directory / "sign.csr", CertKind.SIGN, files.sign_cert, now
            )
        net = cls(root, nodes, ca_dir / "ca.pem", trust)
        if central:
            net.central = CentralFiles(root / "central", free_port())
        return net

    def add_service(self, spec: ServiceSpec) -> None:
        self.services.append(spec)

    # ---------------------------------------------------------------- global configuration

    @property
    def anchor_path(self) -> Path:
        return self.root / "anchor.json"

    def enable_globalconf(self) -> DevRepository:
        """Serve a TUF repository on loopback and write the anchor nodes bootstrap from.

        Without ``central=True`` the signed configuration comes from this in-process
        development publisher, which lets tests publish arbitrary versions (removals,
        short expiry); nodes run exactly the client they run against the central
        authority (``start_central``, used by the demo).
        """
        if self.tuf is None:
            self.tuf = DevRepository(self.root / "tuf", INSTANCE)
            self.tuf.serve(HOST)
            save_anchor(self.anchor_path, self.tuf.anchor())
        return self.tuf

    def globalconf(
        self,
        nodes: Sequence[str] | None = None,
        *,
        parameters: TrustParameters | None = None,
    ) -> GlobalConf:
        """The federation as a global configuration document; ``nodes`` (AGS codes) limits
        which cities are registered (default: all), to test joining and removal."""
        from gateway.keys.files import load_certificate

        self.serial += 1
        cities = [f for ags, f in self.nodes.items() if nodes is None or ags in nodes]
        return GlobalConf(
            instance=INSTANCE,
            serial=self.serial,
            generated=format_time(datetime.now(UTC), "seconds"),
            members=tuple(
                MemberEntry(
                    f.city.member,
                    f.city.name,
                    tuple(f.city.subsystem(s) for s in f.city.subsystems),
                )
                for f in cities
            ),
            nodes=tuple(
                NodeEntry(
                    f.city.node,
                    f.peer_url,
                    (fingerprint_sha256(load_certificate(f.auth_cert)),),
                    (f.city.member, *(f.city.subsystem(s) for s in f.city.subsystems)),
                )
                for f in cities
            ),
            cas=(CaEntry(load_certificate(self.ca_cert), (self.trust.ocsp_url,)),),
            tsas=(
                TsaEntry(
                    "Development TSA DE-NRW",
                    self.trust.tsa_url,
                    load_certificate(self.trust.tsa_cert),
                ),
            ),
            parameters=parameters or self.parameters,
        )

    def publish_globalconf(
        self,
        nodes: Sequence[str] | None = None,
        *,
        expires_in: timedelta | None = None,
        parameters: TrustParameters | None = None,
    ) -> GlobalConf:
        """Sign and publish a new configuration version (see ``globalconf``)."""
        repo = self.enable_globalconf()
        conf = self.globalconf(nodes, parameters=parameters)
        repo.publish(conf.to_bytes(), expires_in=expires_in)
        return conf

    def write_configs(
        self,
        *,
        extra: dict[str, Any] | None = None,
        parameters: TrustParameters | None = None,
        globalconf_refresh_seconds: float = DEFAULT_GLOBALCONF_REFRESH,
        anchor: str | None = None,
        only_missing: bool = False,
    ) -> None:
        """One TOML file per node, each taking routing and trust from ``[globalconf]``.

        ``extra`` adds keys to each ``[node]`` section. Without a central authority the
        federation's configuration is published by the in-process development publisher
        (``enable_globalconf``), all cities registered, unless a test published a
        version of its own first; ``parameters`` (e.g. a short OCSP freshness window or
        timestamping interval) become the instance-wide settings of that and every later
        version. With a central authority, ``start_central`` writes the anchor and
        ``join`` registers the cities; settings go through its admin API.

        ``anchor`` is the path written into ``[globalconf]`` (default: the shared
        ``anchor.json`` at the root; ``gateway setup`` gives each node its own copy, a
        relative path); ``only_missing`` leaves existing files alone (set-up reruns).
        """
        if parameters is not None:
            self.parameters = parameters
        if self.central is None:
            self.enable_globalconf()
            if self.serial == 0:
                self.publish_globalconf()
        source = [
            "[globalconf]",
            f'anchor = "{anchor or self.anchor_path}"',
            'state_dir = "globalconf"',
            f"refresh_seconds = {globalconf_refresh_seconds}",
        ]
        for files in self.nodes.values():
            if only_missing and files.config.exists():
                continue
            lines = [
                "# Generated by gateway.sandbox.localnet for a loopback federation.",
                "[node]",
                f'id = "{files.city.node}"',
                *_listen_note(files.listen_host),
                f'consumer_listen = "{files.listen_host}:{files.consumer_port}"',
                f'peer_listen = "{files.listen_host}:{files.peer_port}"',
                f'metrics_listen = "127.0.0.1:{files.metrics_port}"',
                'messagelog = "messagelog.sqlite"',
                'auth_cert = "auth.pem"',
                'auth_key = "auth.key"',
            ]
            if files.internal_cert.exists():
                lines += [
                    f'consumer_tls_listen = "{files.listen_host}:{files.consumer_tls_port}"',
                    f'internal_tls_cert = "{files.internal_cert.name}"',
                    f'internal_tls_key = "{files.internal_key.name}"',
                    f'client_certs = "{files.client_certs.name}"',
                ]
            for key, value in (extra or {}).items():
                lines.append(f"{key} = {json.dumps(value)}")
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
            for spec in self.services:
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
            files.config.write_text("\n".join([*lines, "", *source, ""]), "utf-8")

    # ---------------------------------------------------------------- central authority

    def _central(self) -> CentralFiles:
        if self.central is None:
            raise RuntimeError("this federation has no central; use create(..., central=True)")
        return self.central

    def init_central(self) -> None:
        """``gateway central init`` with this federation's CA, OCSP responder and TSA,
        published at the central's URL; nothing if the directory already holds one."""
        from gateway.central.apikeys import init_central
        from gateway.central.service import DB_NAME, InitOptions
        from gateway.keys.files import load_certificate

        files = self._central()
        if (files.directory / DB_NAME).exists():
            return
        init_central(
            files.directory,
            InitOptions(
                instance=INSTANCE,
                ca_cert=load_certificate(self.ca_cert),
                ocsp_urls=(self.trust.ocsp_url,),
                public_url=files.url,
                tsa_name="Development TSA DE-NRW",
                tsa_url=self.trust.tsa_url,
                tsa_cert=load_certificate(self.trust.tsa_cert),
            ),
        )

    def start_central(self, settings: dict[str, str] | None = None) -> ConfigurationAnchor:
        """``gateway central init`` with the LocalNet CA, OCSP responder and TSA (once),
        then ``gateway central serve`` as a process; writes the nodes' anchor and
        returns it. ``settings`` go through the admin API (e.g. a short
        ``timestamping_interval_seconds``)."""
        from gateway.central.service import Central

        files = self._central()
        self.init_central()
        if self.central_process is None or self.central_process.poll() is not None:
            args = ["central", "serve", "--dir", str(files.directory)]
            args += ["--host", HOST, "--port", str(files.port)]
            if files.refresh_seconds is not None:
                args += ["--refresh-seconds", str(files.refresh_seconds)]
            proc = self._spawn(args, "central")
            wait_http(f"{files.url}/tuf/metadata/timestamp.json", proc)
            self.central_process = proc
        if settings:
            self.central_admin("PATCH", "/settings", settings)
        anchor = Central(files.directory).write_anchor(self.anchor_path, files.url)
        return anchor

    def central_admin(self, method: str, path: str, body: Any = None) -> Any:
        """One call to the running central's admin API with the init's API key."""
        files = self._central()
        response = httpx.request(
            method,
            f"{files.url}/admin/v1{path}",
            json=body,
            headers={"Authorization": f"Bearer {files.token}"},
            timeout=30,
        )
        if response.status_code >= 400:
            raise RuntimeError(f"central {method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def join(self, ags: str, now: datetime, *, approve: bool = True) -> JoinResult:
        """Take one city through the partner-city flow against the running central.

        The operator registers the member; the city makes its keys and CSRs
        (``gateway join keys``); the CA issues the certificates (``gateway pki issue``);
        the city imports them (``gateway join import``) and sends its registration
        requests signed with both keys (``gateway join register``); the operator
        approves each (``gateway central approve``), which publishes a new serial.
        With ``approve=False`` the requests stay pending (``requests`` as submitted,
        no ``serials``), for tests of what peers do before the approval.
        """
        from gateway.central.join import import_certs, make_keys, register

        files = self.nodes[ags]
        city = files.city
        central = self._central()
        known = {m["id"] for m in self.central_admin("GET", "/members")}
        member_serial = None
        if str(city.member) not in known:
            self.central_admin("POST", "/members", {"id": str(city.member), "name": city.name})
            member_serial = int(self.central_admin("GET", "/configuration")["serial"])
        auth_csr, sign_csr = make_keys(files.directory, city.node, city.name)
        issued = self.root / "issued" / ags
        issued.mkdir(parents=True, exist_ok=True)
        ca_dir = self.trust.ca_dir
        issue_from_csr(
            ca_dir, auth_csr, CertKind.AUTH, issued / "auth.pem", now, ip_addresses=(HOST,)
        )
        issue_from_csr(ca_dir, sign_csr, CertKind.SIGN, issued / "sign.pem", now)
        auth_fp, sign_fp = import_certs(files.directory, issued / "auth.pem", issued / "sign.pem")
        submitted = register(
            files.directory, central.url, files.peer_url, list(city.subsystems), now
        )
        approved: list[dict[str, Any]] = []
        serials: list[int] = []
        if not approve:
            return JoinResult(city, auth_fp, sign_fp, tuple(submitted), (), member_serial)
        for r in submitted:  # the node first, then its clients
            approved.append(self.central_admin("POST", f"/requests/{r['id']}/approve"))
            serials.append(int(self.central_admin("GET", "/configuration")["serial"]))
        return JoinResult(city, auth_fp, sign_fp, tuple(approved), tuple(serials), member_serial)

    # ---------------------------------------------------------------- processes

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log_path = self.root / "logs" / f"{log_name}.log"
        return self._launch(Launch(log_name, tuple(args), log_path))

    def _launch(self, launch: Launch) -> subprocess.Popen[bytes]:
        launch.log.parent.mkdir(parents=True, exist_ok=True)
        with launch.log.open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "gateway", *launch.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.processes.append(proc)
        self.launches[proc.pid] = launch
        return proc

    def launch_of(self, proc: subprocess.Popen[bytes]) -> Launch | None:
        """How ``proc`` was started, if this federation started it."""
        return self.launches.get(proc.pid)

    def forget(self, proc: subprocess.Popen[bytes]) -> None:
        """Drop a process that has ended from the ones this federation runs."""
        if proc in self.processes:
            self.processes.remove(proc)
        self.launches.pop(proc.pid, None)
        if proc is self.trust_process:
            self.trust_process = None
        if proc is self.central_process:
            self.central_process = None

    def respawn(self, launch: Launch) -> subprocess.Popen[bytes]:
        """Start a process again as it was first started (same command, ports, log).

        Does not wait for it to answer: a restart must not hold up watching the others.
        """
        proc = self._launch(launch)
        if launch.name == "trust":
            self.trust_process = proc
        elif launch.name == "central":
            self.central_process = proc
        return proc

    def melderegister_token_file(self, city: str = "lippstadt") -> Path:
        """The file with the operator token of ``city``'s Melderegister (``GET
        /protokoll``), written when the register is first started."""
        name = "melderegister" if city == "lippstadt" else f"melderegister-{city}"
        return self.root / "registries" / f"{name}.operator-token"

    def start_melderegister(self, port: int, city: str = "lippstadt") -> subprocess.Popen[bytes]:
        """``city``'s Melderegister; Lippstadt's keeps the plain file and log names."""
        name = "melderegister" if city == "lippstadt" else f"melderegister-{city}"
        db = self.root / "registries" / f"{name}.sqlite"
        db.parent.mkdir(parents=True, exist_ok=True)
        token = self.melderegister_token_file(city)
        if not token.exists():
            token.write_text(secrets.token_urlsafe(32), "utf-8")
            token.chmod(0o600)
        args = ["registry", "melderegister", "--db", str(db), "--port", str(port)]
        args += ["--operator-token-file", str(token)]
        proc = self._spawn([*args, "--city", city], name)
        wait_http(f"http://{HOST}:{port}/health", proc)
        return proc

    def start_trust(self) -> subprocess.Popen[bytes]:
        """Run the OCSP responder and TSA (once; later calls return the running process)."""
        if self.trust_process is not None and self.trust_process.poll() is None:
            return self.trust_process
        t = self.trust
        proc = self._spawn(
            [
                "trust",
                "serve",
                "--ca",
                str(t.ca_dir),
                "--ocsp-cert",
                str(t.directory / "ocsp.pem"),
                "--ocsp-key",
                str(t.directory / "ocsp.key"),
                "--tsa-cert",
                str(t.directory / "tsa.pem"),
                "--tsa-key",
                str(t.directory / "tsa.key"),
                "--host",
                HOST,
                "--port",
                str(t.port),
                "--ocsp-validity",
                str(t.ocsp_validity_seconds),
            ],
            "trust",
        )
        wait_http(f"{t.url}/health", proc)
        self.trust_process = proc
        return proc

    def stop_trust(self) -> None:
        """Stop the trust services (to test outages); ``start_trust`` brings them back."""
        proc = self.trust_process
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.remove(proc)
        self.launches.pop(proc.pid, None)
        self.trust_process = None

    def start_node(self, ags: str) -> subprocess.Popen[bytes]:
        """Run one city's node; the trust services are started first if they are not up."""
        self.start_trust()
        files = self.nodes[ags]
        proc = self._spawn(["node", "serve", "--config", str(files.config)], f"node-{ags}")
        plain = any(files.connection_type_of(c) == "http" for c in files.city.subsystems)
        if plain:
            wait_http(f"{files.consumer_url}/health", proc)
        else:
            tls = EdgeTls(files.internal_cert)
            wait_http(f"{files.consumer_tls_url}/health", proc, verify=tls.context())
        return proc

    def stop_node(self, ags: str) -> None:
        """Stop one city's node (SIGTERM: it drains and closes its log)."""
        files = self.nodes[ags]
        for proc in list(self.processes):
            if proc.args[-1] == str(files.config) and proc.poll() is None:  # type: ignore[index]
                proc.terminate()
                proc.wait(timeout=10)
                self.processes.remove(proc)
                self.launches.pop(proc.pid, None)

    def stop(self) -> None:
        if self.tuf is not None:
            self.tuf.shutdown()
            self.tuf = None
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()
        self.launches.clear()
        self.trust_process = None
        self.central_process = None

    def topology(self) -> dict[str, Any]:
        """What a client needs to talk to this federation (see README, "topology file")."""
        topology: dict[str, Any] = {
            "instance": INSTANCE,
            "ca_certificate": str(self.ca_cert),
            "ocsp_url": self.trust.ocsp_url,
            "tsa_url": self.trust.tsa_url,
            "nodes": [
                {
                    "id": str(files.city.node),
                    "member": str(files.city.member),
                    "name": files.city.name,
                    "consumer_url": files.client_url,
                    "consumer_tls_url": files.consumer_tls_url,
                    "consumer_tls_ca": str(files.internal_cert),
                    "peer_url": files.peer_url,
                    "metrics_url": files.metrics_url,
                    "clients": [str(files.city.subsystem(s)) for s in files.city.subsystems],
                    "client_credentials": [
                        {
                            "client": str(files.city.subsystem(s)),
                            "connection_type": files.connection_type_of(s),
                            "certificate": str(files.client_cert(s)),
                            "key": str(files.client_key(s)),
                        }
                        for s in files.city.subsystems
                    ],
                    "messagelog": str(files.messagelog),
                    "config": str(files.config),
                }
                for files in self.nodes.values()
            ],
            "services": [
                {
                    "id": str(spec.id),
                    "provider_url": spec.url,
                    "methods": list(spec.methods),
                    "allowed_clients": [str(c) for c in spec.allowed],
                }
                for spec in self.services
            ],
        }
        if self.central is not None:
            topology["central_url"] = self.central.url
            topology["anchor"] = str(self.anchor_path)
        return topology


def wait_http(
    url: str,
    proc: subprocess.Popen[bytes] | None = None,
    timeout: float = 20,
    *,
    verify: ssl.SSLContext | bool = True,
) -> None:
    """Poll until ``url`` answers 200; fail early if the process died. ``verify``: the
    TLS context for an ``https`` URL (trusting a node's internal TLS certificate)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with code {proc.returncode}")
        try:
            if httpx.get(url, timeout=1, verify=verify).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up within {timeout} s: {last}")
