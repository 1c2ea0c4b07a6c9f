"""``gateway demo``: Anna registers her trade in Soest and never types her data twice.

The three-city federation on loopback, each part a real process: a development PKI with
its OCSP responder and TSA, the central authority publishing the TUF-signed global
configuration, the nodes of Soest, Lippstadt and the IHK joining through the partner-city
flow, Lippstadt's Melderegister, Soest's Gewerberegister, the IHK's inbox and Soest's
portal "Digitales Gewerbeamt". Iserlohn joins while the federation runs. Then Anna applies
at the portal: it reads her data from Lippstadt's Melderegister through the gateway, she
confirms, the Gewerberegister registers her salon and notifies the IHK through the
gateway, and her data tracker shows who read what. The demo ends with what the nodes
logged, the timestamped proofs of those entries, and an offline audit of Lippstadt's log.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.x509.oid import NameOID

from gateway.core.encoding import format_time
from gateway.keys.files import load_certificate
from gateway.messagelog import (
    Kind,
    Role,
    read_entries,
)
from gateway.pki.keys import fingerprint_sha256
from gateway.sandbox.cities import (
    IHK,
    IHK_SERVICE,
    ISERLOHN,
    ISERLOHN_TRACKER,
    LIPPSTADT,
    MELDEREGISTER_SERVICE,
    SOEST,
    TRACKERS,
    TRADE_OFFICE,
)
from gateway.sandbox.console import start_console
from gateway.sandbox.demo_audit import entries_for_case, show_witnesses
from gateway.sandbox.demo_db import place_logs, release_logs
from gateway.sandbox.demo_federation import chapter_ok, estonian_branch
from gateway.sandbox.demo_grant import TRADE_OFFICE_CODE, operator_grants
from gateway.sandbox.federation import (
    Portal,
    allow_tracker,
    ihk_service,
    melderegister_service,
    start_gewerberegister,
    start_ihk,
    start_iserlohn_melderegister,
    start_nodes,
    start_portal,
)
from gateway.sandbox.localnet import JoinResult, LocalNet, free_port, wait_http
from gateway.sandbox.supervisor import Supervisor
from registries.portal.scenario import AnnaStory, run_anna_scenario

DEMO_STAMP_INTERVAL = 2
DEMO_GLOBALCONF_REFRESH = 2
"""Seconds between the nodes' global configuration refreshes (X-Road: 60)."""
DEMO_WITNESS_INTERVAL = 2
"""Seconds between the nodes' witnessing rounds (default 300)."""
FIRST_CITIES = (LIPPSTADT, SOEST, IHK)
IS_DEMO = replace(ISERLOHN, subsystems=(*ISERLOHN.subsystems, TRADE_OFFICE_CODE))


@dataclass
class Demo:
    """The running federation and the addresses the story refers to."""

    net: LocalNet
    portal: Portal
    ports: dict[str, int]

    @property
    def ihk_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['ihk']}"


def _say(step: str, text: str = "") -> None:
    print(f"\n== {step}")
    if text:
        for line in text.splitlines():
            print(f"   {line}")


def _cn(path: Path) -> str:
    cert = load_certificate(path)
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _name(city_name: str) -> str:
    return city_name.removeprefix("Stadt ")


# ------------------------------------------------------------------------- building


def build(root: Path, database_url: str | None = None) -> Demo:
    """The federation's files, its central authority and the first three members, up."""
    net = LocalNet.create(root, [*FIRST_CITIES, IS_DEMO], datetime.now(UTC), central=True)
    place_logs(net, database_url)
    for files in net.nodes.values():
        # X-Road's default: each information system authenticates to its node with the
        # certificate LocalNet issued and registered for its subsystem (mutual TLS).
        files.connection_type = "https"
    ports = {name: free_port() for name in ("melde", "melde-iserlohn", "gewerbe", "ihk", "portal")}
    # Purpose binding: the registers answer only for a named case and end user.
    for spec in (
        melderegister_service(ports["melde"]),
        melderegister_service(ports["melde-iserlohn"], ISERLOHN),
    ):
        net.add_service(replace(spec, require_issue=True, require_user_id=True))
    net.add_service(ihk_service(ports["ihk"]))
    try:
        portal = _start(net, ports)
    except BaseException:
        net.stop()
        raise
    return Demo(net, portal, ports)


