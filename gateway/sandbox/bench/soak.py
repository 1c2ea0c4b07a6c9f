"""The soak: N gateway exchanges at concurrency 64, with each node's RSS read as it runs.

One reading after the soak says how large a node is, not whether it keeps growing; the
target is RSS <= 150 MB after 100,000 exchanges *and flat*, so the soak runs in chunks
and reads both nodes' RSS after each. With wrk (which cannot stop after a count) a chunk
is a fixed time and the soak runs until the count is reached, at the top rate the node
pair sustains; with the Python load generator (and for a soak under ``WRK_MIN``) a
chunk is a tenth of the count. Every
chunk's request ids go to the run's log check like any other run's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from gateway.sandbox.bench.procs import usage
from gateway.sandbox.bench.topology import Scenario

__all__ = ["CHUNKS", "WRK_CHUNK_S", "growth_mb", "render_soak", "run_soak"]

CHUNKS = 10
"""Readings per soak with the Python load generator."""
WRK_CHUNK_S = 15.0
"""Seconds of one wrk chunk."""
WRK_MIN = 10_000
"""A shorter soak (the smoke test's) runs its exact count on the Python generator."""
CONCURRENCY = 64


class Drive(Protocol):
    def __call__(
        self,
        scenario: Scenario,
        *,
        concurrency: int,
        duration: float,
        body_bytes: int,
        count: int | None = None,
        ids_out: Path | None = None,
        use_wrk: bool = False,
    ) -> dict[str, Any]: ...


def _rss(scenario: Scenario) -> dict[str, float]:
    return {
        name: round(usage(p.pid).rss_bytes / 2**20, 1)
        for name, p in scenario.processes.items()
        if name in ("consumer", "provider")
    }


def run_soak(
    scenario: Scenario,
    count: int,
    *,
    drive: Drive,
    body_bytes: int,
    use_wrk: bool,
    ids_file: Callable[[], Path],
) -> dict[str, Any]:
    """Drive ``count`` exchanges (at least) and return the totals with ``rss_mb``: the
    nodes' RSS at the start and after each chunk, with the exchanges done by then."""
    use_wrk = use_wrk and count >= WRK_MIN
    started = time.perf_counter()
    samples: list[dict[str, Any]] = [{"exchanges": 0, "seconds": 0.0, **_rss(scenario)}]
    ok = errors = 0
    while ok < count:
        if use_wrk:
            run = drive(
                scenario,
                concurrency=CONCURRENCY,
                duration=WRK_CHUNK_S,
                body_bytes=body_bytes,
                ids_out=ids_file(),
                use_wrk=True,
            )
        else:
            run = drive(
                scenario,
                concurrency=CONCURRENCY,
                duration=0,
                body_bytes=body_bytes,
                count=min(max(count // CHUNKS, 1), count - ok),
                ids_out=ids_file(),
            )
        if run["ok"] == 0:
            raise RuntimeError(f"the soak's chunk answered nothing: {run}")
        ok += run["ok"]
        errors += run["errors"]
        elapsed = time.perf_counter() - started
        samples.append({"exchanges": ok, "seconds": round(elapsed, 1), **_rss(scenario)})
    wall = time.perf_counter() - started
    return {
        "ok": ok,
        "errors": errors,
        "concurrency": CONCURRENCY,
        "wall_s": round(wall, 1),
        "exchanges_per_s": round(ok / wall, 1),
        "loadgen": "wrk" if use_wrk else "python",
        "rss_mb": samples,
    }


def growth_mb(soak: dict[str, Any], node: str) -> float:
    """How much ``node``'s RSS grew over the soak's second half (by exchanges): the
    flatness the target asks for, once start-up and the replay window's filling are
    behind it."""
    samples = soak["rss_mb"]
    half = soak["ok"] / 2
    middle = next(s for s in samples if s["exchanges"] >= half)
    return float(samples[-1][node] - middle[node])


def render_soak(soak: dict[str, Any]) -> str:
    lines = [
        f"\nsoak: {soak['ok']} exchanges at concurrency {soak['concurrency']} in "
        f"{soak['wall_s']} s ({soak['exchanges_per_s']:.0f} ex/s, {soak['loadgen']}), "
        f"{soak['errors']} errors; RSS (MB) as it ran:",
        "  exchanges   seconds  consumer  provider",
    ]
    for s in soak["rss_mb"]:
        figures = f"{s['seconds']:>9.1f} {s['consumer']:>9.1f} {s['provider']:>9.1f}"
        lines.append(f"  {s['exchanges']:>9,} {figures}")
    return "\n".join(lines)
