"""``gateway setup``: prepare the state of the docker-compose federation in one go.

docker-compose.yml runs one process per container on named volumes; before any of them
can start, the volumes need what a federation's operators would otherwise prepare by
hand: the development CA with its OCSP responder's and TSA's certificates, the central
authority (``gateway central init``), each member's node keys and certificates, the
node's registration approved by the central's operator, every node's ``node.toml`` with
its anchor, services and access rights, and the registries' directories.

The steps are the ones a real federation goes through, run by the same code:

- the CA and its service certificates come from :mod:`gateway.trust.ca_store`;
- the central is initialised by :meth:`LocalNet.init_central` (``Central.init``);
- each node makes its keys and CSRs on its own volume (``gateway join keys`` logic,
  :func:`gateway.central.join.make_keys`), the CA issues the certificates, the node
  imports them (``gateway join import``) and signs its registration requests with both
  keys; the central verifies them (``submit_auth_cert``/``submit_client``) and the
  operator's approval (``approve``) records them in the central's audit trail under the
  actor ``gateway setup``. The central never holds a node's private key.
- node configurations are written by :meth:`LocalNet.write_configs`.

Setting up is idempotent: each step first looks at what is already there, completes
what a crash left half done, and refuses, naming the file or record, where completing
would mean guessing (a node whose volume was wiped while the central still lists its old
certificate, say). A second run changes no file.

``--hosts compose`` names every process by its compose service name with the fixed ports
of docker-compose.yml and makes nodes bind ``0.0.0.0``; ``--hosts loopback`` puts
everything on 127.0.0.1 with free ports (kept in ``loopback-ports.json``), so the same
state can run as local processes — which is how the tests prove it usable.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.sandbox.cities import (
    IHK,
    IHK_SERVICE,
    INSTANCE,
    ISERLOHN,
    ISERLOHN_MELDEREGISTER_SERVICE,
    LIPPSTADT,
    MELDEREGISTER_SERVICE,
    SOEST,
    TRACKERS,
    TRADE_OFFICE,
    City,
)
from gateway.sandbox.federation import allow_tracker
from gateway.sandbox.localnet import (
    HOST,
    CentralFiles,
    LocalNet,
    NodeFiles,
    ServiceSpec,
    TrustFiles,
    free_port,
)

if TYPE_CHECKING:
    from gateway.central.service import Central

ACTOR = "gateway setup"
"""Who the central's audit trail names for the approvals set-up performs."""

MELDEREGISTER_SERVICES = {
    LIPPSTADT.ags: MELDEREGISTER_SERVICE,
    ISERLOHN.ags: ISERLOHN_MELDEREGISTER_SERVICE,
}
"""Each Melderegister's § 38 query, which Soest's trade office may call."""
TRACKER_SERVICES = TRACKERS
"""The data trackers built into the Melderegister providers' nodes (the portal asks
both on the citizen's behalf)."""


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One member's node in the compose topology."""

    city: City
    service: str
    """The compose service name, which is also its hostname."""
    volume: str


NODES = (
    NodeSpec(SOEST, "node-soest", "soest-node"),
    NodeSpec(LIPPSTADT, "node-lippstadt", "lippstadt-node"),
    NodeSpec(ISERLOHN, "node-iserlohn", "iserlohn-node"),
    NodeSpec(IHK, "node-ihk", "ihk-node"),
)
TRUST_VOLUME = "trust"
CENTRAL_VOLUME = "central"
REGISTRY_VOLUMES = ("lippstadt-registry", "iserlohn-registry", "soest-registry", "ihk", "portal")
VOLUMES = (TRUST_VOLUME, CENTRAL_VOLUME, *(n.volume for n in NODES), *REGISTRY_VOLUMES)
"""Every named volume ``gateway setup`` prepares, each a directory of ``--state``."""

COMPOSE_PORTS = {
    "trust": 8090,
    "central": 8100,
    "melderegister": 8001,
    "gewerberegister": 8002,
    "ihk": 8003,
    "portal": 8004,
    "melderegister-iserlohn": 8005,
    **{f"{n.service}:consumer": 8080 for n in NODES},
    **{f"{n.service}:peer": 8443 for n in NODES},
    **{f"{n.service}:metrics": 9090 for n in NODES},
}
"""The fixed ports of docker-compose.yml (tests/unit/test_compose.py checks they agree)."""
LOOPBACK_PORTS = "loopback-ports.json"


class SetupError(ValueError):
    """The state cannot be completed without guessing; the message names what and why."""


