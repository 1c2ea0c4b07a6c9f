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
from typing import TYPE_CHECKING, Any

from gateway.sandbox.bench.soak import growth_mb

if TYPE_CHECKING:
    from gateway.sandbox.bench.logsize import LogSizeResult

NODE_TO_RELAY_CPU = 3.0
RATE_TO_RELAY = 0.45
ADDED_P50_MS = 2.0
ADDED_P99_MS = 5.0
NODE_RSS_MB = 150.0
SOAK_FOR_RSS = 100_000
RSS_FLAT_MB = 5.0
"""The most either node's RSS may grow over the soak's second half and count as flat."""
REGISTRY_CPU_MS = 0.5
RELAY_CPU_MS = 0.25
AUDIT_TO_SIGNATURES = 0.6
PROOF_MS = 10.0
PROOF_AT = 10_000_000
STARTUP_FLAT = 2.0
"""The log's start-up at the largest size may take this multiple of the smallest's
(plus a millisecond of noise) and still count as flat."""


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


def _worst_registry(registry: dict[str, Any]) -> tuple[str, str, float] | None:
    """The highest CPU per request of any sample registry at any level: (its title, the
    level, ms); None when none was measured."""
    found = [
        (sample["title"], concurrency, level["cpu_ms_per_lookup"])
        for sample in registry["registries"].values()
        for concurrency, level in sample["levels"].items()
    ]
    return max(found, key=lambda item: item[2]) if found else None


def judge(report: dict[str, Any]) -> list[TargetVerdict]:
    levels: dict[str, Any] = report["levels"]
    verdicts: list[TargetVerdict] = []
    floor = report.get("floor")
    for key in sorted(levels, key=int):
        if key not in ("1", "64"):
            continue
        level = levels[key]
        relay = per_proxy(level["relay"]["cpu_ms_per_exchange"], ("front", "back"))
        gateway_cpu = level["gateway"]["cpu_ms_per_exchange"]
        # What one signature and one verification alone cost, against the same relay:
        # the part of the ratio that no node that signs can spend less on.
        alone = (
            f"; signatures alone {floor['per_node_ms']:.3f} ms = "
            f"{floor['per_node_ms'] / relay:.2f}x"
            if floor is not None and relay
            else ""
        )
        for node in ("consumer", "provider"):
            ratio = gateway_cpu[node] / relay if relay else float("inf")
            verdicts.append(
                TargetVerdict(
                    f"{node} node CPU per exchange <= {NODE_TO_RELAY_CPU:g}x lean relay's "
                    f"per proxy, concurrency {key}",
                    f"{gateway_cpu[node]:.3f} ms vs {relay:.3f} ms = {ratio:.2f}x{alone}",
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
    verdicts.append(judge_rss(report.get("soak"), report.get("memory_mb")))
    registry = report.get("registry")
    highest = None if registry is None else _worst_registry(registry)
    if highest is not None:
        title, concurrency, worst = highest
        verdicts.append(
            TargetVerdict(
                f"sample registry <= {REGISTRY_CPU_MS:g} ms CPU per lookup",
                f"{worst:.3f} ms (the highest of every registry and level: {title}, "
                f"concurrency {concurrency})",
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
            f"offline audit verification >= {AUDIT_TO_SIGNATURES:g} of signatures alone",
            "measured by `gateway audit bench` (make bench runs it)",
            None,
        )
    )
    return verdicts


def judge_audit(
    entries_per_s: float,
    signatures_per_s: float,
    verify_cpu_s: float | None = None,
    signatures_cpu_s: float | None = None,
) -> TargetVerdict:
    """The verifier's rate over a bundle against its signatures alone, same run, same
    processes. With CPU seconds given, the ratio is judged on CPU per entry: on a shared
    machine the wall rates measure the neighbours' load as much as the verifier, and on
    idle cores the rates stand in the ratio of the CPU each pass needs."""
    wall = entries_per_s / signatures_per_s
    measured = f"{entries_per_s:.0f} entries/s vs {signatures_per_s:.0f} signatures/s = {wall:.2f}"
    ratio = wall
    if verify_cpu_s and signatures_cpu_s:
        ratio = signatures_cpu_s / verify_cpu_s
        measured += f"; by CPU {signatures_cpu_s:.2f} s vs {verify_cpu_s:.2f} s = {ratio:.2f}"
    return TargetVerdict(
        f"offline audit verification >= {AUDIT_TO_SIGNATURES:g} of signatures alone",
        measured,
        ratio >= AUDIT_TO_SIGNATURES,
    )


def judge_rss(soak: dict[str, Any] | None, memory: dict[str, Any] | None) -> TargetVerdict:
    """RSS after the soak within the bound, and flat: grown by at most ``RSS_FLAT_MB``
    over the soak's second half (a soak from before the readings has no second half)."""
    target = f"node RSS <= {NODE_RSS_MB:g} MB after {SOAK_FOR_RSS:,} exchanges, flat"
    if soak is None or memory is None or soak["ok"] < SOAK_FOR_RSS:
        return TargetVerdict(target, "no soak of that size", None)
    rss = max(memory["consumer"]["rss"], memory["provider"]["rss"])
    measured = f"{rss:.1f} MB after {soak['ok']:,}"
    if "rss_mb" not in soak:  # too large is known without the readings; flat is not
        too_large = False if rss > NODE_RSS_MB else None
        return TargetVerdict(target, measured + ", not read as it ran", too_large)
    growth = {node: growth_mb(soak, node) for node in ("consumer", "provider")}
    measured += ", second half " + ", ".join(f"{n} {g:+.1f} MB" for n, g in growth.items())
    flat = max(growth.values()) <= RSS_FLAT_MB
    return TargetVerdict(target, measured, rss <= NODE_RSS_MB and flat)


def judge_log_sizes(results: list[LogSizeResult]) -> list[TargetVerdict]:
    """Proofs from stored subtrees <= 10 ms at 10^7 entries (median wall time of each
    kind), and the log's start-up flat from the smallest size to the largest. A run that
    stopped short of 10^7 reports its largest size as measured, not the target as met."""
    largest = max(results, key=lambda r: r.entries)
    smallest = min(results, key=lambda r: r.entries)
    verdicts = []
    for kind in ("inclusion", "consistency"):
        timing = getattr(largest, kind)
        measured = (
            f"median {timing.median_ms:.2f} ms (CPU {timing.cpu_median_ms:.2f} ms), worst "
            f"{timing.worst_ms:.1f} ms, peak {timing.peak_kib:.0f} KiB at {largest.entries:,}"
        )
        met = timing.median_ms <= PROOF_MS if largest.entries >= PROOF_AT else None
        verdicts.append(
            TargetVerdict(f"{kind} proof <= {PROOF_MS:g} ms at {PROOF_AT:,} entries", measured, met)
        )

    def start(r: LogSizeResult) -> float:
        return r.startup_ms + r.replay_preload_ms

    verdicts.append(
        TargetVerdict(
            "node start-up's log reads (log, replay guard) flat as the log grows",
            f"{start(smallest):.1f} ms at {smallest.entries:,}, "
            f"{start(largest):.1f} ms at {largest.entries:,}",
            start(largest) <= STARTUP_FLAT * start(smallest) + 1.0
            if largest.entries > smallest.entries
            else None,
        )
    )
    return verdicts


def render(verdicts: list[TargetVerdict]) -> str:
    return "\n".join(["\nperformance targets", *(v.line() for v in verdicts)])
