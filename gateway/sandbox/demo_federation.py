"""The demo's federation chapter: an Estonian e-resident's company opens a branch in Soest.

A second instance, ``EE-TEST``, starts beside the running ``DE-NRW`` federation: its own
CA, OCSP responder and TSA, its own signed configuration listing DE-NRW's anchor, and
RIK's node serving the sample e-Business Register. DE-NRW's operator federates
(``gateway central federate add``, here in process on the central's directory); one
configuration refresh later Soest's trade office reads the company's registry card
through both instances with the registration's case number, and the exchange is in both
nodes' logs. An Estonian agency then asks Lippstadt's Melderegister, which has granted
it nothing: refused by Lippstadt's node, the register never asked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

from gateway.central.federation import add_anchor
from gateway.central.service import Central
from gateway.conf.anchor import load_anchor, save_anchor
from gateway.messagelog import read_entries
from gateway.sandbox.cities import (
    ARIREGISTER_SERVICE,
    EE_INSTANCE,
    MELDEREGISTER_SERVICE,
    RIK,
    SOEST,
    TRADE_OFFICE,
)
from gateway.sandbox.estonia import ariregister_service, create_estonia, start_ariregister
from gateway.sandbox.localnet import LocalNet, free_port

__all__ = ["estonian_branch"]

COMPANY_CODE = "16543210"
"""Nordlicht Digital OÜ, the e-resident's company in the register's seed data."""
CASE = "GA-2026-EE-0042"

Say = Callable[[str, str], None]


def start_estonia(de: LocalNet, ee: LocalNet, refresh_seconds: float) -> None:
    """EE-TEST up: trust services, its register and RIK's node, federated with DE-NRW."""
    ee.federated = [load_anchor(de.anchor_path)]
    port = free_port()
    ee.add_service(ariregister_service(port))
    ee.write_configs(globalconf_refresh_seconds=refresh_seconds)
    start_ariregister(ee, port)
    ee.start_node(RIK.ags)


def federate_de(de: LocalNet, ee: LocalNet) -> tuple[int, str]:
    """What DE-NRW's operator runs: ``gateway central federate add`` with EE-TEST's anchor
    (the serial published, and the root fingerprint compared out of band)."""
    assert de.central is not None and ee.tuf is not None
    anchor_file = de.root / "ee-test-anchor.json"
    save_anchor(anchor_file, ee.tuf.anchor())
    central = Central(de.central.directory)
    anchor = add_anchor(de.central.directory, central.instance, anchor_file)
    return central.republish(), anchor.fingerprint()


def _until_applied(
    call: Callable[[], httpx.Response], waiting: tuple[str, ...], timeout: float
) -> httpx.Response:
    """``call`` again while its refusal only says a node has not yet applied the
    federation (each node does so at its own next refresh), for at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        response = call()
        if not response.headers.get("X-Road-Error", "").endswith(waiting):
            return response
        if time.monotonic() > deadline:
            return response
        time.sleep(0.5)


def _ask_company(de: LocalNet, timeout: float) -> httpx.Response:
    """Soest's trade office asks once Soest's node has applied EE-TEST's configuration."""
    soest = de.nodes[SOEST.ags]
    tls = soest.edge_tls(TRADE_OFFICE.subsystem_code)
    verify = tls.context() if tls is not None else True
    with httpx.Client(verify=verify, timeout=30) as client:
        return _until_applied(
            lambda: client.get(
                f"{soest.client_url}/r1/{ARIREGISTER_SERVICE}/{COMPANY_CODE}",
                headers={"X-Road-Client": str(TRADE_OFFICE), "X-Road-Issue": CASE},
            ),
            ("instance_not_federated", "federated_conf_outdated"),
            timeout,
        )


def estonian_branch(de: LocalNet, root: Path, say: Say, refresh_seconds: float) -> LocalNet:
    """EE-TEST up and federated with DE-NRW, as ``de``'s partner (stopped with it, in its
    topology); returns it for :func:`chapter_ok`, which tells whether the story held."""
    ee = create_estonia(root, datetime.now(UTC))
    de.partners.append(ee)  # from here on, de.stop() ends EE-TEST's processes too
    start_estonia(de, ee, refresh_seconds)
    serial, fingerprint = federate_de(de, ee)
    say(
        "12. Estonia federates: a second instance, EE-TEST",
        f"EE-TEST runs its own CA, OCSP responder, TSA and signed configuration; RIK's\n"
        f"node serves the e-Business Register. DE-NRW's operator compares EE-TEST's root\n"
        f"fingerprint {fingerprint[:16]}… and runs\n"
        f"  gateway central federate add ee-test-anchor.json  -> serial {serial}\n"
        "each DE-NRW node now fetches and verifies EE-TEST's configuration itself; EE-TEST's\n"
        "CA is trusted for EE-TEST's members only",
    )
    return ee


def chapter_ok(de: LocalNet, ee: LocalNet, say: Say, timeout: float = 60) -> bool:
    """Soest reads the company through both instances; an ungranted read is refused."""
    response = _ask_company(de, timeout)
    ok = response.status_code == 200
    lines = [f"GET /r1/{ARIREGISTER_SERVICE}/{COMPANY_CODE}  X-Road-Issue: {CASE}"]
    if ok:
        company = response.json()
        board = ", ".join(p["nimi"] for p in company["kaardile_kantud_isikud"])
        lines.append(
            f"  {company['nimi']} ({company['oiguslik_vorm']}), registry code "
            f"{company['ariregistri_kood']}, {company['aadress']['tanav']}, "
            f"{company['aadress']['linn']}; board: {board}"
        )
        message_id = response.headers["X-Road-Request-Id"]
        for name, files in (("Soest", de.nodes[SOEST.ags]), ("RIK", ee.nodes[RIK.ags])):
            kinds = [e.kind for e in read_entries(files.log_reader(), message_id=message_id)]
            ok = ok and kinds == ["request", "response"]
            lines.append(f"  {name}'s log: {' + '.join(kinds)} of {message_id}")
    else:
        lines.append(f"  FAILED: {response.status_code} {response.text[:300]}")
    say(
        "12b. Soest's trade office reads the Estonian company through both instances",
        "\n".join(lines),
    )
    rik = ee.nodes[RIK.ags]
    # Until Lippstadt's node has applied the federation it does not trust EE-TEST's CA
    # in the TLS handshake, which RIK's node reports as a network error.
    refused = _until_applied(
        lambda: httpx.get(
            f"{rik.client_url}/r1/{MELDEREGISTER_SERVICE}",
            params={"familienname": "Schmidt"},
            headers={"X-Road-Client": str(RIK.subsystem("registriosakond"))},
            timeout=30,
        ),
        ("network_error", "instance_not_federated", "federated_conf_outdated"),
        timeout,
    )
    code = refused.headers.get("X-Road-Error", str(refused.status_code))
    ok = ok and code == "server.serverproxy.access_denied"
    say(
        "12c. An Estonian agency asks Lippstadt's Melderegister",
        f"{RIK.subsystem('registriosakond')} -> {MELDEREGISTER_SERVICE}: {code}\n"
        f"Lippstadt granted {EE_INSTANCE} nothing: its node refuses, the register is not asked",
    )
    return ok
