"""The portal's part of a loopback federation: the services of the IHK and the
Melderegister, and the processes of the registers, the IHK endpoint and the portal, for
the tests and the demo.

The members themselves (the IHK, ``DE-NRW/GOV/IHK-ARNSBERG``, subsystem ``kammer``,
service ``gewerbemeldungen``; Iserlohn with its own Melderegister) are in
:mod:`gateway.sandbox.cities` (docs/adr/0013-portal-and-ihk-notification.md).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.core.ids import ServiceId, SubsystemId
from gateway.sandbox.cities import (
    IHK_SERVICE,
    LIPPSTADT,
    MELDEREGISTER_SERVICE,
    SOEST,
    TRADE_OFFICE,
    City,
)
from gateway.sandbox.localnet import HOST, LocalNet, ServiceSpec, wait_http
from registries.portal.cli import DEFAULT_CLIENT

assert str(TRADE_OFFICE) == DEFAULT_CLIENT


def ihk_service(ihk_port: int) -> ServiceSpec:
    """The IHK's notification inbox behind its node; only Soest's trade office may post."""
    return ServiceSpec(
        id=IHK_SERVICE,
        url=f"http://{HOST}:{ihk_port}",
        openapi_url=f"http://{HOST}:{ihk_port}/openapi.json",
        allowed=(TRADE_OFFICE,),
        methods=("POST",),
    )


def melderegister_service(port: int, city: City = LIPPSTADT) -> ServiceSpec:
    """``city``'s § 38 query (Lippstadt's or Iserlohn's) for Soest's trade office."""
    return ServiceSpec(
        id=city.subsystem("melderegister").service("einfacheAuskunft"),
        url=f"http://{HOST}:{port}/personen",
        openapi_url=f"http://{HOST}:{port}/openapi.json",
        allowed=(TRADE_OFFICE,),
    )


def _edge_args(net: LocalNet, prefix: str = "") -> list[str]:
    """The options that let the trade office's information systems call Soest's node
    as its connection type requires (none for ``http``)."""
    tls = net.nodes[SOEST.ags].edge_tls(TRADE_OFFICE.subsystem_code)
    if tls is None:
        return []
    args = [f"--{prefix}consumer-ca", str(tls.ca)]
    if tls.cert is not None and tls.key is not None:
        args += [f"--{prefix}client-cert", str(tls.cert), f"--{prefix}client-key", str(tls.key)]
    return args


def _start(net: LocalNet, args: list[str], name: str, port: int) -> subprocess.Popen[bytes]:
    proc = net._spawn(args, name)
    wait_http(f"http://{HOST}:{port}/health", proc)
    return proc


def start_ihk(net: LocalNet, port: int) -> subprocess.Popen[bytes]:
    """``gateway registry ihk`` on ``port``."""
    db = net.root / "registries" / "ihk.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    args = ["registry", "ihk", "--db", str(db), "--host", HOST, "--port", str(port)]
    return _start(net, args, "ihk", port)


def start_gewerberegister(
    net: LocalNet, port: int, *, notify_ihk: bool = True, retry_seconds: float = 2.0
) -> subprocess.Popen[bytes]:
    """``gateway registry gewerberegister``, notifying the IHK through Soest's node."""
    db = net.root / "registries" / "gewerberegister.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    args = ["registry", "gewerberegister", "--db", str(db), "--host", HOST, "--port", str(port)]
    if notify_ihk:
        args += ["--ihk-consumer-url", net.nodes[SOEST.ags].client_url, *_edge_args(net, "ihk-")]
        args += ["--ihk-client", str(TRADE_OFFICE), "--ihk-service", str(IHK_SERVICE)]
        args += ["--ihk-retry-seconds", str(retry_seconds)]
        args += ["--ihk-retry-max-seconds", str(max(retry_seconds, 1.0))]
    return _start(net, args, "gewerberegister", port)


@dataclass(frozen=True, slots=True)
class Portal:
    url: str
    process: subprocess.Popen[bytes]


def start_portal(
    net: LocalNet,
    port: int,
    gewerberegister_port: int,
    tracker_services: Sequence[ServiceId] = (),
) -> Portal:
    """``gateway registry portal`` calling through Soest's node as the trade office."""
    db = net.root / "registries" / "portal.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    args = ["registry", "portal", "--db", str(db), "--host", HOST, "--port", str(port)]
    args += ["--consumer-url", net.nodes[SOEST.ags].client_url, *_edge_args(net)]
    args += ["--client", str(TRADE_OFFICE)]
    args += ["--melderegister-service", str(MELDEREGISTER_SERVICE)]
    args += ["--gewerberegister-url", f"http://{HOST}:{gewerberegister_port}"]
    for service in tracker_services:
        args += ["--tracker-service", str(service)]
    proc = _start(net, args, "portal", port)
    return Portal(f"http://{HOST}:{port}", proc)


def start_nodes(net: LocalNet, cities: Sequence[str]) -> None:
    """Start several cities' nodes at once (each waits for its configuration and OCSP
    status on its own, so starting them one after another only adds up the waits)."""
    from concurrent.futures import ThreadPoolExecutor

    net.start_trust()
    with ThreadPoolExecutor(max_workers=len(cities) or 1) as pool:
        for future in [pool.submit(net.start_node, ags) for ags in cities]:
            future.result()


def start_iserlohn_melderegister(net: LocalNet, port: int) -> subprocess.Popen[bytes]:
    """``gateway registry melderegister --city iserlohn`` (its own database and residents)."""
    return net.start_melderegister(port, "iserlohn")


def allow_tracker(net: LocalNet, tracker: ServiceId, client: SubsystemId = TRADE_OFFICE) -> None:
    """Grant ``client`` the built-in ``findUsage`` service on the provider's node.

    Call after ``write_configs`` and before the node starts: an ``[[access]]`` table
    appended to the provider's node.toml, as an operator would add it. Works for any
    provider in ``net`` (``allow_tracker(net, ISERLOHN_TRACKER)`` for Iserlohn's).
    """
    files = next(f for f in net.nodes.values() if f.city.member == tracker.member)
    grant = f'\n[[access]]\nservice = "{tracker}"\nclient = "{client}"\nmethods = ["GET"]\n'
    with files.config.open("a", encoding="utf-8") as out:
        out.write(grant)
