"""The second instance of the loopback federation: EE-TEST, and its federation with DE-NRW.

EE-TEST is a :class:`~gateway.sandbox.localnet.LocalNet` of its own (its own CA, OCSP
responder and TSA, its own signed configuration) with one member, RIK, whose node serves
the sample e-Business Register (``registries/ariregister``). :func:`federate` makes the
two instances list each other's anchor, as two central authorities' operators do with
``gateway central federate add`` (docs/federation.md); every version either publishes
from then on carries the other's anchor.
"""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

from gateway.sandbox.cities import ARIREGISTER_SERVICE, EE_INSTANCE, RIK, TRADE_OFFICE
from gateway.sandbox.localnet import HOST, LocalNet, ServiceSpec, wait_http


def create_estonia(root: Path, now: datetime) -> LocalNet:
    """EE-TEST's files: its CA and trust services' certificates, RIK's node keys."""
    return LocalNet.create(root, [RIK], now, instance=EE_INSTANCE)


def federate(de: LocalNet, ee: LocalNet) -> None:
    """Each instance publishes the other's anchor (call before ``write_configs``)."""
    de.federated = [ee.enable_globalconf().anchor()]
    ee.federated = [de.enable_globalconf().anchor()]


def ariregister_service(port: int) -> ServiceSpec:
    """The company query of RIK's register, granted to Soest's trade office only, and
    only with a case number (``X-Road-Issue``): every read serves a registration file."""
    return ServiceSpec(
        id=ARIREGISTER_SERVICE,
        url=f"http://{HOST}:{port}/ettevotted",
        openapi_url=f"http://{HOST}:{port}/openapi.json",
        allowed=(TRADE_OFFICE,),
        require_issue=True,
    )


def start_ariregister(ee: LocalNet, port: int) -> subprocess.Popen[bytes]:
    """``gateway registry ariregister`` on ``port``, its database under ``ee``'s root."""
    db = ee.root / "registries" / "ariregister.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    args = ["registry", "ariregister", "--db", str(db), "--host", HOST, "--port", str(port)]
    proc = ee._spawn(args, "ariregister")
    wait_http(f"http://{HOST}:{port}/health", proc)
    return proc
