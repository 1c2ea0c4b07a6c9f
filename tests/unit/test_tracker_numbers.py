"""The project speaks of itself, not of a tracker's numbers.

A reader of README.md, docs/, gateway/ or registries/ cannot follow "see issue 17": the
number means nothing outside one tracker, and the text must say what it means instead.
``X-Road-Issue`` (the protocol's header for a case number) is a word of the protocol,
not a tracker reference, and stays allowed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("README.md", "docs", "gateway", "registries")
BINARY = frozenset({".png", ".jpg", ".jpeg", ".gif", ".ico", ".sqlite", ".db", ".pyc", ".der"})

TRACKER_NUMBER = re.compile(r"(?<![-\w])issues?\b[\s#-]*\d+", re.IGNORECASE)
"""``issue`` (or ``issues``) followed by a number, not as the end of ``X-Road-Issue``."""


def mentions(text: str) -> list[str]:
    """Each tracker reference in ``text``, as ``line N: match``."""
    return [
        f"line {number}: {found.group(0)!r}"
        for number, line in enumerate(text.splitlines(), start=1)
        for found in TRACKER_NUMBER.finditer(line)
    ]


def _files() -> list[Path]:
    found: list[Path] = []
    for name in SCANNED:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        found.extend(
            p
            for p in candidates
            if p.is_file() and p.suffix.lower() not in BINARY and "__pycache__" not in p.parts
        )
    return found


def test_no_text_names_a_tracker_number() -> None:
    found = {
        str(path.relative_to(ROOT)): hits
        for path in _files()
        if (hits := mentions(path.read_text("utf-8", errors="replace")))
    }
    assert not found, f"say what is meant instead of a tracker number: {found}"


def test_the_scan_reads_the_texts() -> None:
    """Not vacuous: the scan sees the README, the docs and both packages' sources."""
    names = {str(p.relative_to(ROOT)) for p in _files()}
    assert {"README.md", "docs/protocol.md", "gateway/core/errors.py"} <= names
    assert any(n.startswith("registries/") and n.endswith(".py") for n in names)


@pytest.mark.parametrize(
    "text",
    ["see issue 17", "Issue 7 says", "ISSUE #12", "issues 11-14", "(issue-3)", "issue\t4"],
)
def test_a_tracker_number_is_flagged(text: str) -> None:
    assert mentions(text)


@pytest.mark.parametrize(
    "text",
    [
        "X-Road-Issue: GA-2026-4711",
        "`X-Road-Issue` (≤ 1024)",
        "X-Road-Issue 1024",
        "issued 2026-03-14",
        "an issue of the certificate",
        "tissue 5",
    ],
)
def test_protocol_words_are_not_flagged(text: str) -> None:
    assert mentions(text) == []
