"""A federation on loopback: PKI, node configurations and processes for a few cities.

The demo, the integration tests and the benchmark all stand up the same topology through
this module, so what the tests check is what the demo shows. Everything listens on
127.0.0.1 only; ports are chosen by the OS.

:class:`LocalNet` holds the story: make the PKI, publish or join the configuration,
write the nodes' files, start and stop the processes. Its parts have their own modules:
where each process keeps its files and what a node's ``node.toml`` says
(``netfiles.py``), every certificate the federation issues (``localpki.py``), and how
one ``gateway`` process is started, awaited and ended (``processes.py``). Their names a
caller needs beside ``LocalNet`` are re-exported here (``__all__``), so a test imports
the federation from one place.
"""

from __future__ import annotations

import secrets
import subprocess
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
from gateway.core.ids import MemberId
from gateway.pki.keys import fingerprint_sha256
from gateway.sandbox.cities import INSTANCE, City
from gateway.sandbox.localpki import (
    issue_ca,
    issue_consumer_tls,
    issue_joined_certificates,
    issue_node_certificates,
)
from gateway.sandbox.netfiles import (
    HOST,
    CentralFiles,
    NodeFiles,
    ServiceSpec,
    TrustFiles,
    free_port,
    node_toml,
)
from gateway.sandbox.processes import START_TIMEOUT, Env, Launch, end, spawn, wait_http
from registries.edgetls import EdgeTls

__all__ = [
    "DEFAULT_GLOBALCONF_REFRESH",
    "HOST",
    "CentralFiles",
    "JoinResult",
    "Launch",
    "LocalNet",
    "NodeFiles",
    "ServiceSpec",
    "TrustFiles",
    "free_port",
    "wait_http",
]

