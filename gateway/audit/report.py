"""The verifier's verdict as text: the lines ``gateway audit verify`` prints.

One function for every reader, so the command line and the console's auditor page give
an auditor the same words for the same bundle (the page marks the failing piece; the
text is this module's).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.audit.bundle import BundleFormatError
from gateway.audit.verify import AuditError, AuditReport, describe_in_force


@dataclass(frozen=True, slots=True)
class FailureLine:
    """A refused bundle as printed: ``FAIL <piece>: <reason>: <detail>``."""

    piece: str
    reason: str
    detail: str

    @property
    def text(self) -> str:
        return f"FAIL {self.piece}: {self.reason}: {self.detail}"


def failure_line(exc: BundleFormatError | AuditError) -> FailureLine:
    """The first bad piece of a refused bundle: the entry or line, the reason code and
    what was wrong with it."""
    if isinstance(exc, BundleFormatError):
        piece = f"entry {exc.entry_id}" if exc.entry_id is not None else f"line {exc.line}"
        return FailureLine(piece, "malformed", str(exc))
    return FailureLine(exc.piece, exc.reason.value, exc.detail)


def report_lines(report: AuditReport, seconds: float) -> list[str]:
    """A verified bundle as printed, ``seconds`` being how long verification took."""
    lines = [f"OK   bundle of node {report.node}"]
    lines.append(
        f"     {report.entries} entries (leaves {report.first_leaf}..{report.last_leaf}), "
        f"{report.signatures} signatures with chains and OCSP at signing time"
    )
    if report.admin_records:
        lines.append(
            f"     {report.admin_records} of them admin records, signed by the node's owner "
            "and included in the tree like every exchange"
        )
    if report.first_gen_time is not None and report.last_gen_time is not None:
        lines.append(
            f"     {report.tree_heads} tree heads, timestamped {report.first_gen_time.isoformat()}"
            f" .. {report.last_gen_time.isoformat()}, each consistent with the one before"
        )
    if report.configurations:
        lines.append(f"     {len(report.configurations)} global configuration versions verify:")
        for v in report.configurations:
            c = v.snapshot
            lines.append(
                f"       serial {c.serial} of {c.instance} applied {v.applied_at.isoformat()} "
                f"(TUF targets v{c.targets_version}, root v{c.root_version} "
                f"sha256 {c.root_sha256[:16]}…)"
            )
        lines.append(f"     in force: {describe_in_force(report)}")
    elif report.configuration is not None:
        c = report.configuration
        lines.append(
            f"     global configuration serial {c.serial} of {c.instance} (TUF targets "
            f"v{c.targets_version}, root v{c.root_version} sha256 {c.root_sha256[:16]}…) verifies"
        )
    if report.signed_heads:
        lines.append(
            f"     {report.signed_heads} tree heads signed by the member at their genTime, "
            f"{report.cosignatures} witness co-signatures"
        )
    lines.append(
        f"     {report.certificates} certificates, {report.ocsp_responses} OCSP responses; "
        f"{seconds:.2f} s ({report.entries / seconds if seconds else 0:.0f} entries/s)"
    )
    return lines
