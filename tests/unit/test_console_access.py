"""The console's accessibility rules that can be read off its templates and stylesheet:
every form control has a label, and every colour pair the stylesheet sets for text keeps
WCAG 2.1's AA contrast (4.5:1). Keyboard use and focus are exercised in Chromium
(tests/integration/test_console_node.py)."""

from __future__ import annotations

import re
from importlib import resources

import pytest

TEMPLATES = resources.files("gateway.console").joinpath("templates")
CSS = resources.files("gateway.console").joinpath("static/console.css").read_text("utf-8")
CONTROL = re.compile(r"<(input|select|textarea)\b([^>]*)>", re.S)


def _attribute(tag: str, name: str) -> str | None:
    found = re.search(rf'\b{name}="([^"]*)"', tag)
    return None if found is None else found.group(1)


def _controls() -> list[tuple[str, str]]:
    found = []
    for template in TEMPLATES.iterdir():
        if template.name.endswith(".html"):
            text = template.read_text("utf-8")
            found += [(template.name, m.group(2)) for m in CONTROL.finditer(text)]
    return found


def test_every_form_control_has_a_label() -> None:
    controls = [(name, tag) for name, tag in _controls() if _attribute(tag, "type") != "hidden"]
    assert len(controls) > 20, "the templates' controls were not found"
    for name, tag in controls:
        text = TEMPLATES.joinpath(name).read_text("utf-8")
        if _attribute(tag, "aria-label") or re.search(rf"<label>\s*<\w+{re.escape(tag)}>", text):
            continue  # named by aria-label, or wrapped in its label
        ident = _attribute(tag, "id")
        assert ident, f"{name}: a control without id or aria-label: {tag}"
        assert f'<label for="{ident}"' in text, f"{name}: no label for {ident}"


def _rgb(colour: str) -> tuple[float, float, float]:
    colour = colour.lstrip("#")
    if len(colour) == 3:
        colour = "".join(c * 2 for c in colour)
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (0, 2, 4))
    return r, g, b


def _luminance(colour: str) -> float:
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(one: str, two: str) -> float:
    light, dark = sorted((_luminance(one), _luminance(two)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _variables() -> dict[str, str]:
    return dict(re.findall(r"--([a-z]+):\s*(#[0-9a-fA-F]{3,6})", CSS))


def _background(selector: str) -> str:
    found = re.search(rf"{re.escape(selector)}\s*\{{[^}}]*background:\s*(#[0-9a-fA-F]{{3,6}})", CSS)
    assert found is not None, selector
    return found.group(1)


def test_the_contrast_ratios_of_known_values() -> None:
    assert contrast("#000", "#fff") == pytest.approx(21.0)
    assert contrast("#767676", "#fff") == pytest.approx(4.54, abs=0.01)


def test_text_colours_keep_wcag_aa_contrast() -> None:
    v = _variables()
    assert {"ink", "paper", "accent", "bad", "good"} <= set(v)
    pairs = {
        "text": (v["ink"], v["paper"]),
        "links": (v["accent"], v["paper"]),
        "a failing check": (v["bad"], v["paper"]),
        "a passing check": (v["good"], v["paper"]),
        "button text": ("#fff", v["accent"]),
        "table heads": (v["ink"], _background("thead th")),
        "notices": (v["ink"], _background(".notice")),
        "error notices": (v["ink"], _background(".notice.error")),
        "ok notices": (v["ink"], _background(".notice.ok")),
        "the first bad piece": ("#000", _background("mark")),
        "hints": (re.search(r"\.hint \{ color: (#[0-9a-f]+)", CSS).group(1), v["paper"]),  # type: ignore[union-attr]
    }
    for what, (fore, back) in pairs.items():
        assert contrast(fore, back) >= 4.5, f"{what}: {fore} on {back}"
    # Borders and the focus ring are not text: WCAG 1.4.11 asks 3:1 of them. The ring is
    # drawn 2px off the control, on the page's paper.
    assert contrast(v["line"], v["paper"]) >= 3.0
    ring = re.search(r":focus[^{]*\{ outline: 3px solid (#[0-9a-fA-F]{3,6})", CSS)
    assert ring is not None and "outline-offset: 2px" in CSS
    assert contrast(ring.group(1), v["paper"]) >= 3.0