@dataclass(frozen=True, slots=True)
class Addresses:
    """Where each process of the topology is reached, and what address it binds."""

    mode: str
    ports: dict[str, int]
    listen_host: str

    def host(self, service: str) -> str:
        return service if self.mode == "compose" else HOST

    def url(self, service: str, scheme: str = "http", key: str | None = None) -> str:
        return f"{scheme}://{self.host(service)}:{self.ports[key or service]}"


def compose_addresses() -> Addresses:
    """Compose service names as hosts, docker-compose.yml's ports, nodes bind 0.0.0.0.

    A node's default, 127.0.0.1, would be the container's own loopback, which the portal
    and Gewerberegister containers cannot reach; so compose nodes bind every interface
    of their container explicitly, and docker-compose.yml decides what reaches the host
    (the consumer port on the host's loopback at most, docs/deployment.md)."""
    return Addresses("compose", dict(COMPOSE_PORTS), "0.0.0.0")  # noqa: S104 - a container


def loopback_addresses(state: Path) -> Addresses:
    """127.0.0.1 with ports the OS had free on the first run, reused on later runs."""
    path = state / LOOPBACK_PORTS
    if path.exists():
        ports = {str(k): int(v) for k, v in json.loads(path.read_text("utf-8")).items()}
        if set(ports) != set(COMPOSE_PORTS):
            raise SetupError(f"{path} does not list this topology's ports; remove it")
    else:
        ports = {key: free_port() for key in COMPOSE_PORTS}
        state.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(ports, indent=2, sort_keys=True) + "\n", "utf-8")
    return Addresses("loopback", ports, HOST)


def federation(state: Path, addresses: Addresses) -> LocalNet:
    """The topology's files under ``state`` (one directory per volume) as a LocalNet,
    with the providers' services and who may call them."""
    state = state.resolve()
    trust_dir = state / TRUST_VOLUME
    trust = TrustFiles(
        trust_dir / "ca", trust_dir, addresses.ports["trust"], host=addresses.host("trust")
    )
    nodes = {
        n.city.ags: NodeFiles(
            n.city,
            state / n.volume,
            addresses.ports[f"{n.service}:consumer"],
            addresses.ports[f"{n.service}:peer"],
            host=addresses.host(n.service),
            listen_host=addresses.listen_host,
            metrics_port=addresses.ports[f"{n.service}:metrics"],
        )
        for n in NODES
    }
    net = LocalNet(state, nodes, trust.ca_dir / "ca.pem", trust)
    net.central = CentralFiles(
        state / CENTRAL_VOLUME, addresses.ports["central"], host=addresses.host("central")
    )
    for ags, registry in (
        (LIPPSTADT.ags, "melderegister"),
        (ISERLOHN.ags, "melderegister-iserlohn"),
    ):
        base = addresses.url(registry)
        net.add_service(
            ServiceSpec(
                id=MELDEREGISTER_SERVICES[ags],
                url=f"{base}/personen",
                openapi_url=f"{base}/openapi.json",
                allowed=(TRADE_OFFICE,),
            )
        )
    base = addresses.url("ihk")
    net.add_service(
        ServiceSpec(
            id=IHK_SERVICE,
            url=base,
            openapi_url=f"{base}/openapi.json",
            allowed=(TRADE_OFFICE,),
            methods=("POST",),
        )
    )
    return net


Report = Callable[[str], None]


def prepare(
    state: Path,
    addresses: Addresses,
    now: datetime,
    *,
    refresh_seconds: float = 60.0,
    report: Report = lambda line: None,
) -> LocalNet:
    """Bring ``state`` to a complete, startable federation; returns its LocalNet.

    Each step reports ``created ...`` or ``kept ...``; a rerun on a complete state only
    reports ``kept`` and writes nothing.
    """
    now = now.replace(microsecond=0)
    net = federation(state, addresses)
    for volume in VOLUMES:
        (net.root / volume).mkdir(parents=True, exist_ok=True)
    _pki(net, now, report)
    central = _central(net, report)
    _members(central, report)
    for files in net.nodes.values():
        _node_keys(net, files, now, report)
        _registration(central, files, now, report)
        _anchor(central, net, files, report)
    _configs(net, refresh_seconds, report)
    if addresses.mode == "compose":
        _cluster_config(net, report)
    return net


# --- the steps ---------------------------------------------------------------------------------