DEFAULT_GLOBALCONF_REFRESH = 2.0
"""How often LocalNet's nodes refresh global configuration (seconds): short, so tests
that publish a change see it applied within a few seconds."""


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
    instance: str = INSTANCE
    federated: list[ConfigurationAnchor] = field(default_factory=list)
    """The anchors of the instances this one federates with, signed into every version."""
    partners: list[LocalNet] = field(default_factory=list)
    """Federated instances run beside this one: stopped with it, listed in its topology."""

    # ---------------------------------------------------------------- building

    @classmethod
    def create(
        cls,
        root: Path,
        cities: Sequence[City],
        now: datetime,
        *,
        central: bool = False,
        instance: str = INSTANCE,
    ) -> LocalNet:
        """Make a CA with its OCSP responder and TSA certificates and, per city, a node
        authentication and a member signing certificate.

        A city listed again with another server code (``LIPPSTADT.on_server("ss2")``)
        is a second node of the same member: it hosts the same subsystems and serves
        the same services, under ``nodes[city.key]``, with keys of its own.

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
        trust = TrustFiles(ca_dir, root / "trust", free_port())
        issue_ca(trust, now, f"Development CA {instance}")
        nodes: dict[str, NodeFiles] = {}
        for city in cities:
            files = NodeFiles(city, root / city.key, free_port(), free_port())
            files.directory.mkdir(parents=True, exist_ok=True)
            nodes[city.key] = files
            issue_consumer_tls(files, now)
            if not central:
                issue_node_certificates(ca_dir, files, now)
        net = cls(root, nodes, ca_dir / "ca.pem", trust, instance=instance)
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
            self.tuf = DevRepository(self.root / "tuf", self.instance)
            self.tuf.serve(HOST)
            save_anchor(self.anchor_path, self.tuf.anchor())
        return self.tuf

    def globalconf(
        self,
        nodes: Sequence[str] | None = None,
        *,
        parameters: TrustParameters | None = None,
    ) -> GlobalConf:
        """The federation as a global configuration document; ``nodes`` (keys of
        ``self.nodes``, the AGS codes) limits which nodes are registered (default: all),
        to test joining and removal. A member with two nodes is listed once."""
        from gateway.keys.files import load_certificate

        self.serial += 1
        cities = [f for key, f in self.nodes.items() if nodes is None or key in nodes]
        members: dict[MemberId, City] = {}
        for f in cities:
            members.setdefault(f.city.member, f.city)
        return GlobalConf(
            instance=self.instance,
            serial=self.serial,
            generated=format_time(datetime.now(UTC), "seconds"),
            members=tuple(
                MemberEntry(
                    city.member,
                    city.name,
                    tuple(city.subsystem(s) for s in city.subsystems),
                )
                for city in members.values()
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
                    f"Development TSA {self.instance}",
                    self.trust.tsa_url,
                    load_certificate(self.trust.tsa_cert),
                ),
            ),
            parameters=parameters or self.parameters,
            federated=tuple(self.federated),
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
            files.config.write_text(node_toml(files, self.services, extra, source), "utf-8")

    # ---------------------------------------------------------------- central authority

    def _central(self) -> CentralFiles:
        if self.central is None:
            raise RuntimeError("this federation has no central; use create(..., central=True)")
        return self.central

    def init_central(self) -> None:
        """``gateway central init`` with this federation's CA, OCSP responder and TSA,
        published at the central's URL; nothing if the directory already holds one."""
        from gateway.central.apikeys import init_central
        from gateway.central.db import DB_NAME, URL_FILE
        from gateway.central.service import InitOptions
        from gateway.keys.files import load_certificate

        files = self._central()
        if (files.directory / DB_NAME).exists() or (files.directory / URL_FILE).exists():
            return
        init_central(
            files.directory,
            InitOptions(
                instance=self.instance,
                ca_cert=load_certificate(self.ca_cert),
                ocsp_urls=(self.trust.ocsp_url,),
                public_url=files.url,
                tsa_name=f"Development TSA {self.instance}",
                tsa_url=self.trust.tsa_url,
                tsa_cert=load_certificate(self.trust.tsa_cert),
                development=True,  # plain online key files, as the sandbox's other keys
            ),
            files.database_url,
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
        auth_csr, sign_csr = make_keys(files.directory, city.node, city.name, files.passphrase)
        auth, sign = issue_joined_certificates(
            self.trust.ca_dir, auth_csr, sign_csr, self.root / "issued" / ags, now
        )
        auth_fp, sign_fp = import_certs(files.directory, auth, sign, files.passphrase)
        where, pw = (central.url, files.peer_url), files.passphrase
        submitted = register(files.directory, *where, list(city.subsystems), now, pw)
        approved: list[dict[str, Any]] = []
        serials: list[int] = []
        if not approve:
            return JoinResult(city, auth_fp, sign_fp, tuple(submitted), (), member_serial)
        for r in submitted:  # the node first, then its clients
            approved.append(self.central_admin("POST", f"/requests/{r['id']}/approve"))
            serials.append(int(self.central_admin("GET", "/configuration")["serial"]))
        return JoinResult(city, auth_fp, sign_fp, tuple(approved), tuple(serials), member_serial)

    # ---------------------------------------------------------------- processes

    def _spawn(self, args: list[str], log_name: str, env: Env = ()) -> subprocess.Popen[bytes]:
        log_path = self.root / "logs" / f"{log_name}.log"
        return self._launch(Launch(log_name, tuple(args), log_path, env))

    def _launch(self, launch: Launch) -> subprocess.Popen[bytes]:
        proc = spawn(launch)
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
        proc = self._spawn(t.serve_args(HOST), "trust")
        wait_http(f"{t.url}/health", proc)
        self.trust_process = proc
        return proc

    def stop_trust(self) -> None:
        """Stop the trust services (to test outages); ``start_trust`` brings them back."""
        proc = self.trust_process
        if proc is None:
            return
        end(proc)
        self.processes.remove(proc)
        self.launches.pop(proc.pid, None)
        self.trust_process = None

    def start_node(
        self, ags: str, *, workers: int = 1, timeout: float = START_TIMEOUT
    ) -> subprocess.Popen[bytes]:
        """Run one city's node (``workers`` worker processes under one parent, on a
        PostgreSQL log); the trust services are started first if they are not up.
        ``timeout``: the seconds it may take to answer (the fault harness, on a loaded
        machine, waits longer)."""
        self.start_trust()
        files = self.nodes[ags]
        spread = ["--workers", str(workers)] if workers != 1 else []
        args = ["node", "serve", *spread, "--config", str(files.config)]
        proc = self._spawn(args, f"node-{ags}", files.env)
        plain = any(files.connection_type_of(c) == "http" for c in files.city.subsystems)
        if plain:
            wait_http(f"{files.consumer_url}/health", proc, timeout)
        else:
            tls = EdgeTls(files.internal_cert)
            wait_http(f"{files.consumer_tls_url}/health", proc, timeout, verify=tls.context())
        return proc

    def stop_node(self, ags: str, *, kill: bool = False) -> None:
        """Stop one city's node (SIGTERM: it drains and closes its log); with ``kill``,
        SIGKILL, as a crash or ``kill -9`` ends it."""
        files = self.nodes[ags]
        for proc in list(self.processes):
            if proc.args[-1] == str(files.config) and proc.poll() is None:  # type: ignore[index]
                if kill:
                    proc.kill()
                else:
                    proc.terminate()
                proc.wait(timeout=10)
                self.processes.remove(proc)
                self.launches.pop(proc.pid, None)

    def stop(self) -> None:
        for partner in self.partners:
            partner.stop()
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
            "instance": self.instance,
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
                    "admin_url": f"{files.metrics_url}/api/v1",
                    "admin_key": str(files.directory / "admin.key"),
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
        if self.partners:
            topology["federated_instances"] = [p.topology() for p in self.partners]
        if self.central is not None:
            topology["central_url"] = self.central.url
            topology["anchor"] = str(self.anchor_path)
        return topology
