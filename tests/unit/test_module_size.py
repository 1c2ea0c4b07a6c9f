"""No module of ``gateway/`` grows past about 600 lines unless an ADR says why.

A module that size holds more than one concept, and a reader looking for one of them
has to read the others (docs/architecture.md). The limit is a prompt to split along a
seam a reader would recognise, not to cut mechanically. A module that really is one
concept is listed in ``LONGER`` with the ADR that says why; the only other entries are
sandbox modules still to be split (never a product module).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import gateway

PACKAGE_ROOT = Path(gateway.__file__).resolve().parent
MAX_LINES = 600

LONGER: dict[str, str] = {
    "gateway/sandbox/localnet.py": "sandbox: the loopback federation, still to be split",
}
"""Modules allowed past the limit: path -> why (an ADR for a product module)."""


def _relative(path: Path) -> str:
    return str(path.relative_to(PACKAGE_ROOT.parent))


def _modules() -> list[Path]:
    return sorted(PACKAGE_ROOT.rglob("*.py"))


def _lines(path: Path) -> int:
    return len(path.read_text("utf-8").splitlines())


@pytest.mark.parametrize("path", _modules(), ids=_relative)
def test_no_module_is_over_the_limit(path: Path) -> None:
    relative = _relative(path)
    if relative in LONGER:
        return
    lines = _lines(path)
    assert lines <= MAX_LINES, (
        f"{relative} has {lines} lines (limit {MAX_LINES}): split it along a seam, or "
        "write an ADR that says why it is one module and list it in LONGER"
    )


def test_a_product_module_is_only_longer_with_an_adr() -> None:
    for relative, why in LONGER.items():
        if not relative.startswith("gateway/sandbox/"):
            assert "docs/adr/" in why, f"{relative} is exempt without an ADR: {why!r}"


def test_the_scan_reads_the_package() -> None:
    """The parametrised check is not vacuous: it sees the modules and counts their lines."""
    names = {_relative(p) for p in _modules()}
    assert {"gateway/messagelog/writer.py", "gateway/core/envelope.py"} <= names
    assert _lines(PACKAGE_ROOT / "messagelog" / "writer.py") > 100
