"""A plot as SVG text, by hand: the project has no plotting dependency, and a soak's
figure (a few lines per panel over time) needs none."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
WIDTH, PANEL_HEIGHT, LEFT, TOP, GAP = 900, 180, 70, 40, 50


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    points: list[tuple[float, float]]


def svg_panels(
    title: str, panels: Sequence[tuple[str, Sequence[Series]]], marks: Sequence[float]
) -> str:
    """Stacked panels sharing one time axis (seconds); ``marks``: vertical lines."""
    xs = [x for _, series in panels for s in series for x, _ in s.points] or [0.0, 1.0]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    plot_w = WIDTH - LEFT - 180
    height = TOP + len(panels) * (PANEL_HEIGHT + GAP)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{LEFT}" y="20" font-size="14">{escape(title)}</text>',
    ]
    names = sorted({s.name for _, series in panels for s in series})
    colour = {n: COLOURS[i % len(COLOURS)] for i, n in enumerate(names)}
    for i, (label, series) in enumerate(panels):
        top = TOP + i * (PANEL_HEIGHT + GAP)
        ys = [y for s in series for _, y in s.points] or [0.0]
        y1 = max(max(ys), 1e-9) * 1.1

        def px(x: float) -> float:
            return LEFT + (x - x0) / (x1 - x0) * plot_w

        def py(y: float, top: float = top, y1: float = y1) -> float:
            return top + PANEL_HEIGHT - y / y1 * PANEL_HEIGHT

        out.append(
            f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_HEIGHT}" '
            'fill="none" stroke="#999"/>'
        )
        out.append(f'<text x="{LEFT}" y="{top - 6}">{escape(label)}</text>')
        out.append(f'<text x="{LEFT - 6}" y="{top + 10}" text-anchor="end">{y1:.0f}</text>')
        out.append(f'<text x="{LEFT - 6}" y="{top + PANEL_HEIGHT}" text-anchor="end">0</text>')
        for m in marks:
            out.append(
                f'<line x1="{px(m):.1f}" x2="{px(m):.1f}" y1="{top}" y2="{top + PANEL_HEIGHT}" '
                'stroke="#bbb" stroke-dasharray="3,3"/>'
            )
        for s in series:
            pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in s.points)
            out.append(f'<polyline points="{pts}" fill="none" stroke="{colour[s.name]}"/>')
        bottom = top + PANEL_HEIGHT + 14
        out.append(f'<text x="{LEFT}" y="{bottom}">{x0:.0f} s</text>')
        out.append(f'<text x="{LEFT + plot_w}" y="{bottom}" text-anchor="end">{x1:.0f} s</text>')
    for j, name in enumerate(names):
        y = TOP + 14 * j + 10
        out.append(
            f'<rect x="{WIDTH - 170}" y="{y - 9}" width="10" height="10" fill="{colour[name]}"/>'
        )
        out.append(f'<text x="{WIDTH - 155}" y="{y}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
