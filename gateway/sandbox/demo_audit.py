"""An auditor's whole round in one call: export a node's log and verify it offline.

The demo ends with it (Lippstadt's log). Kept here rather than in the demo so the step
is exactly what an auditor runs (``gateway audit export --all`` then ``gateway audit
verify`` against the CA and TSA certificates), only in-process; with it, the demo's
other reads of a log (a case's entries, the data-subject check).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from gateway.audit.anchor import load_anchor
from gateway.audit.bundle import BundleFormatError
from gateway.audit.export import ExportError, Selection, export_bundle
from gateway.audit.parallel import verify_file
from gateway.audit.subjects import check_subjects
from gateway.audit.verify import AuditError, describe_in_force
from gateway.keys.files import load_certificate
from gateway.messagelog import (
    LogStore,
    StoredEntry,
    read_cosignatures,
    read_entries,
    read_witness_alerts,
)
from gateway.sandbox.cities import LIPPSTADT
from gateway.sandbox.localnet import LocalNet
from gateway.sandbox.netfiles import NodeFiles

__all__ = [
    "audit_log",
    "entries_for_case",
    "sealed_report",
    "show_witnesses",
    "subjects_report",
]


def audit_log(
    db: LogStore | Path | str,
    ca_cert: Path,
    tsa_cert: Path,
    out_dir: Path,
    home: Path | None = None,
    *,
    shown: Path | str | None = None,
) -> tuple[bool, str]:
    """Export every timestamped entry of the log at ``db`` to ``out_dir/audit.jsonl`` and
    verify the bundle against an anchor of ``ca_cert`` and ``tsa_cert`` alone. The
    node's ``globalconf`` directory is looked for in ``home`` (default: beside a
    SQLite file); ``shown`` is the log's location in the commands printed (``db`` may be
    a store opened with the node's data key).

    Returns whether it verified and a few lines saying what was checked (or why not).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle, anchor = out_dir / "audit.jsonl", out_dir / "anchor.pem"
    anchor.write_bytes(ca_cert.read_bytes() + tsa_cert.read_bytes())
    where = shown if shown is not None else db
    conf = (home or Path(str(where)).parent) / "globalconf"
    try:
        exported = export_bundle(
            db,
            bundle,
            Selection(all=True),
            now=datetime.now(UTC),
            extra_tsa=load_certificate(tsa_cert),
            extra_ca=load_certificate(ca_cert),
            globalconf=conf if conf.is_dir() else None,
        )
        report = verify_file(bundle, load_anchor(anchor), jobs=1)
    except (ExportError, BundleFormatError, AuditError) as exc:
        return False, f"the audit failed: {exc}"
    lines = [
        f"gateway audit export --db {where} --out {bundle} --all"
        + (" --data-key data.key" if home is not None and (home / "data.key").exists() else ""),
        f"  {exported.entries} entries, {exported.tree_heads} tree heads, {exported.bytes} bytes",
        f"gateway audit verify {bundle} --anchor {anchor}",
        f"  OK: {report.entries} entries with {report.signatures} signatures, chains and "
        f"OCSP at signing time; {report.tree_heads} tree heads with their time stamps, "
        "each consistent with the one before",
        f"  {report.signed_heads} tree heads signed with the node's member key, "
        f"{report.cosignatures} co-signatures by witnesses",
    ]
    if report.configurations:
        serials = ", ".join(str(v.snapshot.serial) for v in report.configurations)
        lines += [
            f"  the global configuration versions in force (serials {serials}) verify with "
            "their TUF metadata",
            f"  in force: {describe_in_force(report)}",
        ]
    elif report.configuration is not None:
        lines.append(
            f"  the signed global configuration in force (serial {report.configuration.serial}) "
            "verifies with its TUF metadata"
        )
    return True, "\n".join(lines)


def subjects_report(db: LogStore | Path | str, shown: Path | str | None = None) -> tuple[bool, str]:
    """``gateway log check-subjects`` on the log at ``db``: whether every entry's
    subjects commitment matches its rows (and some entry names a person), and what to
    show (``shown``: the log's location, when ``db`` is a store opened with a key)."""
    report = check_subjects(db)
    text = (
        f"gateway log check-subjects --db {shown if shown is not None else db}\n"
        f"  {report.checked} entries checked, {report.with_subjects} naming a person, "
        f"{len(report.mismatches)} mismatches: every leaf commits to a salted digest of\n"
        "  the persons its answer disclosed, so a deleted tracker record would show here"
    )
    return report.checked > 0 and report.with_subjects > 0 and not report.mismatches, text


def entries_for_case(path: LogStore | Path | str, case: str, service: str) -> list[StoredEntry]:
    """The log entries of the exchanges made for ``case`` with ``service``."""
    ids = set()
    entries = read_entries(path)
    for e in entries:
        header = json.loads(e.header)
        if e.kind == "request" and header.get("issue") == case and e.service == service:
            ids.add(e.message_id)
    return [e for e in entries if e.message_id in ids]


def show_witnesses(net: LocalNet, say: Callable[[str, str], None], timeout: float = 30) -> bool:
    """Wait until two peers have co-signed one of Lippstadt's signed tree heads."""
    files = net.nodes[LIPPSTADT.ags]
    deadline = time.monotonic() + timeout
    rows: list[tuple[str, int]] = []
    alerts = 0
    while time.monotonic() < deadline:
        latest: dict[str, int] = {}
        for row in read_cosignatures(files.log_location, log_node=str(files.city.node)):
            latest[row.witness] = max(latest.get(row.witness, 0), row.tree_size)
        rows = list(latest.items())
        if len(rows) >= 2:
            break
        time.sleep(0.3)
    for node in net.nodes.values():
        if node.database_url is not None or node.messagelog.exists():
            alerts += len(read_witness_alerts(node.log_location))
    lines = [
        f"{witness} co-signed Lippstadt's head of tree size {size}"
        for witness, size in sorted(rows)
    ]
    lines.append(
        "each witness checked the head's signature, its signer's OCSP status and its\n"
        f"consistency with the last head it saw; split views detected: {alerts}\n"
        f"(gateway log witness --db {files.log_location})"
    )
    say("9b. Partner nodes witness Lippstadt's log", "\n".join(lines))
    return len(rows) >= 2 and alerts == 0


def sealed_report(nodes: Sequence[NodeFiles], secrets: Sequence[str]) -> tuple[bool, str]:
    """Grep each node's log file (with its WAL) for ``secrets``: a node with a data key
    must hold none of them in the clear. A log in PostgreSQL has no file here to grep."""
    ok = True
    lines = []
    for files in nodes:
        if files.database_url is not None:
            lines.append(f"{files.city.name}: log in PostgreSQL, sealed columns (no file here)")
            continue
        db = files.messagelog
        content = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
        found = [s for s in secrets if s.encode() in content]
        ok = ok and not found and files.data_key_file.exists()
        verdict = f"FOUND {', '.join(found)}" if found else "none of them"
        lines.append(f"{files.city.name}: {db.name} ({len(content)} bytes): {verdict}")
    return ok, "\n".join(
        [
            f"grep the log files for Anna's IDNr, name and moving-in date ({', '.join(secrets)}):",
            *lines,
            "each node's data key (data.key, under its passphrase) seals headers, bodies and",
            "data subjects; the Merkle leaves stay over the plaintext, so the audit above",
            "verified the same proofs",
        ]
    )
