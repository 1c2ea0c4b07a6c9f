"""Large bodies: the time an exchange of a 1 MiB or 10 MiB body takes through the gateway,
against the lean relay pair and the registry called directly, and what it costs in memory.

The target is large bodies within 2x of the relay's time, with each node's peak RSS
bounded by concurrency times body size. Per size the three scenarios are interleaved
and repeated, like the levels; the time per exchange is the median latency of a run
(the stub echoes the body, so both the request and the response are that large), and
the ratio to the relay is taken per run, its median reported.

Before each size the peak RSS (``VmHWM``) of every node process is reset through
``/proc/<pid>/clear_refs``, so the peak read afterwards belongs to that size alone and
not to an earlier phase of the run. The bound is the RSS before the size plus
:data:`COPIES` times concurrency times body size: a node holds the request it read,
the request it sends on, the response it read and the one it answers with, and the
event loop's buffers may hold another copy of each while it writes. Where the reset is
not allowed the peak is the process's lifetime peak and the report says so.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gateway.sandbox.bench.procs import usage
from gateway.sandbox.bench.topology import Scenario

COPIES = 8
"""Bodies a node may hold per exchange in flight: four messages, each possibly twice."""

SCENARIOS = ("direct", "relay", "gateway")
NODES = ("consumer", "provider")

Drive = Callable[..., dict[str, Any]]
"""``runner.drive``: one load-generator run of a scenario."""


def reset_peak(pid: int) -> bool:
    """Reset the process's ``VmHWM`` to its current RSS (Linux ``clear_refs`` value 5)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return True


def measure(
    scenarios: dict[str, Scenario],
    sizes: Sequence[int],
    *,
    drive: Drive,
    concurrency: int,
    duration: float,
    repeats: int,
    use_wrk: bool,
    ids_file: Callable[[], Path],
    warm_up: float = 0.0,
) -> dict[str, Any]:
    """Every size, every scenario ``repeats`` times; medians, ratios and the memory bound.

    ``ids_file`` gives a fresh path for each gateway run's request ids, so the run's log
    check covers the large bodies too. ``warm_up``: seconds of uncounted load before
    each run (``runner.WARM_UP_SECONDS``).
    """
    nodes = {name: scenarios["gateway"].processes[name] for name in NODES}
    result: dict[str, Any] = {"concurrency": concurrency, "copies_bound": COPIES, "sizes": {}}
    for size in sizes:
        before = {name: usage(p.pid).rss_bytes for name, p in nodes.items()}
        reset = all([reset_peak(p.pid) for p in nodes.values()])
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in SCENARIOS}
        for _ in range(repeats):
            for name in SCENARIOS:
                runs[name].append(
                    drive(
                        scenarios[name],
                        concurrency=concurrency,
                        duration=duration,
                        body_bytes=size,
                        ids_out=ids_file() if name == "gateway" else None,
                        use_wrk=use_wrk,
                        warm_up=warm_up,
                    )
                )
        sized: dict[str, Any] = {name: summarise(r) for name, r in runs.items()}
        per_run = [
            round(g["p50_ms"] / max(r["p50_ms"], 1e-9), 3)
            for g, r in zip(runs["gateway"], runs["relay"], strict=True)
        ]
        # A run with a failure has no time to compare: the ratio is then not measured.
        failed = any(sized[name]["errors"] or not sized[name]["ok"] for name in SCENARIOS)
        sized["ratio_gateway_to_relay_time"] = (
            None if failed else round(statistics.median(per_run), 3)
        )
        sized["ratio_gateway_to_relay_time_per_run"] = per_run
        sized["memory"] = memory_bound(
            {name: (before[name], usage(p.pid).peak_rss_bytes) for name, p in nodes.items()},
            concurrency=concurrency,
            size=size,
            peak_reset=reset,
        )
        result["sizes"][str(size)] = sized
    return result


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the runs of one scenario at one size; counts are summed."""
    return {
        "time_ms": round(statistics.median(r["p50_ms"] for r in runs), 3),
        "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 3),
        "exchanges_per_s": round(statistics.median(r["exchanges_per_s"] for r in runs), 2),
        "runs_time_ms": [round(r["p50_ms"], 3) for r in runs],
        "ok": sum(r["ok"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "warm_up_ok": sum(r["warm_up_ok"] for r in runs),
        "first_error": next((r["first_error"] for r in runs if r["first_error"]), None),
        # Each process's CPU per exchange (``/proc``), median of the runs: what a body
        # costs a node whatever the machine's other load does to the time.
        "cpu_ms_per_exchange": {
            name: round(statistics.median(r["cpu_ms_per_exchange"][name] for r in runs), 3)
            for name in runs[0].get("cpu_ms_per_exchange", {})
        },
    }


def memory_bound(
    readings: dict[str, tuple[int, int]], *, concurrency: int, size: int, peak_reset: bool
) -> dict[str, Any]:
    """Each node's peak against its RSS before plus ``COPIES`` x concurrency x size.

    ``readings`` maps a node to (RSS before the size, peak RSS after it), in bytes.
    """
    allowance = COPIES * concurrency * size
    nodes: dict[str, Any] = {}
    for name, (before, peak) in readings.items():
        growth = max(0, peak - before)
        nodes[name] = {
            "rss_before_mb": round(before / 2**20, 1),
            "peak_rss_mb": round(peak / 2**20, 1),
            "bound_mb": round((before + allowance) / 2**20, 1),
            "bodies_in_flight": round(growth / max(concurrency * size, 1), 2),
            "holds": peak <= before + allowance,
        }
    return {"peak_reset": peak_reset, "nodes": nodes}


def render(large: dict[str, Any]) -> str:
    """The terminal table of the large bodies."""
    lines = []
    for size, sized in large["sizes"].items():
        lines.append(
            f"\nbody {int(size) // 1024} KiB each way, concurrency {large['concurrency']}"
            " (time per exchange: median of the runs' p50)"
        )
        for name in SCENARIOS:
            r = sized[name]
            lines.append(
                f"  {name:<9} {r['time_ms']:>9.1f} ms  p99 {r['p99_ms']:>9.1f} ms  "
                f"{r['exchanges_per_s']:>7.1f} ex/s  errors {r['errors']}"
            )
        cpu = sized["gateway"].get("cpu_ms_per_exchange", {})
        if all(name in cpu for name in NODES):
            lines.append(
                "  gateway CPU ms per exchange (median of the runs): "
                + ", ".join(f"{name} {cpu[name]:.2f}" for name in NODES)
            )
        ratio = sized["ratio_gateway_to_relay_time"]
        if ratio is None:
            lines.append("  gateway/relay time: not measured, a scenario had errors")
        else:
            verdict = "met" if ratio <= 2 else "NOT met"
            lines.append(f"  gateway/relay time {ratio:.2f}x (target <= 2x: {verdict})")
        memory = sized["memory"]
        for name, m in memory["nodes"].items():
            lines.append(
                f"  {name:<9} peak RSS {m['peak_rss_mb']} MB (before {m['rss_before_mb']} MB, "
                f"bound {m['bound_mb']} MB = before + {large['copies_bound']} x "
                f"{large['concurrency']} x body; {m['bodies_in_flight']} bodies per exchange "
                f"in flight): {'holds' if m['holds'] else 'EXCEEDED'}"
            )
        if not memory["peak_reset"]:
            lines.append("  (peak RSS could not be reset: lifetime peaks)")
    return "\n".join(lines)
