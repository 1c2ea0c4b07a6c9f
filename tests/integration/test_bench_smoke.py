"""A small run of the benchmark: it runs end to end and the logs hold every success.

No figure is asserted here: speed is measured by ``make bench``, never in a test.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gateway.sandbox.bench import nginx, wrk
from gateway.sandbox.bench.runner import WARM_UP_SECONDS, run_bench

pytestmark = pytest.mark.integration


def test_bench_runs_and_every_counted_success_is_logged(tmp_path: Path) -> None:
    report = run_bench(
        levels=(4,),
        duration=0.5,
        repeats=1,
        body_bytes=1024,
        large_bodies=(65536,),
        large_concurrency=2,
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
    assert report["settings"]["warm_up_s"] == WARM_UP_SECONDS
    for scenario in scenarios:
        assert level[scenario]["ok"] > 0, scenario
        assert level[scenario]["errors"] == 0, level[scenario]["first_error"]
        assert level[scenario]["warm_up_ok"] > 0, scenario  # each run was warmed up
        assert set(level[scenario]["cpu_ms_per_exchange"]) >= {"registry", "loadgen"}
    assert set(level["gateway"]["cpu_ms_per_exchange"]) >= {"consumer", "provider"}
    for key in ("relay_cpu_ms_per_proxy", "consumer_cpu_to_relay_proxy"):
        assert level["ratios"][key] > 0
    registries = report["registry"]["registries"]
    assert set(registries) == {
        "melderegister-lippstadt", "melderegister-iserlohn", "ihk", "ariregister",
    }  # fmt: skip
    for sample in registries.values():
        if "skipped" in sample:  # the IHK's new notification per request needs wrk
            assert wrk.executable() is None
            continue
        assert set(sample["levels"]) == {"1", "16"}
        for r in sample["levels"].values():
            assert r["errors"] == 0 and r["cpu_ms_per_lookup"] > 0, r["first_error"]
    soak = report["soak"]
    assert soak["ok"] == 200
    # RSS of both nodes read before the soak and after each of its chunks.
    readings = soak["rss_mb"]
    assert [r["exchanges"] for r in readings] == list(range(0, 201, 20))
    assert all(r["consumer"] > 0 and r["provider"] > 0 for r in readings)
    large = report["large_bodies"]
    assert large["concurrency"] == 2
    sized = large["sizes"]["65536"]
    for scenario in ("direct", "relay", "gateway"):
        assert sized[scenario]["ok"] > 0, scenario
        assert sized[scenario]["errors"] == 0, sized[scenario]["first_error"]
        assert sized[scenario]["time_ms"] > 0
        assert sized[scenario]["warm_up_ok"] > 0, scenario
    assert sized["ratio_gateway_to_relay_time"] > 0  # None when a scenario failed
    for node in ("consumer", "provider"):
        assert sized["gateway"]["cpu_ms_per_exchange"][node] > 0
        memory = sized["memory"]["nodes"][node]
        assert memory["peak_rss_mb"] >= memory["rss_before_mb"] > 0
        assert memory["bound_mb"] > memory["rss_before_mb"]
    check = report["log_check"]
    assert check["successes_counted"] >= 200 + level["gateway"]["ok"]
    assert check["consumer_missing"] == 0
    assert check["provider_missing"] == 0
    written = list((tmp_path / "results").glob("bench-*.json"))
    assert len(written) == 1
    figure = ET.parse(written[0].with_suffix(".svg")).getroot()  # noqa: S314 - our own output
    lines = {line.get("data-name") for line in figure.iter("{http://www.w3.org/2000/svg}polyline")}
    assert lines == set(scenarios)
    saved = json.loads(written[0].read_text())
    assert saved["machine"]["cores"] >= 1
    assert saved["machine"]["libraries"]["aiohttp"]
