"""An auditor's whole round in one call: export a node's log and verify it offline.

The demo ends with it (Lippstadt's log). Kept here rather than in the demo so the step
is exactly what an auditor runs (``gateway audit export --all`` then ``gateway audit
verify`` against the CA and TSA certificates), only in-process.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gateway.audit.anchor import load_anchor
from gateway.audit.bundle import BundleFormatError
from gateway.audit.export import ExportError, Selection, export_bundle
from gateway.audit.parallel import verify_file
from gateway.audit.verify import AuditError, describe_in_force
from gateway.keys.files import load_certificate

__all__ = ["audit_log"]


def audit_log(
    db: Path | str, ca_cert: Path, tsa_cert: Path, out_dir: Path, home: Path | None = None
) -> tuple[bool, str]:
    """Export every timestamped entry of the log at ``db`` to ``out_dir/audit.jsonl`` and
    verify the bundle against an anchor of ``ca_cert`` and ``tsa_cert`` alone. The
    node's ``globalconf`` directory is looked for in ``home`` (default: beside a
    SQLite file).

    Returns whether it verified and a few lines saying what was checked (or why not).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle, anchor = out_dir / "audit.jsonl", out_dir / "anchor.pem"
    anchor.write_bytes(ca_cert.read_bytes() + tsa_cert.read_bytes())
    conf = (home or Path(db).parent) / "globalconf"
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
