"""Distinct things have distinct names: no two public classes of ``gateway`` share one.

A reader who meets ``Anchor`` should not have to look up which of two unrelated files it
came from (the node's TUF trust root and the auditor's trusted certificates were both
called that). ``SHARED`` lists the names still used twice; it may only shrink.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import gateway

PACKAGE_ROOT = Path(gateway.__file__).resolve().parent

SHARED = frozenset({"Clock", "SystemClock", "Usage", "Node", "OcspEvidence"})
"""Public class names defined in more than one module today."""


def public_classes() -> dict[str, list[str]]:
    """Each public top-level class name of ``gateway`` and the modules that define it."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        for node in ast.parse(path.read_text("utf-8")).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                found[node.name].append(str(path.relative_to(PACKAGE_ROOT.parent)))
    return found


def test_no_new_class_name_is_used_twice() -> None:
    twice = {name: where for name, where in public_classes().items() if len(where) > 1}
    assert set(twice) <= SHARED, {n: w for n, w in twice.items() if n not in SHARED}


def test_the_two_anchors_say_what_they_are() -> None:
    classes = public_classes()
    assert "Anchor" not in classes
    assert "AnchorError" not in classes
    assert classes["ConfigurationAnchor"] == ["gateway/conf/anchor.py"]
    assert classes["AuditTrustAnchor"] == ["gateway/audit/verdict.py"]
