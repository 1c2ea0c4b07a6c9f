"""The bench's figure: throughput and p99 against concurrency, one line per scenario.

Hand-written SVG like the soak's (:mod:`gateway.sandbox.faults.plot`, whose colours and
``Series`` it shares): the project has no plotting dependency. Concurrency levels grow
by powers (1, 4, 16, 64), so the x axis is logarithmic with a tick at each level, and
the y axes are logarithmic by decades.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

from gateway.sandbox.faults.plot import COLOURS, Series

WIDTH, PANEL_HEIGHT, LEFT, TOP, GAP, LEGEND = 760, 220, 70, 40, 60, 130
ORDER = ("direct", "nginx", "relay", "gateway")


def series_from_report(report: dict[str, Any], key: str) -> list[Series]:
    """One series per scenario of ``report["levels"]``: (concurrency, ``key``) points."""
    points: dict[str, list[tuple[float, float]]] = {}
    for level, figures in sorted(report["levels"].items(), key=lambda kv: int(kv[0])):
        for name in ORDER:
            if name in figures:
                points.setdefault(name, []).append((float(level), float(figures[name][key])))
    return [Series(name, pts) for name, pts in points.items()]


def svg_levels(title: str, panels: Sequence[tuple[str, Sequence[Series]]]) -> str:
    """Stacked panels over one logarithmic concurrency axis; a marker at every point."""
    xs = sorted({x for _, series in panels for s in series for x, _ in s.points}) or [1.0]
    lx0, lx1 = math.log(xs[0]), math.log(xs[-1])
    span = (lx1 - lx0) or 1.0
    plot_w = WIDTH - LEFT - LEGEND - 20
    height = TOP + len(panels) * (PANEL_HEIGHT + GAP)
    names = [n for n in ORDER if any(s.name == n for _, ser in panels for s in ser)]
    names += sorted({s.name for _, ser in panels for s in ser} - set(names))
    colour = {n: COLOURS[i % len(COLOURS)] for i, n in enumerate(names)}
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{LEFT}" y="20" font-size="14">{escape(title)}</text>',
    ]

    def px(x: float) -> float:
        return LEFT + (math.log(x) - lx0) / span * plot_w if len(xs) > 1 else LEFT + plot_w / 2

    for i, (label, series) in enumerate(panels):
        top = TOP + i * (PANEL_HEIGHT + GAP)
        # Logarithmic in y too, by whole decades: the scenarios differ by orders of
        # magnitude, and a linear axis flattens the gateway's line against the floor.
        ys = [y for s in series for _, y in s.points if y > 0] or [1.0]
        d0, d1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
        d1 = max(d1, d0 + 1)

        def py(y: float, top: float = top, d0: int = d0, d1: int = d1) -> float:
            frac = (math.log10(max(y, 10.0**d0)) - d0) / (d1 - d0)
            return top + PANEL_HEIGHT - frac * PANEL_HEIGHT

        out.append(
            f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_HEIGHT}" '
            'fill="none" stroke="#999"/>'
        )
        out.append(f'<text x="{LEFT}" y="{top - 6}">{escape(label)}</text>')
        for d in range(d0, d1 + 1):
            y = py(10.0**d)
            out.append(
                f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            )
            out.append(
                f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{10.0**d:,.6g}</text>'
            )
        for x in xs:
            out.append(
                f'<text x="{px(x):.1f}" y="{top + PANEL_HEIGHT + 14}" '
                f'text-anchor="middle">{x:g}</text>'
            )
        out.append(
            f'<text x="{LEFT + plot_w / 2:.1f}" y="{top + PANEL_HEIGHT + 28}" '
            'text-anchor="middle">concurrency</text>'
        )
        for s in series:
            pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in s.points)
            out.append(
                f'<polyline class="series" data-name="{escape(s.name)}" points="{pts}" '
                f'fill="none" stroke="{colour[s.name]}" stroke-width="1.5"/>'
            )
            for x, y in s.points:
                out.append(
                    f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{colour[s.name]}"/>'
                )
    for j, name in enumerate(names):
        y = TOP + 14 * j + 10
        out.append(
            f'<rect x="{WIDTH - LEGEND}" y="{y - 9}" width="10" height="10" fill="{colour[name]}"/>'
        )
        out.append(f'<text x="{WIDTH - LEGEND + 15}" y="{y}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def plot_report(report: dict[str, Any]) -> str:
    """The bench's figure of one report: exchanges/s and p99 latency per level."""
    body = report.get("settings", {}).get("body_bytes", 0)
    started = report.get("started", "")
    return svg_levels(
        f"gateway bench {started}, {body} B bodies, load from "
        f"{report.get('settings', {}).get('loadgen', '?')}",
        [
            ("throughput (exchanges/s)", series_from_report(report, "exchanges_per_s")),
            ("p99 latency (ms)", series_from_report(report, "p99_ms")),
        ],
    )
