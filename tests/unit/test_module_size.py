"""No module of ``gateway/`` is over about 600 lines unless an ADR says why.

A module a newcomer can read in one sitting has one concern; past that size a module
usually holds two, and the second one deserves its own name (docs/architecture.md). A
module may stay longer when an ADR in ``docs/adr/`` names its path and says why in the
words "600 lines".
"""

from __future__ import annotations

from pathlib import Path

import pytest

import gateway

PACKAGE_ROOT = Path(gateway.__file__).resolve().parent
REPOSITORY_ROOT = PACKAGE_ROOT.parent
ADR_DIR = REPOSITORY_ROOT / "docs" / "adr"
LIMIT = 600
REASON = "600 lines"

BEING_SPLIT = frozenset(
    {
        "gateway/audit/bundle.py",
        "gateway/core/envelope.py",
        "gateway/messagelog/sqlite.py",
        "gateway/messagelog/writer.py",
        "gateway/pki/tsa.py",
    }
)
"""Modules over the limit whose split is under way. Each leaves this set when it is
split: ``test_modules_being_split_are_still_over_the_limit`` fails once one is within
the limit, so the set cannot hide a module that grows back."""


def line_count(path: Path) -> int:
    return len(path.read_text("utf-8").splitlines())


def excused(module: str, adrs: list[str]) -> bool:
    """Whether an ADR names ``module`` (its path from the repository root) and gives the
    reason it is longer than the limit."""
    return any(module in text and REASON in text for text in adrs)


def oversized(sizes: dict[str, int], adrs: list[str]) -> list[str]:
    """The modules over the limit that no ADR excuses, longest first."""
    over = [m for m, n in sizes.items() if n > LIMIT and not excused(m, adrs)]
    return sorted(over, key=lambda m: (-sizes[m], m))


def _sizes() -> dict[str, int]:
    return {
        path.relative_to(REPOSITORY_ROOT).as_posix(): line_count(path)
        for path in sorted(PACKAGE_ROOT.rglob("*.py"))
    }


def _adrs() -> list[str]:
    return [path.read_text("utf-8") for path in sorted(ADR_DIR.glob("*.md"))]


def test_no_module_of_gateway_is_over_600_lines_without_an_adr() -> None:
    sizes = _sizes()
    assert len(sizes) > 50, "the walk found too few modules"
    found = [m for m in oversized(sizes, _adrs()) if m not in BEING_SPLIT]
    listing = "\n".join(f"{m}: {sizes[m]} lines" for m in found)
    assert not found, f"over {LIMIT} lines, and no ADR says why:\n{listing}"


@pytest.mark.parametrize("module", sorted(BEING_SPLIT))
def test_modules_being_split_are_still_over_the_limit(module: str) -> None:
    path = REPOSITORY_ROOT / module
    assert path.is_file(), f"{module} is gone: remove it from BEING_SPLIT"
    assert line_count(path) > LIMIT, f"{module} is within {LIMIT} lines: remove it from BEING_SPLIT"


# ---------------------------------------------------------------- the checker itself


def test_oversized_names_long_modules_longest_first() -> None:
    sizes = {"gateway/a.py": LIMIT + 1, "gateway/b.py": LIMIT, "gateway/c.py": LIMIT + 50}
    assert oversized(sizes, []) == ["gateway/c.py", "gateway/a.py"]


def test_an_adr_that_names_the_module_and_the_reason_excuses_it() -> None:
    sizes = {"gateway/a.py": LIMIT + 1, "gateway/c.py": LIMIT + 1}
    adr = f"`gateway/a.py` stays over {REASON}: its table reads best in one place."
    assert oversized(sizes, [adr]) == ["gateway/c.py"]


def test_an_adr_that_only_mentions_the_module_does_not_excuse_it() -> None:
    sizes = {"gateway/a.py": LIMIT + 1}
    assert oversized(sizes, ["`gateway/a.py` holds the wiring."]) == ["gateway/a.py"]