def _start(net: LocalNet, ports: dict[str, int]) -> Portal:
    net.start_trust()
    # A short batch interval so the demo can show a timestamped batch without waiting a
    # minute; production keeps X-Road's 60 s. It is one of the central's settings,
    # published to every node in the global configuration.
    anchor = net.start_central({"timestamping_interval_seconds": str(DEMO_STAMP_INTERVAL)})
    assert net.central is not None
    _say(
        "1. The central authority runs the federation (gateway central init / serve)",
        f"development CA {_cn(net.ca_cert)}, OCSP responder {net.trust.ocsp_url}, "
        f"TSA {net.trust.tsa_url}\n"
        f"central authority at {net.central.url}; anchor root fingerprint\n"
        f"  {anchor.fingerprint()}\n"
        f"nodes bootstrap from {net.anchor_path} and refresh every "
        f"{DEMO_GLOBALCONF_REFRESH} s (TUF: signed, versioned, expiring)",
    )
    for letter, city in zip("abc", FIRST_CITIES, strict=True):
        show_join(net.join(city.ags, datetime.now(UTC)), f"2{letter}")
    for files in net.nodes.values():
        files.make_data_key()  # personal data sealed at rest (docs/message-log.md#at-rest)
    net.write_configs(globalconf_refresh_seconds=DEMO_GLOBALCONF_REFRESH)
    for tracker in TRACKERS:
        allow_tracker(net, tracker)
    for files in net.nodes.values():
        # Each node witnesses its peers' signed tree heads: fetch, check consistency,
        # co-sign (docs/message-log.md, "Witnessing"); every few seconds for the demo.
        with files.config.open("a", encoding="utf-8") as out:
            out.write(f"\n[audit]\nwitness_interval_seconds = {DEMO_WITNESS_INTERVAL}\n")
    net.start_melderegister(ports["melde"])
    start_ihk(net, ports["ihk"])
    start_nodes(net, [c.ags for c in FIRST_CITIES])
    start_gewerberegister(net, ports["gewerbe"])
    return start_portal(net, ports["portal"], ports["gewerbe"], tracker_services=TRACKERS)


def show_join(result: JoinResult, step: str) -> None:
    """The partner-city flow one member went through (README, "A partner city joins")."""
    name = _name(result.city.name)
    lines = []
    if result.member_serial is not None:
        lines.append(
            f"operator registers member {result.city.member} ({result.city.name}) "
            f"→ configuration serial {result.member_serial}"
        )
    lines += [
        f"{name} joins: keys, CSRs, certificates (gateway join keys, pki issue, join import)",
        f"  auth cert sha256 {result.auth_sha256[:32]}...",
        f"  sign cert sha256 {result.sign_sha256[:32]}...",
    ]
    serials: list[int | None] = [*result.serials] or [None] * len(result.requests)
    for request, serial in zip(result.requests, serials, strict=True):
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
        after = f" → configuration serial {serial}" if serial is not None else ""
        lines.append(f"  {what}: {request['status']}{after}")
    _say(f"{step}. {name} joins through the central authority", "\n".join(lines))


def show_running(demo: Demo) -> None:
    net = demo.net
    assert net.central is not None
    serial = net.central_admin("GET", "/configuration")["serial"]
    lines = [f"global configuration serial {serial}; every node runs on it"]
    for files in net.nodes.values():
        if files.city is IS_DEMO:
            continue
        lines.append(
            f"{_name(files.city.name):<16} node {files.city.node}  consumer "
            f"{files.client_url}  peers {files.peer_url}"
        )
    lines += [
        f"{'Lippstadt':<16} Melderegister  http://127.0.0.1:{demo.ports['melde']}",
        f"{'Soest':<16} Gewerberegister http://127.0.0.1:{demo.ports['gewerbe']}",
        f"{'IHK Arnsberg':<16} inbox          {demo.ihk_url}",
        f"{'Soest':<16} portal         {demo.portal.url}  (Digitales Gewerbeamt)",
    ]
    _say("3. The federation runs: registries, nodes and the portal", "\n".join(lines))