def _pki(net: LocalNet, now: datetime, report: Report) -> None:
    from gateway.pki.profiles import ServiceKind
    from gateway.trust.ca_store import init_ca, issue_service

    ca_dir = net.trust.ca_dir
    if net.ca_cert.exists():
        report(f"kept CA {net.ca_cert}")
    else:
        if ca_dir.exists() and any(ca_dir.iterdir()):
            raise SetupError(
                f"{ca_dir} holds a CA without its certificate (an interrupted set-up?); "
                "nothing was issued from it yet: remove the directory and run again"
            )
        init_ca(ca_dir, f"Development CA {INSTANCE}", now)
        report(f"created CA {net.ca_cert}")
    for kind, days in ((ServiceKind.OCSP, 90), (ServiceKind.TSA, 1825)):
        cert = net.trust.directory / f"{kind.value}.pem"
        key = net.trust.directory / f"{kind.value}.key"
        if cert.exists():
            report(f"kept {kind.value} certificate {cert}")
            continue
        if key.exists():
            raise SetupError(f"{key} exists without {cert.name}: remove it and run again")
        issue_service(ca_dir, kind, net.trust.directory, now, days=days)
        report(f"created {kind.value} certificate {cert}")


def _central(net: LocalNet, report: Report) -> Central:
    from gateway.central.service import ANCHOR_NAME, DB_NAME, Central
    from gateway.keys.files import load_certificate
    from gateway.pki.keys import fingerprint_sha256

    assert net.central is not None
    directory = net.central.directory
    if (directory / DB_NAME).exists():
        if not (directory / ANCHOR_NAME).exists():
            raise SetupError(
                f"{directory} holds a central whose 'gateway central init' did not finish "
                f"(no {ANCHOR_NAME}); no node can have joined it: remove the directory's "
                "contents and run again"
            )
        central = Central(directory)
        published = central.setting("public_url")
        if published != net.central.url:
            raise SetupError(
                f"the central in {directory} publishes at {published}, not {net.central.url}: "
                "this state was prepared for other hosts"
            )
        from gateway.central import registry

        ca = fingerprint_sha256(load_certificate(net.ca_cert))
        if ca not in {c["sha256"] for c in registry.list_cas(central)}:
            raise SetupError(
                f"the central in {directory} does not approve the CA in {net.trust.ca_dir} "
                "(one of the two volumes was replaced): remove both and run again"
            )
        report(f"kept central authority {directory}")
        return central
    if directory.exists() and any(directory.iterdir()):
        raise SetupError(f"{directory} is not empty but holds no central: clear it and run again")
    net.init_central()
    report(f"created central authority {directory} publishing at {net.central.url}")
    return Central(directory)


def _members(central: Central, report: Report) -> None:
    from gateway.central import registry

    known = {m["id"] for m in registry.list_members(central)}
    for n in NODES:
        member = str(n.city.member)
        if member in known:
            report(f"kept member {member}")
            continue
        registry.add_member(central, ACTOR, member, n.city.name)
        report(f"created member {member} ({n.city.name})")


def _node_keys(net: LocalNet, files: NodeFiles, now: datetime, report: Report) -> None:
    """Keys and CSRs on the node's own volume, certificates from the CA, imported."""
    from gateway.central.join import STATE, import_certs, make_keys
    from gateway.pki.profiles import CertKind
    from gateway.trust.ca_store import issue_from_csr

    d, city = files.directory, files.city
    if not (d / STATE).exists():
        for stale in ("auth.key", "sign.key"):
            if (d / stale).exists():
                raise SetupError(
                    f"{d / stale} exists but {STATE} does not (interrupted key generation); "
                    f"no certificate was issued for it: remove {d}'s keys and CSRs and run again"
                )
        make_keys(d, city.node, city.name, files.passphrase)
        report(f"created keys and CSRs for {city.node} in {d}")
    else:
        joined = json.loads((d / STATE).read_text("utf-8"))["node_id"]
        if joined != str(city.node):
            raise SetupError(f"{d / STATE} is for {joined}, not {city.node}")
    if files.auth_cert.exists() and files.sign_cert.exists():
        report(f"kept certificates of {city.node}")
        return
    issued = d / "issued"
    issued.mkdir(exist_ok=True)
    try:
        ip: tuple[str, ...] = (str(ipaddress.ip_address(files.host)),)
        dns: tuple[str, ...] = ()
    except ValueError:
        ip, dns = (), (files.host,)
    ca = net.trust.ca_dir
    issue_from_csr(
        ca, d / "auth.csr", CertKind.AUTH, issued / "auth.pem", now, dns_names=dns, ip_addresses=ip
    )
    issue_from_csr(ca, d / "sign.csr", CertKind.SIGN, issued / "sign.pem", now)
    import_certs(d, issued / "auth.pem", issued / "sign.pem", files.passphrase)
    report(f"created certificates of {city.node} ({', '.join((*dns, *ip))})")


