"""``gateway demo``: Soest's trade office reads Anna's address from Lippstadt's register.

It builds a development PKI, starts the central authority (``gateway central serve``),
takes Lippstadt and Soest through the partner-city join flow (keys and CSRs, certificates
from the CA, registration requests signed with both keys, approval by the operator),
starts Lippstadt's Melderegister and the two cities' nodes on the signed global
configuration as separate processes on 127.0.0.1, sends one X-Road REST query through
them, and then shows from both message logs what was signed, verified and logged.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.x509.oid import NameOID

from gateway.localnet import (
    LIPPSTADT,
    MELDEREGISTER_SERVICE,
    SOEST,
    JoinResult,
    LocalNet,
    ServiceSpec,
    free_port,
)
from gateway.node.messagelog import read_entries
from gateway.pki.keys import fingerprint_sha256, load_certificate

DEMO_STAMP_INTERVAL = 2
DEMO_GLOBALCONF_REFRESH = 2
"""Seconds between the nodes' global configuration refreshes (X-Road: 60)."""


def show_ocsp(net: LocalNet) -> bool:
    """Ask the CA's OCSP responder about each node's certificates, as the nodes do."""
    from gateway.pki.ocsp import OcspError, build_ocsp_request, verify_ocsp_response

    ca = load_certificate(net.ca_cert)
    lines, ok = [f"responder {net.trust.ocsp_url}"], True
    for files in net.nodes.values():
        for label, path in (("auth", files.auth_cert), ("sign", files.sign_cert)):
            cert = load_certificate(path)
            reply = httpx.post(
                net.trust.ocsp_url,
                content=build_ocsp_request(cert, ca),
                headers={"Content-Type": "application/ocsp-request"},
                timeout=10,
            )
            try:
                status = verify_ocsp_response(reply.content, cert, ca, datetime.now(UTC))
                lines.append(
                    f"{files.city.name:<16} {label} serial {cert.serial_number:x}: good, "
                    f"thisUpdate {status.this_update:%H:%M:%S}, "
                    f"nextUpdate {status.next_update:%H:%M:%S} UTC"
                    if status.next_update
                    else f"{files.city.name:<16} {label}: good"
                )
            except OcspError as exc:
                ok = False
                lines.append(f"{files.city.name:<16} {label}: REFUSED ({exc})")
    lines.append("each node sends these answers with its messages; peers check them")
    _say("2. Certificate status from the CA's OCSP responder (RFC 6960)", "\n".join(lines))
    return ok


def show_timestamps(net: LocalNet, message_id: str, timeout: float = 30) -> bool:
    """Wait for the batch holding the exchange to be timestamped, then prove each entry."""
    from gateway.node.logproofs import NotProvableError, prove_entry

    tsa_cert = load_certificate(net.trust.tsa_cert)
    ca = load_certificate(net.ca_cert)
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    for files in net.nodes.values():
        for entry in read_entries(files.messagelog, message_id=message_id):
            assert entry.id is not None
            while True:
                try:
                    _, proven = prove_entry(files.messagelog, entry.id, tsa_cert, issuer=ca)
                    break
                except NotProvableError:
                    if time.monotonic() > deadline:
                        lines.append(f"{files.city.name} #{entry.id}: not timestamped in time")
                        _say("8. Timestamped log batches (RFC 3161)", "\n".join(lines))
                        return False
                    time.sleep(0.2)
            lines.append(
                f"{files.city.name:<16} {entry.role:<8} {entry.kind:<8} #{entry.id}: leaf "
                f"{proven.leaf_index} of tree head size {proven.tree_size}, root "
                f"{proven.root_hash.hex()[:16]}..., stamped "
                f"{proven.gen_time.isoformat().replace('+00:00', 'Z')}"
            )
    lines.append(
        f"batches every {DEMO_STAMP_INTERVAL} s here (60 s by default); each proof is an\n"
        "RFC 9162 inclusion proof to a tree head whose SHA-256 the TSA signed; check one\n"
        "yourself: gateway log prove --db DB --id N --tsa-cert TSA.pem --export DIR"
    )
    _say("8. Timestamped log batches (RFC 3161 token over an RFC 9162 tree head)", "\n".join(lines))
    return True


def _say(step: str, text: str = "") -> None:
    print(f"\n== {step}")
    if text:
        for line in text.splitlines():
            print(f"   {line}")