def show_ocsp(net: LocalNet) -> bool:
    """Ask the CA's OCSP responder about each node's certificates, as the nodes do."""
    from gateway.pki.ocsp import OcspError, build_ocsp_request, verify_ocsp_response

    ca = load_certificate(net.ca_cert)
    lines, ok = [f"responder {net.trust.ocsp_url}"], True
    for files in net.nodes.values():
        if not files.auth_cert.exists():
            continue
        for label, path in (("auth", files.auth_cert), ("sign", files.sign_cert)):
            cert = load_certificate(path)
            reply = httpx.post(
                net.trust.ocsp_url,
                content=build_ocsp_request(cert, ca),
                headers={"Content-Type": "application/ocsp-request"},
                timeout=10,
            )
            name = _name(files.city.name)
            try:
                status = verify_ocsp_response(reply.content, cert, ca, datetime.now(UTC))
                lines.append(
                    f"{name:<16} {label} serial {cert.serial_number:x}: good, "
                    f"nextUpdate {status.next_update:%H:%M:%S} UTC"
                    if status.next_update
                    else f"{name:<16} {label}: good"
                )
            except OcspError as exc:
                ok = False
                lines.append(f"{name:<16} {label}: REFUSED ({exc})")
    lines.append("each node sends these answers with its messages; peers check them")
    _say("4. Certificate status from the CA's OCSP responder (RFC 6960)", "\n".join(lines))
    return ok


def _find_usage(net: LocalNet, tracker: Any) -> httpx.Response:
    soest = net.nodes[SOEST.ags]
    tls = soest.edge_tls(TRADE_OFFICE.subsystem_code)
    return httpx.get(
        f"{soest.client_url}/r1/{tracker}",
        params={"subject": "00000000000"},
        headers={"X-Road-Client": str(TRADE_OFFICE)},
        timeout=30,
        verify=True if tls is None else tls.context(),
    )


def iserlohn_joins(demo: Demo, timeout: float = 60) -> bool:
    """Iserlohn joins while the others run: pending, approved, reachable one refresh on."""
    net = demo.net
    result = net.join(ISERLOHN.ags, datetime.now(UTC), approve=False)
    show_join(result, "5")
    refused = _find_usage(net, ISERLOHN_TRACKER)
    lines = [
        "while the requests are pending, Soest's node cannot route to Iserlohn:",
        f"  HTTP {refused.status_code} {refused.headers.get('X-Road-Error', '')}",
    ]
    for request in result.requests:  # the node first, then its client
        net.central_admin("POST", f"/requests/{request['id']}/approve")
    serial = net.central_admin("GET", "/configuration")["serial"]
    lines.append(f"the operator approves the requests → configuration serial {serial}")
    start_iserlohn_melderegister(net, demo.ports["melde-iserlohn"])
    start_nodes(net, [ISERLOHN.ags])
    started = time.monotonic()
    while True:
        answer = _find_usage(net, ISERLOHN_TRACKER)
        if answer.status_code == 200:
            break
        if time.monotonic() - started > timeout:
            lines.append(f"Iserlohn still unreachable: HTTP {answer.status_code} {answer.text}")
            _say("5b. Iserlohn's node in the federation", "\n".join(lines))
            return False
        time.sleep(0.3)
    lines.append(
        f"Iserlohn's node and Melderegister started; Soest's node reached it "
        f"{time.monotonic() - started:.1f} s later (within one refresh), while Soest, "
        "Lippstadt and the IHK kept running"
    )
    _say("5b. Iserlohn's node in the federation", "\n".join(lines))
    return True


# ------------------------------------------------------------------------- the story


def anna_applies(demo: Demo) -> AnnaStory:
    beginn = (date.today() + timedelta(days=14)).isoformat()
    story = run_anna_scenario(demo.portal.url, beginn=beginn)
    for number, step in enumerate(story.steps, start=1):
        width = max((len(k) for k in step.facts), default=0)
        _say(
            f"6.{number} {step.title}",
            "\n".join(f"{k:<{width}}  {v}" for k, v in step.facts.items()),
        )
    return story


