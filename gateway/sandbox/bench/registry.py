"""CPU per lookup of a sample registry, measured on its own process.

The demo federation reads Lippstadt's Melderegister; if a lookup there costs more CPU
than an exchange through both nodes, the federation's rate is the sample's, not the
gateway's. So the bench starts the Melderegister as the demo does (its own process, its
own SQLite file, uvicorn under the connection guard), sends it the demo's § 38 query
directly (no node in front) and divides the CPU time its process spent, read from
``/proc/<pid>/stat`` before and after each run, by the lookups answered. Every lookup is
a real one: the SQL query, the projection, the answer and the protocol row committed to
disk before the answer goes out.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gateway.sandbox.bench.procs import usage
from gateway.sandbox.localnet import free_port, wait_http

QUERY = "/personen?familienname=Schmidt&vornamen=Anna&geburtsdatum=1988-03-14"
"""Anna Schmidt, the demo's citizen: a hit, so the answer carries a person."""

Driver = Callable[[str, int, float], dict[str, Any]]
"""Runs a GET load on a URL at a concurrency for a duration; returns the load result."""


def start(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The Melderegister of Lippstadt on a fresh database; its process and base URL."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (root / "melderegister.log").open("ab")
    with log:
        proc = subprocess.Popen(  # noqa: S603 - our interpreter, our module
            [
                sys.executable, "-m", "registries.melderegister",
                "--db", str(root / "melderegister.db"), "--port", str(port),
                "--city", "lippstadt",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health", proc)
    return proc, url


def measure(
    root: Path, drive: Driver, *, levels: Sequence[int], duration: float, repeats: int
) -> dict[str, Any]:
    """CPU ms per lookup and lookups/s at each concurrency level, medians of ``repeats``."""
    proc, url = start(root)
    report: dict[str, Any] = {"query": QUERY, "levels": {}}
    try:
        drive(url + QUERY, 1, 1.0)  # warm-up: imports, caches, the first page of the WAL
        for concurrency in levels:
            cpu: list[float] = []
            rates: list[float] = []
            errors = 0
            for _ in range(repeats):
                before = usage(proc.pid).cpu_seconds
                result = drive(url + QUERY, concurrency, duration)
                spent = usage(proc.pid).cpu_seconds - before
                cpu.append(spent * 1000 / max(result["ok"], 1))
                rates.append(result["exchanges_per_s"])
                errors += result["errors"]
            report["levels"][str(concurrency)] = {
                "cpu_ms_per_lookup": round(statistics.median(cpu), 4),
                "cpu_ms_per_lookup_runs": [round(c, 4) for c in cpu],
                "lookups_per_s": round(statistics.median(rates), 1),
                "errors": errors,
            }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return report


def render(report: dict[str, Any]) -> str:
    lines = [f"\nsample registry: Melderegister Lippstadt, GET {report['query']}, direct"]
    for concurrency, level in report["levels"].items():
        lines.append(
            f"  concurrency {concurrency:>3}: {level['cpu_ms_per_lookup']:.3f} ms CPU per lookup "
            f"(runs {level['cpu_ms_per_lookup_runs']}), {level['lookups_per_s']:.0f} lookups/s, "
            f"{level['errors']} errors"
        )
    return "\n".join(lines)
