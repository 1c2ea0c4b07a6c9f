"""The bench judges the performance targets against the baselines of the same run, and
reports a target whose figure the run did not take as not measured, never as met."""

from __future__ import annotations

from typing import Any

from gateway.sandbox.bench.targets import judge


def _level(node_cpu: float, relay_cpu: float, gateway_rate: float, relay_rate: float) -> Any:
    return {
        "relay": {
            "exchanges_per_s": relay_rate,
            "cpu_ms_per_exchange": {"front": relay_cpu, "back": relay_cpu},
        },
        "gateway": {
            "exchanges_per_s": gateway_rate,
            "cpu_ms_per_exchange": {"consumer": node_cpu, "provider": node_cpu},
        },
        "added_latency_ms": {"p50": 1.5, "p99": 4.0},
    }


def _verdicts(report: dict[str, Any]) -> dict[str, bool | None]:
    return {v.target: v.met for v in judge(report)}


def test_node_cpu_is_judged_against_the_relay_per_proxy_of_the_same_level() -> None:
    report = {"levels": {"1": _level(0.5, 0.2, 100, 200), "64": _level(0.7, 0.2, 500, 1000)}}
    verdicts = _verdicts(report)
    node = {k: v for k, v in verdicts.items() if "node CPU" in k}
    assert len(node) == 4
    assert node["consumer node CPU per exchange <= 3x lean relay's per proxy, concurrency 1"]
    # 0.7 / 0.2 = 3.5x at concurrency 64
    assert not node["provider node CPU per exchange <= 3x lean relay's per proxy, concurrency 64"]
    rate = next(v for k, v in verdicts.items() if k.startswith("throughput"))
    assert rate is True  # 500 / 1000 >= 0.45
    latency = next(v for k, v in verdicts.items() if k.startswith("added latency"))
    assert latency is True


def test_figures_the_run_did_not_take_are_not_measured() -> None:
    report = {"levels": {"16": _level(0.5, 0.2, 100, 200)}}
    verdicts = _verdicts(report)
    assert verdicts["node RSS after 100,000 exchanges"] is None
    assert verdicts["sample registry CPU per lookup"] is None
    assert verdicts["throughput at concurrency 64"] is None
    assert verdicts["added latency at concurrency 1"] is None


def test_sample_registry_and_lean_relay_targets() -> None:
    report = {
        "levels": {"64": _level(0.5, 0.3, 100, 200)},
        "registry": {"levels": {"1": {"cpu_ms_per_lookup": 0.4}, "16": {"cpu_ms_per_lookup": 0.6}}},
        "soak": {"ok": 100_000},
        "memory_mb": {"consumer": {"rss": 120.0}, "provider": {"rss": 160.0}},
    }
    verdicts = _verdicts(report)
    assert verdicts["sample registry <= 0.5 ms CPU per lookup"] is False  # its worst level
    assert verdicts["lean relay <= 0.25 ms CPU per proxy under load"] is False
    assert verdicts["node RSS <= 150 MB after 100,000 exchanges"] is False
