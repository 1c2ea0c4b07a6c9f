"""What ``gateway bench`` prints: each level's table, its ratios to the baselines, the
large bodies and the tail (soak, memory, targets, log check)."""

from __future__ import annotations

from typing import Any

from gateway.sandbox.bench import targets
from gateway.sandbox.bench.soak import render_soak


def ratios(level: dict[str, Any], runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each scenario's rate beside its baselines', and the gateway's per run."""
    gateway = level["gateway"]["exchanges_per_s"]
    ratios: dict[str, Any] = {
        "gateway_to_direct": round(gateway / max(level["direct"]["exchanges_per_s"], 1e-9), 3),
        "gateway_to_relay": round(gateway / max(level["relay"]["exchanges_per_s"], 1e-9), 3),
        "gateway_to_relay_per_run": [
            round(g["exchanges_per_s"] / max(r["exchanges_per_s"], 1e-9), 3)
            for g, r in zip(runs["gateway"], runs["relay"], strict=True)
        ],
    }
    if "nginx" in level:
        nginx_rate = max(level["nginx"]["exchanges_per_s"], 1e-9)
        ratios["gateway_to_nginx"] = round(gateway / nginx_rate, 3)
        ratios["relay_to_nginx"] = round(level["relay"]["exchanges_per_s"] / nginx_rate, 3)
    relay_cpu = targets.per_proxy(level["relay"]["cpu_ms_per_exchange"], ("front", "back"))
    ratios["relay_cpu_ms_per_proxy"] = round(relay_cpu, 4)
    for node in ("consumer", "provider"):
        node_cpu = level["gateway"]["cpu_ms_per_exchange"][node]
        ratios[f"{node}_cpu_to_relay_proxy"] = round(node_cpu / max(relay_cpu, 1e-9), 3)
    if "nginx" in level:
        nginx_cpu = targets.per_proxy(level["nginx"]["cpu_ms_per_exchange"], ("front", "back"))
        ratios["nginx_cpu_ms_per_proxy"] = round(nginx_cpu, 4)
        ratios["relay_cpu_to_nginx_proxy"] = round(relay_cpu / max(nginx_cpu, 1e-9), 3)
    return ratios


def print_level(concurrency: int, level: dict[str, Any]) -> None:
    print(f"\nconcurrency {concurrency}")
    print(
        f"  {'scenario':<9} {'ex/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  "
        "CPU ms per exchange"
    )
    for name in ("direct", "nginx", "relay", "gateway"):
        if name not in level:
            continue
        r = level[name]
        cpu = "  ".join(f"{k} {v:.3f}" for k, v in r["cpu_ms_per_exchange"].items())
        print(
            f"  {name:<9} {r['exchanges_per_s']:>8.0f} {r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f}  {cpu}"
        )
        if r["errors"]:
            print(f"            {r['errors']} errors, first: {r['first_error']}")
    ratios = level["ratios"]
    per_run = ratios["gateway_to_relay_per_run"]
    print(
        f"  ex/s: gateway/direct {ratios['gateway_to_direct']:.3f}   "
        f"gateway/relay {ratios['gateway_to_relay']:.3f} (per run {per_run})"
        + (
            f"   gateway/nginx {ratios['gateway_to_nginx']:.3f}   "
            f"relay/nginx {ratios['relay_to_nginx']:.3f}"
            if "gateway_to_nginx" in ratios
            else ""
        )
    )
    print(
        f"  CPU per proxy: relay {ratios['relay_cpu_ms_per_proxy']:.3f} ms"
        + (
            f", nginx {ratios['nginx_cpu_ms_per_proxy']:.3f} ms "
            f"(relay/nginx {ratios['relay_cpu_to_nginx_proxy']:.2f}x)"
            if "nginx_cpu_ms_per_proxy" in ratios
            else ""
        )
        + f"; consumer node {ratios['consumer_cpu_to_relay_proxy']:.2f}x relay, "
        f"provider node {ratios['provider_cpu_to_relay_proxy']:.2f}x relay"
    )
    if "added_latency_ms" in level:
        added = level["added_latency_ms"]
        print(f"  added latency over direct: p50 {added['p50']:.2f} ms, p99 {added['p99']:.2f} ms")


def print_tail(report: dict[str, Any]) -> None:
    if "soak" in report:
        print(render_soak(report["soak"]))
    after_soak = "the soak" if "soak" in report else "the levels"
    for key, when in (
        ("memory_mb", after_soak),
        ("memory_after_large_bodies_mb", "the large bodies"),
    ):
        if key in report:
            print(f"memory after {when}:")
            for name, mem in report[key].items():
                print(f"  {name:<9} RSS {mem['rss']} MB, peak {mem['peak_rss']} MB")
    print(targets.render(targets.judge(report)))
    check = report["log_check"]
    print(
        f"\nlog check: {check['successes_counted']} successes counted; missing in consumer log "
        f"{check['consumer_missing']}, in provider log {check['provider_missing']}"
    )
