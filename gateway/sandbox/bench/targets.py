"""The performance targets (docs/performance.md), judged against baselines measured in the same run.

Machines of this class differ by a factor of two in what one signature or one proxy hop
costs, so the binding targets are ratios to work measured in the same run: a node's CPU
per exchange against the lean relay's CPU per proxy, the gateway's rate against the lean
relay pair's. The absolute targets (latency, memory, the sample registry's CPU per
lookup, the lean relay's own CPU per proxy) are judged as they stand. A target whose
figure this run did not measure is reported as such, never as met.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NODE_TO_RELAY_CPU = 3.0
RATE_TO_RELAY = 0.45
ADDED_P50_MS = 2.0
ADDED_P99_MS = 5.0
NODE_RSS_MB = 150.0
SOAK_FOR_RSS = 100_000
REGISTRY_CPU_MS = 0.5
RELAY_CPU_MS = 0.25


@dataclass(frozen=True)
class TargetVerdict:
    """One target: what it asks, what this run measured, and whether that meets it."""

    target: str
    measured: str
    met: bool | None
    """None: not measured in this run."""

    def line(self) -> str:
        state = {True: "met", False: "NOT met", None: "not measured"}[self.met]
        return f"  [{state:>12}] {self.target}: {self.measured}"


def per_proxy(cpu: dict[str, float], names: tuple[str, str]) -> float:
    """CPU ms per exchange of one proxy of a pair: the mean of the pair's two processes."""
    return (cpu[names[0]] + cpu[names[1]]) / 2


def judge(report: dict[str, Any]) -> list[TargetVerdict]:
    levels: dict[str, Any] = report["levels"]
    verdicts: list[TargetVerdict] = []
    for key in sorted(levels, key=int):
        if key not in ("1", "64"):
            continue
        level = levels[key]
        relay = per_proxy(level["relay"]["cpu_ms_per_exchange"], ("front", "back"))
        gateway_cpu = level["gateway"]["cpu_ms_per_exchange"]
        for node in ("consumer", "provider"):
            ratio = gateway_cpu[node] / relay if relay else float("inf")
            verdicts.append(
                TargetVerdict(
                    f"{node} node CPU per exchange <= {NODE_TO_RELAY_CPU:g}x lean relay's "
                    f"per proxy, concurrency {key}",
                    f"{gateway_cpu[node]:.3f} ms vs {relay:.3f} ms = {ratio:.2f}x",
                    ratio <= NODE_TO_RELAY_CPU,
                )
            )
    top = levels.get("64")
    if top is not None:
        rate = top["gateway"]["exchanges_per_s"] / max(top["relay"]["exchanges_per_s"], 1e-9)
        verdicts.append(
            TargetVerdict(
                f"throughput at concurrency 64 >= {RATE_TO_RELAY:g} of the lean relay pair",
                f"{top['gateway']['exchanges_per_s']:.0f} vs {top['relay']['exchanges_per_s']:.0f}"
                f" ex/s = {rate:.2f}",
                rate >= RATE_TO_RELAY,
            )
        )
    else:
        verdicts.append(TargetVerdict("throughput at concurrency 64", "level 64 not run", None))
    single = levels.get("1")
    if single is not None and "added_latency_ms" in single:
        added = single["added_latency_ms"]
        verdicts.append(
            TargetVerdict(
                f"added latency over direct at concurrency 1 <= {ADDED_P50_MS:g} ms p50, "
                f"<= {ADDED_P99_MS:g} ms p99",
                f"p50 {added['p50']:.2f} ms, p99 {added['p99']:.2f} ms",
                added["p50"] <= ADDED_P50_MS and added["p99"] <= ADDED_P99_MS,
            )
        )
    else:
        verdicts.append(TargetVerdict("added latency at concurrency 1", "level 1 not run", None))
    soak = report.get("soak")
    memory = report.get("memory_mb")
    if soak is not None and memory is not None and soak["ok"] >= SOAK_FOR_RSS:
        rss = max(memory["consumer"]["rss"], memory["provider"]["rss"])
        verdicts.append(
            TargetVerdict(
                f"node RSS <= {NODE_RSS_MB:g} MB after {SOAK_FOR_RSS:,} exchanges",
                f"{rss:.1f} MB after {soak['ok']:,}",
                rss <= NODE_RSS_MB,
            )
        )
    else:
        verdicts.append(
            TargetVerdict(
                f"node RSS after {SOAK_FOR_RSS:,} exchanges", "no soak of that size", None
            )
        )
    registry = report.get("registry")
    if registry is not None:
        worst = max(level["cpu_ms_per_lookup"] for level in registry["levels"].values())
        verdicts.append(
            TargetVerdict(
                f"sample registry <= {REGISTRY_CPU_MS:g} ms CPU per lookup",
                f"{worst:.3f} ms (the highest of its levels)",
                worst <= REGISTRY_CPU_MS,
            )
        )
    else:
        verdicts.append(TargetVerdict("sample registry CPU per lookup", "not run", None))
    relays = [
        per_proxy(level["relay"]["cpu_ms_per_exchange"], ("front", "back"))
        for key, level in levels.items()
        if int(key) > 1
    ]
    if relays:
        verdicts.append(
            TargetVerdict(
                f"lean relay <= {RELAY_CPU_MS:g} ms CPU per proxy under load",
                ", ".join(f"{r:.3f} ms" for r in relays),
                max(relays) <= RELAY_CPU_MS,
            )
        )
    verdicts.append(
        TargetVerdict(
            "offline audit verification >= 0.6 of signatures alone",
            "measured by `gateway audit bench` (make bench runs it)",
            None,
        )
    )
    return verdicts


def render(verdicts: list[TargetVerdict]) -> str:
    return "\n".join(["\nperformance targets", *(v.line() for v in verdicts)])
