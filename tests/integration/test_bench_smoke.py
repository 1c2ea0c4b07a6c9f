"""A small run of the benchmark: it runs end to end and the logs hold every success.

No figure is asserted here: speed is measured by ``make bench``, never in a test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.sandbox.bench import nginx, wrk
from gateway.sandbox.bench.runner import run_bench

pytestmark = pytest.mark.integration


def test_bench_runs_and_every_counted_success_is_logged(tmp_path: Path) -> None:
    report = run_bench(
        levels=(4,),
        duration=0.5,
        repeats=1,
        body_bytes=1024,
        large_bodies=(65536,),
        soak=200,
        out_dir=tmp_path / "results",
        state_dir=tmp_path / "state",
    )
    level = report["levels"]["4"]
    scenarios = ["direct", "relay", "gateway"]
    if nginx.executable() is not None:
        scenarios.append("nginx")
    else:
        assert any("nginx baseline skipped" in note for note in report["notes"])
    assert sorted(report["settings"]["scenarios"]) == sorted(scenarios)
    assert report["settings"]["loadgen"] == ("wrk" if wrk.executable() else "python")
    for scenario in scenarios:
        assert level[scenario]["ok"] > 0, scenario
        assert level[scenario]["errors"] == 0, level[scenario]["first_error"]
        assert set(level[scenario]["cpu_ms_per_exchange"]) >= {"registry", "loadgen"}
    assert set(level["gateway"]["cpu_ms_per_exchange"]) >= {"consumer", "provider"}
    for key in ("relay_cpu_ms_per_proxy", "consumer_cpu_to_relay_proxy"):
        assert level["ratios"][key] > 0
    registry = report["registry"]["levels"]
    assert set(registry) == {"1", "16"}
    assert all(r["errors"] == 0 and r["cpu_ms_per_lookup"] > 0 for r in registry.values())
    assert report["soak"]["ok"] == 200
    assert report["large_bodies"]["65536"]["gateway"]["errors"] == 0
    check = report["log_check"]
    assert check["successes_counted"] >= 200 + level["gateway"]["ok"]
    assert check["consumer_missing"] == 0
    assert check["provider_missing"] == 0
    written = list((tmp_path / "results").glob("bench-*.json"))
    assert len(written) == 1
    saved = json.loads(written[0].read_text())
    assert saved["machine"]["cores"] >= 1
    assert saved["machine"]["libraries"]["aiohttp"]