def _cn(path: Path) -> str:
    cert = load_certificate(path)
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def build(root: Path) -> LocalNet:
    """The federation's files and its central authority, before any city has joined."""
    net = LocalNet.create(root, [SOEST, LIPPSTADT], datetime.now(UTC), central=True)
    port = free_port()
    net.add_service(
        ServiceSpec(
            id=MELDEREGISTER_SERVICE,
            url=f"http://127.0.0.1:{port}/personen",
            openapi_url=f"http://127.0.0.1:{port}/openapi.json",
            allowed=(SOEST.subsystem("gewerbeamt"),),
        )
    )
    try:
        _start(net, port)
    except BaseException:
        net.stop()
        raise
    return net


def _start(net: LocalNet, port: int) -> None:
    net.start_trust()
    # A short batch interval so the demo can show a timestamped batch without waiting a
    # minute; production keeps X-Road's 60 s. On global configuration it is one of the
    # central's settings, published to every node.
    anchor = net.start_central({"timestamping_interval_seconds": str(DEMO_STAMP_INTERVAL)})
    assert net.central is not None
    _say(
        "1b. The central authority runs the federation (gateway central init / serve)",
        f"central authority up at {net.central.url}, anchor root fingerprint "
        f"{anchor.fingerprint()}\n"
        f"approved CA {_cn(net.ca_cert)} (OCSP {net.trust.ocsp_url}), "
        f"TSA {net.trust.tsa_url}\n"
        f"nodes bootstrap from {net.anchor_path} and refresh every "
        f"{DEMO_GLOBALCONF_REFRESH} s",
    )
    for city in (LIPPSTADT, SOEST):
        show_join(net.join(city.ags, datetime.now(UTC)))
    net.write_configs(globalconf_refresh_seconds=DEMO_GLOBALCONF_REFRESH)
    net.start_melderegister(port)
    for ags in net.nodes:
        net.start_node(ags)


def show_join(result: JoinResult) -> None:
    """The partner-city flow one city went through (README, "A partner city joins")."""
    name = result.city.name.removeprefix("Stadt ")
    lines = []
    if result.member_serial is not None:
        lines.append(
            f"operator registers member {result.city.member} ({result.city.name}) "
            f"→ configuration serial {result.member_serial}"
        )
    lines += [
        f"{name} joins: keys, CSR, certificates (gateway join keys, pki issue, join import)",
        f"  auth cert sha256 {result.auth_sha256[:32]}...",
        f"  sign cert sha256 {result.sign_sha256[:32]}...",
    ]
    for request, serial in zip(result.requests, result.serials, strict=True):
        if request["kind"] == "auth-cert":
            what = (
                f"registration request #{request['id']} auth-cert {request['node_id']} "
                "signed with both keys"
            )
        else:
            what = (
                f"registration request #{request['id']} client {request['client_id']} "
                "signed with the member key"
            )
        lines.append(f"  {what}, {request['status']} → configuration serial {serial}")
    _say(f"1c. {name} joins through the central authority", "\n".join(lines))


def query_anna(net: LocalNet) -> httpx.Response:
    soest = net.nodes[SOEST.ags]
    return httpx.get(
        f"{soest.consumer_url}/r1/{MELDEREGISTER_SERVICE}",
        params={"familienname": "Schmidt", "vornamen": "Anna", "geburtsdatum": "1988-03-14"},
        headers={
            "X-Road-Client": str(SOEST.subsystem("gewerbeamt")),
            "X-Road-UserId": "sachbearbeitung-gewerbe-07",
            "X-Road-Issue": "GEW-2026-0815",
            "Accept": "application/json",
        },
        timeout=30,
    )