def _registration(central: Central, files: NodeFiles, now: datetime, report: Report) -> None:
    """The node's signed registration requests, verified and approved by the central."""
    from gateway.central import registry, requests
    from gateway.central.registration import auth_cert_document, client_document, sign_detached
    from gateway.core.canonical import canonical_json
    from gateway.core.ids import parse_client
    from gateway.keys.files import load_certificate, load_private_key
    from gateway.pki.keys import fingerprint_sha256

    city, d = files.city, files.directory
    node = city.node
    auth_cert, sign_cert = load_certificate(files.auth_cert), load_certificate(files.sign_cert)
    auth_key = load_private_key(d / "auth.key", files.passphrase)
    sign_key = load_private_key(d / "sign.key", files.passphrase)
    fingerprint = fingerprint_sha256(auth_cert)
    registered = {n["id"]: n for n in registry.list_nodes(central)}.get(str(node))
    if registered is not None and fingerprint not in registered["auth_cert_sha256"]:
        raise SetupError(
            f"the central registers {node} with another authentication certificate than "
            f"{files.auth_cert} (the node's volume was reset after it joined): remove the "
            "node at the central ('gateway central' admin) or restore the volume"
        )
    if registered is not None and registered["address"] != files.peer_url:
        raise SetupError(
            f"the central lists {node} at {registered['address']}, not {files.peer_url}"
        )
    if registered is None:
        doc = auth_cert_document(node.instance, node, files.peer_url, auth_cert, now)
        payload = canonical_json(doc)
        body = {
            "document": doc,
            "auth_signature": sign_detached(payload, auth_key, [auth_cert]),
            "member_signature": sign_detached(payload, sign_key, [sign_cert]),
        }
        _approve(central, requests.submit_auth_cert(central, body), report)
    else:
        report(f"kept registration of {node}")
    clients = set(registered["clients"]) if registered else set()
    for code in city.subsystems:
        client = city.subsystem(code)
        if str(client) in clients:
            report(f"kept registration of client {client}")
            continue
        doc = client_document(node.instance, node, parse_client(str(client)), now)
        body = {
            "document": doc,
            "member_signature": sign_detached(canonical_json(doc), sign_key, [sign_cert]),
        }
        _approve(central, requests.submit_client(central, body), report)


def _approve(central: Central, request: dict[str, Any], report: Report) -> None:
    from gateway.central import requests

    what = request["client_id"] or request["node_id"]
    if request["status"] == "pending":
        request = requests.approve(central, ACTOR, request["id"])
    if request["status"] != "approved":
        raise SetupError(
            f"the central {request['status']} the registration of {what} "
            f"(request {request['id']}: {request['reason']})"
        )
    report(f"created registration of {what}, request {request['id']} approved")


def _anchor(central: Central, net: LocalNet, files: NodeFiles, report: Report) -> None:
    """Each node's own copy of the anchor (its volume holds everything it reads)."""
    assert net.central is not None
    path = files.directory / "anchor.json"
    if path.exists():
        report(f"kept anchor {path}")
        return
    anchor = central.write_anchor(path, net.central.url)
    report(f"created anchor {path}, root fingerprint {anchor.fingerprint()}")


def _configs(net: LocalNet, refresh_seconds: float, report: Report) -> None:
    existing = {ags for ags, files in net.nodes.items() if files.config.exists()}
    net.write_configs(
        globalconf_refresh_seconds=refresh_seconds, anchor="anchor.json", only_missing=True
    )
    for tracker in TRACKER_SERVICES:
        provider = next(a for a, f in net.nodes.items() if f.city.member == tracker.member)
        if provider not in existing:
            allow_tracker(net, tracker, TRADE_OFFICE)
    for ags, files in net.nodes.items():
        report(f"{'kept' if ags in existing else 'created'} node configuration {files.config}")


CLUSTER_DATABASE_URL = "postgresql://gateway@postgres/lippstadt"
"""The log of Lippstadt's node cluster in docker-compose.yml's ``ha`` profile (the password
comes from ``PGPASSWORD``, set in the file)."""


def _cluster_config(net: LocalNet, report: Report) -> None:
    """``node-cluster.toml`` beside Lippstadt's ``node.toml``: the same node (keys,
    certificates, ports) with its log in PostgreSQL, for the instances of the compose
    file's ``ha`` profile (docs/deployment.md, node cluster)."""
    files = net.nodes[LIPPSTADT.ags]
    path = files.directory / "node-cluster.toml"
    if path.exists():
        report(f"kept node cluster configuration {path}")
        return
    single = files.config.read_text("utf-8")
    line = 'messagelog = "messagelog.sqlite"'
    if line not in single:
        raise ValueError(f"{files.config} names no SQLite log to replace ({line})")
    path.write_text(single.replace(line, f"database_url = {json.dumps(CLUSTER_DATABASE_URL)}"))
    report(f"created node cluster configuration {path}")
