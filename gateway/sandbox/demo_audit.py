"""An auditor's whole round in one call: export a node's log and verify it offline.

The demo ends with it (Lippstadt's log). Kept here rather than in the demo so the step
is exactly what an auditor runs (``gateway audit export --all`` then ``gateway audit
verify`` against the CA and TSA certificates), only in-process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from gateway.audit.anchor import load_anchor
from gateway.audit.bundle import BundleFormatError
from gateway.audit.export import ExportError, Selection, export_bundle
from gateway.audit.parallel import verify_file
from gateway.audit.verify import AuditError, describe_in_force
from gateway.keys.files import load_certificate
from gateway.messagelog import read_cosignatures, read_witness_alerts
from gateway.sandbox.cities import LIPPSTADT
from gateway.sandbox.localnet import LocalNet

__all__ = ["audit_log", "show_witnesses"]


def audit_log(db: Path, ca_cert: Path, tsa_cert: Path, out_dir: Path) -> tuple[bool, str]:
    """Export every timestamped entry of the log at ``db`` to ``out_dir/audit.jsonl`` and
    verify the bundle against an anchor of ``ca_cert`` and ``tsa_cert`` alone.

    Returns whether it verified and a few lines saying what was checked (or why not).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle, anchor = out_dir / "audit.jsonl", out_dir / "anchor.pem"
    anchor.write_bytes(ca_cert.read_bytes() + tsa_cert.read_bytes())
    try:
        exported = export_bundle(
            db,
            bundle,
            Selection(all=True),
            now=datetime.now(UTC),
            extra_tsa=load_certificate(tsa_cert),
            extra_ca=load_certificate(ca_cert),
            globalconf=db.parent / "globalconf" if (db.parent / "globalconf").is_dir() else None,
        )
        report = verify_file(bundle, load_anchor(anchor), jobs=1)
    except (ExportError, BundleFormatError, AuditError) as exc:
        return False, f"the audit failed: {exc}"
    lines = [
        f"gateway audit export --db {db} --out {bundle} --all",
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


def show_witnesses(net: LocalNet, say: Callable[[str, str], None], timeout: float = 30) -> bool:
    """Wait until two peers have co-signed one of Lippstadt's signed tree heads."""
    files = net.nodes[LIPPSTADT.ags]
    deadline = time.monotonic() + timeout
    rows: list[tuple[str, int]] = []
    alerts = 0
    while time.monotonic() < deadline:
        latest: dict[str, int] = {}
        for row in read_cosignatures(files.messagelog, log_node=str(files.city.node)):
            latest[row.witness] = max(latest.get(row.witness, 0), row.tree_size)
        rows = list(latest.items())
        if len(rows) >= 2:
            break
        time.sleep(0.3)
    for node in net.nodes.values():
        if node.messagelog.exists():
            alerts += len(read_witness_alerts(node.messagelog))
    lines = [
        f"{witness} co-signed Lippstadt's head of tree size {size}"
        for witness, size in sorted(rows)
    ]
    lines.append(
        "each witness checked the head's signature, its signer's OCSP status and its\n"
        f"consistency with the last head it saw; split views detected: {alerts}\n"
        f"(gateway log witness --db {files.messagelog})"
    )
    say("9b. Partner nodes witness Lippstadt's log", "\n".join(lines))
    return len(rows) >= 2 and alerts == 0