def explain(net: LocalNet, story: AnnaStory) -> tuple[bool, str]:
    """What the nodes signed, checked and logged for the Melderegister read of the case.

    Returns whether both logs hold the request and the response, and the message id.
    """
    soest, lippstadt = net.nodes[SOEST.ags], net.nodes[LIPPSTADT.ags]
    service = str(MELDEREGISTER_SERVICE)
    consumer = entries_for_case(soest.log_reader(), story.case, service)
    provider = entries_for_case(lippstadt.log_reader(), story.case, service)
    by_kind = {(e.role, e.kind): e for e in [*consumer, *provider]}
    request_entry = by_kind.get((Role.CONSUMER, Kind.REQUEST))
    if request_entry is None:
        _say("7. No log entry for the case in Soest's log")
        return False, ""
    header: dict[str, Any] = json.loads(request_entry.header)
    _say(
        "7. Under the hood: Soest's node signed the portal's request with Soest's key",
        f"signer certificate: {_cn(soest.sign_cert)}\n"
        "canonical header (the JWS payload, detached):\n"
        + json.dumps(header, indent=2, ensure_ascii=False)
        + f"\nJWS: {request_entry.signature[:48]}...{request_entry.signature[-24:]}",
    )
    _say(
        "7b. It relayed the message over mutual TLS 1.3 to Lippstadt's node",
        f"Soest auth cert {_cn(soest.auth_cert)}\n"
        f"  sha256 {fingerprint_sha256(load_certificate(soest.auth_cert))}\n"
        f"Lippstadt auth cert {_cn(lippstadt.auth_cert)} at {lippstadt.peer_url}\n"
        "Lippstadt checked: the TLS peer is the registered node hosting the client; the\n"
        "signature is valid and by the client's member; the OCSP answers Soest's node\n"
        "sent along show both of Soest's certificates good and fresh; the access right\n"
        "holds; the case number and user the service requires are present; the message\n"
        "is fresh and new (no replay). The Melderegister named the person it disclosed\n"
        "(X-Data-Subject); Lippstadt's node recorded that for the data tracker and\n"
        "removed it from the answer.",
    )
    store = "SQLite, WAL, synchronous=FULL" if soest.database_url is None else "PostgreSQL"
    _say(
        f"7c. Message logs ({store}; written before answering)",
        "\n".join(
            f"{name:<10} {e.role:<8} {e.kind:<8} #{e.id} logged {e.logged_at} "
            f"header {len(e.header)} B, body {len(e.body)} B"
            for name, entries in (("Soest", consumer), ("Lippstadt", provider))
            for e in entries
        ),
    )
    exchange = {
        (r, k) for r in (Role.CONSUMER, Role.PROVIDER) for k in (Kind.REQUEST, Kind.RESPONSE)
    }
    complete = exchange <= set(by_kind)  # an exchange's four entries (admin ones are not)
    return complete, request_entry.message_id


def show_ihk(demo: Demo, story: AnnaStory, timeout: float = 30) -> bool:
    """The IHK's inbox received the Gewerbeanmeldung through the gateway, once."""
    deadline = time.monotonic() + timeout
    received: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        reply = httpx.get(
            f"{demo.ihk_url}/benachrichtigungen",
            params={"aktenzeichen": story.aktenzeichen},
            timeout=10,
        )
        if reply.status_code == 200:
            received = reply.json()["benachrichtigungen"]
            if received:
                break
        time.sleep(0.3)
    ihk_log = [
        e
        for e in read_entries(demo.net.nodes[IHK.ags].log_reader())
        if e.role == "provider" and e.kind == "request"
    ]
    lines = [
        f"Soest's Gewerberegister posted the Anzeige {story.aktenzeichen} to {IHK_SERVICE}",
        "through Soest's node and the IHK's node (outbox, retried until delivered)",
        f"IHK inbox: {len(received)} notification(s) for {story.aktenzeichen}; "
        f"IHK node log: {len(ihk_log)} signed request(s)",
    ]
    _say("8. The chamber (IHK Arnsberg) is notified through the gateway", "\n".join(lines))
    return len(received) == 1


