"""`gateway audit bench`'s baseline: the same bundle's signatures alone, extracted from
the file the verifier read. No rate is asserted: speed is measured, never tested."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gateway.sandbox.bench.audit import run_bench
from gateway.sandbox.bench.audit_signatures import signature_tasks, time_signatures


def test_the_signature_pass_verifies_every_entry_of_the_verified_bundle(tmp_path: Path) -> None:
    result = run_bench(tmp_path, 24, jobs=1, say=lambda _: None)
    assert result.report.entries == 24
    assert result.signatures.signatures == 24
    assert result.verify_cpu_seconds > 0 and result.signatures.cpu_seconds > 0
    assert result.ratio > 0

    # The tasks are the bundle's real signatures: one bit changed is caught.
    tasks = signature_tasks(tmp_path / "bundle.jsonl")
    last = tasks[-1]
    flipped = bytes([last.signature[0] ^ 1]) + last.signature[1:]
    tasks[-1] = dataclasses.replace(last, signature=flipped)
    with pytest.raises(RuntimeError, match=f"position {last.position} "):
        time_signatures(tasks, 1)
