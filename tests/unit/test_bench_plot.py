"""The bench's SVG figure and the large bodies' memory bound: pure functions of a report."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from gateway.sandbox.bench.large import COPIES, memory_bound
from gateway.sandbox.bench.plot import plot_report, series_from_report

SVG = "{http://www.w3.org/2000/svg}"


def _figures(rate: float, p99: float) -> dict[str, float]:
    return {"exchanges_per_s": rate, "p99_ms": p99}


REPORT = {
    "started": "2026-12-07T12:00:00+00:00",
    "settings": {"body_bytes": 1024, "loadgen": "wrk"},
    "levels": {
        # out of order on purpose: the series follow the concurrency, not the keys
        "16": {
            "direct": _figures(3000, 9),
            "relay": _figures(900, 30),
            "gateway": _figures(280, 80),
            "ratios": {"gateway_to_relay": 0.3},
        },
        "1": {
            "direct": _figures(1000, 2),
            "nginx": _figures(800, 3),
            "relay": _figures(500, 4),
            "gateway": _figures(90, 18),
        },
        "4": {
            "direct": _figures(2000, 4),
            "nginx": _figures(1600, 5),
            "relay": _figures(700, 8),
            "gateway": _figures(200, 30),
        },
    },
}


def test_series_follow_concurrency_and_skip_missing_scenarios() -> None:
    series = {s.name: s.points for s in series_from_report(REPORT, "exchanges_per_s")}
    assert list(series) == ["direct", "nginx", "relay", "gateway"]
    assert series["gateway"] == [(1.0, 90.0), (4.0, 200.0), (16.0, 280.0)]
    assert series["nginx"] == [(1.0, 800.0), (4.0, 1600.0)]  # no nginx at 16


def test_plot_is_valid_svg_with_a_line_per_scenario_in_each_panel() -> None:
    root = ET.fromstring(plot_report(REPORT))  # noqa: S314 - our own output
    assert root.tag == f"{SVG}svg"
    lines = root.findall(f"{SVG}polyline")
    names = [line.get("data-name") for line in lines]
    assert names == ["direct", "nginx", "relay", "gateway"] * 2  # throughput, then p99
    for line in lines:
        points = [p.split(",") for p in (line.get("points") or "").split()]
        expected = 2 if line.get("data-name") == "nginx" else 3
        assert len(points) == expected
        assert all(float(x) >= 0 and float(y) >= 0 for x, y in points)
    # throughput grows with concurrency, so each throughput line rises (y shrinks in SVG)
    gateway = [float(p.split(",")[1]) for p in (lines[3].get("points") or "").split()]
    assert gateway == sorted(gateway, reverse=True)
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert {"direct", "nginx", "relay", "gateway", "1", "4", "16"} <= texts
    assert "p99 latency (ms)" in texts
    assert "throughput (exchanges/s)" in texts


def test_memory_bound_holds_within_the_copies_and_not_beyond() -> None:
    mib = 2**20
    before = 100 * mib
    within = before + COPIES * 4 * mib
    result = memory_bound(
        {"consumer": (before, within), "provider": (before, within + 1)},
        concurrency=4,
        size=mib,
        peak_reset=True,
    )
    consumer, provider = result["nodes"]["consumer"], result["nodes"]["provider"]
    assert consumer["holds"] is True
    assert consumer["bodies_in_flight"] == COPIES
    assert consumer["bound_mb"] == 100 + COPIES * 4
    assert provider["holds"] is False


def test_request_body_is_exactly_the_size_asked() -> None:
    """A 10 MiB body must be 10 MiB, not a byte more: the node's default limit is 10 MiB."""
    from gateway.sandbox.bench.runner import _request_body

    for size in (1024, 65536, 10 * 2**20):
        assert len(_request_body(size)) == size