def show_timestamps(net: LocalNet, message_id: str, timeout: float = 30) -> bool:
    """Wait for the batch holding the exchange to be timestamped, then prove each entry."""
    from gateway.messagelog import NotProvableError, prove_entry

    title = "9. Timestamped log batches (RFC 3161 token over an RFC 9162 tree head)"
    tsa_cert = load_certificate(net.trust.tsa_cert)
    ca = load_certificate(net.ca_cert)
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    for ags in (SOEST.ags, LIPPSTADT.ags):
        files = net.nodes[ags]
        log = files.log_reader()
        for entry in read_entries(log, message_id=message_id):
            assert entry.id is not None
            while True:
                try:
                    _, proven = prove_entry(log, entry.id, tsa_cert, issuer=ca)
                    break
                except NotProvableError:
                    if time.monotonic() > deadline:
                        lines.append(f"{files.city.name} #{entry.id}: not timestamped in time")
                        _say(title, "\n".join(lines))
                        return False
                    time.sleep(0.2)
            lines.append(
                f"{_name(files.city.name):<10} {entry.role:<8} {entry.kind:<8} #{entry.id}: "
                f"leaf {proven.leaf_index} of tree size {proven.tree_size}, root "
                f"{proven.root_hash.hex()[:16]}..., stamped "
                f"{format_time(proven.gen_time, 'auto')}"
            )
    lines.append(
        f"batches every {DEMO_STAMP_INTERVAL} s here (60 s by default); each tree head is\n"
        "signed with the member's key and timestamped; check one yourself:\n"
        "gateway log prove --db DB --id N --tsa-cert TSA.pem --export DIR"
    )
    _say(title, "\n".join(lines))
    return True


ANNA_IN_THE_LOG = ("52693074139", "Schmidt", "2016-08-01")
"""Anna's IDNr, her name (in the query) and her moving-in date (in the register's
answer): none of them may be in a node's log file in the clear."""


def audit_lippstadt(net: LocalNet) -> bool:
    """An auditor exports Lippstadt's whole log and verifies it offline."""
    from gateway.sandbox.demo_audit import audit_log, sealed_report

    files = net.nodes[LIPPSTADT.ags]
    ok, text = audit_log(
        files.log_reader(),
        net.ca_cert,
        net.trust.tsa_cert,
        net.root / "audit",
        files.directory,
        shown=files.log_location,
    )
    _say("10. An auditor exports Lippstadt's log and verifies it offline", text)
    sealed, text = sealed_report([net.nodes[SOEST.ags], files], ANNA_IN_THE_LOG)
    _say("10a. Personal data sealed at rest in the nodes' logs", text)
    return check_tracker_records(net) and ok and sealed