def explain(net: LocalNet, response: httpx.Response) -> bool:
    """Print the story from the logs; return whether both logs hold both messages."""
    soest, lippstadt = net.nodes[SOEST.ags], net.nodes[LIPPSTADT.ags]
    message_id = response.headers.get("X-Road-Request-Id", "")
    consumer = read_entries(soest.messagelog, message_id=message_id)
    provider = read_entries(lippstadt.messagelog, message_id=message_id)
    by_kind = {(e.role, e.kind): e for e in [*consumer, *provider]}
    request_entry = by_kind.get(("consumer", "request"))
    if request_entry is not None:
        header: dict[str, Any] = json.loads(request_entry.header)
        _say(
            "3. Soest's node signed the request with Soest's signing key",
            f"signer certificate: {_cn(soest.sign_cert)}\n"
            f"canonical header (the JWS payload, detached):\n"
            + json.dumps(header, indent=2, ensure_ascii=False)
            + f"\nJWS: {request_entry.signature[:48]}...{request_entry.signature[-24:]}",
        )
    _say(
        "4. It relayed the message over mutual TLS 1.3 to Lippstadt's node",
        f"Soest auth cert {_cn(soest.auth_cert)}\n"
        f"  sha256 {fingerprint_sha256(load_certificate(soest.auth_cert))}\n"
        f"Lippstadt auth cert {_cn(lippstadt.auth_cert)} at {lippstadt.peer_url}\n"
        "Lippstadt checked: TLS peer is the registered node hosting the client; the\n"
        "signature is valid and by the client's member; the OCSP responses Soest's node\n"
        "sent along (fetched from the CA's responder) show both of Soest's certificates\n"
        "good and fresh; the service exists; the access right for gewerbeamt holds; the\n"
        "message is fresh and new (no replay).",
    )
    provider_request = by_kind.get(("provider", "request"))
    provider_response = by_kind.get(("provider", "response"))
    if provider_response is not None:
        header = json.loads(provider_response.header)
        _say(
            "5. Lippstadt's node called the Melderegister, signed and logged the answer",
            f"registry answered HTTP {header['status']}; the response header is bound to\n"
            f"the request by request_hash = {header['request_hash'][:32]}...",
        )
    _say(
        "6. Message logs (SQLite, WAL, synchronous=FULL; written before answering)",
        "\n".join(
            f"{name:<10} {e.role:<8} {e.kind:<8} #{e.id} logged {e.logged_at} "
            f"header {len(e.header)} B, body {len(e.body)} B, cert {e.cert_ref[:12]}..., "
            f"ocsp {e.ocsp_ref[:12]}..."
            for name, entries in (("Soest", consumer), ("Lippstadt", provider))
            for e in entries
        ),
    )
    body = (
        response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else response.text
    )
    _say(
        "7. Soest's gewerbeamt received the verified answer",
        f"HTTP {response.status_code}\n"
        + "\n".join(
            f"{k}: {v}" for k, v in response.headers.items() if k.lower().startswith("x-road-")
        )
        + "\n"
        + json.dumps(body, indent=2, ensure_ascii=False),
    )
    complete = {("consumer", "request"), ("consumer", "response")} <= set(by_kind) and {
        ("provider", "request"),
        ("provider", "response"),
    } <= set(by_kind)
    return complete and provider_request is not None


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_demo(directory: Path | None, *, serve: bool = False) -> int:
    """Run the demo; with ``serve`` keep the federation up and write ``topology.json``."""
    tmp = None
    if directory is None:
        tmp = tempfile.TemporaryDirectory(prefix="gateway-demo-")
        directory = Path(tmp.name)
    print("Once-only gateway demo: Soest's trade office asks Lippstadt's Melderegister")
    _say(
        "1. Development PKI, OCSP responder and TSA, central authority, two nodes and the "
        "Melderegister",
        f"state directory: {directory}",
    )
    net = build(directory)
    try:
        if net.central is not None:
            serial = net.central_admin("GET", "/configuration")["serial"]
            _say(f"1d. Nodes started on the signed global configuration, serial {serial}")
        for files in net.nodes.values():
            print(
                f"   {files.city.name:<16} node {files.city.node}  "
                f"consumer {files.consumer_url}  peers {files.peer_url}"
            )
        print(f"   {'trust services':<16} OCSP {net.trust.ocsp_url}  TSA {net.trust.tsa_url}")
        if net.central is not None:
            print(f"   {'central':<16} {net.central.url}  (global configuration via TUF)")
        ocsp_ok = show_ocsp(net)
        response = query_anna(net)
        ok = explain(net, response) and response.status_code == 200 and ocsp_ok
        ok = show_timestamps(net, response.headers.get("X-Road-Request-Id", "")) and ok
        if serve:
            # Handler first: a SIGTERM while the topology is being written still stops
            # the federation cleanly.
            signal.signal(signal.SIGTERM, _raise_interrupt)
            topology = directory / "topology.json"
            partial = topology.with_suffix(".json.tmp")
            partial.write_text(json.dumps(net.topology(), indent=2), "utf-8")
            os.replace(partial, topology)
            _say(
                "The federation keeps running (Ctrl-C stops it)",
                f"topology: {topology}\ntry:\n"
                f"curl -s -H 'X-Road-Client: {SOEST.subsystem('gewerbeamt')}' \\\n"
                f"  '{net.nodes[SOEST.ags].consumer_url}/r1/{MELDEREGISTER_SERVICE}"
                "?familienname=Schmidt&vornamen=Anna&geburtsdatum=1988-03-14'",
            )
            try:
                while all(p.poll() is None for p in net.processes):
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
        print(
            "\nresult:",
            "OK, both nodes logged request and response, and their batch is timestamped"
            if ok
            else "FAILED",
        )
        return 0 if ok else 1
    finally:
        net.stop()
        if tmp is not None:
            tmp.cleanup()
