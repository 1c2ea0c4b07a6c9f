"""The auditor page's work: verify an uploaded bundle against an uploaded anchor.

The verifier is pure and offline, so the console runs it itself, with the same reader
and the same report text as ``gateway audit verify`` (:mod:`gateway.audit.report`). The
uploads go to a private temporary directory only for the verifier's file reader and are
deleted at once.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.audit.anchor import AuditAnchorError, load_anchor
from gateway.audit.bundle import BundleFormatError
from gateway.audit.parallel import verify_file
from gateway.audit.report import FailureLine, failure_line, report_lines
from gateway.audit.verify import AuditError
from gateway.console.errors import ConsoleCode, ConsoleError


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the page shows: the report's lines, and the first bad piece if refused."""

    lines: list[str]
    failure: FailureLine | None

    @property
    def ok(self) -> bool:
        return self.failure is None


def verify_upload(bundle: bytes, anchor: bytes) -> Verdict:
    """Verify ``bundle`` (an audit bundle's bytes) against ``anchor`` (an auditor's
    anchor document); an unreadable anchor is ``console.bad_upload``, a refused bundle a
    verdict with its failure. Blocking: the app runs it in a thread."""
    if not bundle or not anchor:
        raise ConsoleError(ConsoleCode.BAD_UPLOAD, "both a bundle and an anchor are needed")
    with tempfile.TemporaryDirectory(prefix="gw-console-audit-") as where:
        bundle_path, anchor_path = Path(where) / "bundle.jsonl", Path(where) / "anchor.json"
        bundle_path.write_bytes(bundle)
        anchor_path.write_bytes(anchor)
        try:
            trust = load_anchor(anchor_path)
        except (AuditAnchorError, ValueError) as exc:
            raise ConsoleError(ConsoleCode.BAD_UPLOAD, f"the anchor: {exc}") from None
        started = time.perf_counter()
        try:
            report = verify_file(bundle_path, trust, jobs=1)
        except (BundleFormatError, AuditError) as exc:
            failed = failure_line(exc)
            return Verdict([failed.text], failed)
    return Verdict(report_lines(report, time.perf_counter() - started), None)