def check_tracker_records(net: LocalNet) -> bool:
    """The tracker's person records match what each log leaf committed to."""
    from gateway.sandbox.demo_audit import subjects_report

    files = net.nodes[LIPPSTADT.ags]
    ok, text = subjects_report(files.log_reader(), files.log_location)
    _say("10b. The data tracker's records are covered by the log", text)
    return ok


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _serve(demo: Demo, directory: Path, *, exit_on_failure: bool = False) -> bool:
    """Keep the federation up until Ctrl-C/SIGTERM; ``False`` if it stopped because a
    process died under ``exit_on_failure``. Otherwise a process that dies is reported
    and restarted with backoff while the others keep running (``gateway.sandbox.supervisor``)."""
    # Handler first: a SIGTERM while the topology is being written still stops the
    # federation cleanly.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    topology = directory / "topology.json"
    partial = topology.with_suffix(".json.tmp")
    data = demo.net.topology()
    data["portal_url"] = demo.portal.url
    data["console"] = start_console(demo.net, node=SOEST.ags)
    officer = data["console"]["credentials"][1]
    soest, code = demo.net.nodes[SOEST.ags], TRADE_OFFICE.subsystem_code
    partial.write_text(json.dumps(data, indent=2), "utf-8")
    os.replace(partial, topology)
    _say(
        "The federation keeps running (Ctrl-C stops it)",
        f"topology: {topology}\nportal: {demo.portal.url}  (open it in a browser)\n"
        f"console: {data['console']['url']}  (sign in with the {officer['role']}'s API key "
        f"in {officer['api_key_file']}; more roles in topology.json)\n"
        "or ask the register yourself through Soest's node, as the trade office's "
        "information system (its registered certificate, the node's internal one):\n"
        f"curl -s --cert {soest.client_cert(code)} --key {soest.client_key(code)} \\\n"
        f"  --cacert {soest.internal_cert} \\\n"
        f"  -H 'X-Road-Client: {TRADE_OFFICE}' -H 'X-Road-Issue: GA-2026-4711' \\\n"
        "  -H 'X-Road-UserId: sachbearbeitung-07' \\\n"
        f"  '{soest.consumer_tls_url}/r1/{MELDEREGISTER_SERVICE}"
        "?familienname=Schmidt&vornamen=Anna&geburtsdatum=1988-03-14'\n"
        + (
            "a process that dies stops the federation (--exit-on-failure)"
            if exit_on_failure
            else "a process that dies is reported here and restarted; the others keep running"
        ),
    )
    supervisor = Supervisor(demo.net, report=_supervisor_report, exit_on_failure=exit_on_failure)
    try:
        supervisor.run()
    except KeyboardInterrupt:
        return True
    return False


def _supervisor_report(text: str) -> None:
    """Supervisor reports in the story's style, marked so they stand out in the output."""
    lines = text.splitlines()
    print(f"\n!! {lines[0]}", *(f"   {line}" for line in lines[1:]), sep="\n", flush=True)


def run_demo(
    directory: Path | None,
    *,
    serve: bool = False,
    exit_on_failure: bool = False,
    db: str | None = None,
) -> int:
    """Run the demo; with ``serve`` keep the federation up and write ``topology.json``
    (``exit_on_failure``: stop it, exit status 1, when one of its processes dies); ``db``
    a PostgreSQL server's URL for the nodes' logs (``demo_db.py``), else SQLite files."""
    tmp = None
    if directory is None:
        tmp = tempfile.TemporaryDirectory(prefix="gateway-demo-")
        directory = Path(tmp.name)
    print(
        "Once-only gateway demo: Anna, living in Lippstadt, registers her hair salon in\n"
        "Soest and never types her data twice"
    )
    print(f"state directory: {directory}")
    demo = build(directory, db)
    net = demo.net
    try:
        show_running(demo)
        wait_http(f"{demo.portal.url}/health")
        ok = show_ocsp(net)
        ok = iserlohn_joins(demo) and ok
        story = anna_applies(demo)
        complete, message_id = explain(net, story)
        ok = complete and ok
        ok = show_ihk(demo, story) and ok
        reads = [r for r in story.tracker if story.case in r.get("Vorgang", "")]
        _say(
            "8b. The data tracker shows Anna exactly the read made for her case",
            f"{len(story.tracker)} read(s) across Lippstadt and Iserlohn, "
            f"{len(reads)} for case {story.case}",
        )
        ok = len(reads) == 1 and ok
        ok = show_timestamps(net, message_id) and ok
        ok = show_witnesses(net, _say) and ok
        ok = audit_lippstadt(net) and ok
        ok = operator_grants(net, IS_DEMO, _say) and ok
        estonia = estonian_branch(net, directory / "ee", _say, DEMO_GLOBALCONF_REFRESH)
        ok = chapter_ok(net, estonia, _say) and ok
        if serve:
            ok = _serve(demo, directory, exit_on_failure=exit_on_failure) and ok
        print(
            "\nresult:",
            "OK: read once through the gateway, confirmed, registered, the IHK notified, "
            "the read shown to Anna, logged, timestamped and verified offline"
            if ok
            else "FAILED",
        )
        return 0 if ok else 1
    finally:
        net.stop()
        release_logs(net, db)
        if tmp is not None:
            tmp.cleanup()
