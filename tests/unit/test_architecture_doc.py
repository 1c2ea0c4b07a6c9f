"""docs/architecture.md names files and functions that exist.

A newcomer follows one exchange through the code with the doc's tables ("file:
function" per step); a name renamed or moved without the doc leaves them at a dead end.
Every ``gateway/...py`` the doc names must exist, and every name of the path of one
exchange (``Function``, ``Class.method`` or ``Class.attribute``) must be defined in
``gateway/``.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import gateway

PACKAGE_ROOT = Path(gateway.__file__).resolve().parent
ROOT = PACKAGE_ROOT.parent
DOC = ROOT / "docs" / "architecture.md"
PATH_SECTION = "## The path of one exchange"


@functools.cache
def defined_names(root: Path = PACKAGE_ROOT) -> frozenset[str]:
    """Functions, classes and module constants by name; methods and attributes set in a
    class's body or on ``self`` as ``Class.name``."""
    names: set[str] = set()
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(t.id for t in targets if isinstance(t, ast.Name))
            if isinstance(node, ast.ClassDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                        names.add(f"{node.name}.{inner.name}")
                    elif isinstance(inner, ast.AnnAssign | ast.Assign):
                        targets = inner.targets if isinstance(inner, ast.Assign) else [inner.target]
                        for target in targets:
                            if isinstance(target, ast.Name):
                                names.add(f"{node.name}.{target.id}")
                            elif (
                                isinstance(target, ast.Attribute)
                                and isinstance(target.value, ast.Name)
                                and target.value.id == "self"
                            ):
                                names.add(f"{node.name}.{target.attr}")
    return frozenset(names)


def named_files(text: str) -> set[str]:
    return set(re.findall(r"`(gateway/[\w/]+\.py)`", text))


def named_code(text: str) -> set[str]:
    """The backticked identifiers of the exchange's path (files and doc links aside)."""
    section = text.split(PATH_SECTION, 1)[1]
    found = set(re.findall(r"`([A-Za-z_]\w*(?:\.\w+)?)`", section))
    return {n for n in found if not n.endswith((".py", ".md"))}


def test_every_file_the_doc_names_exists() -> None:
    text = DOC.read_text("utf-8")
    assert len(named_files(text)) > 10
    assert {p for p in named_files(text) if not (ROOT / p).is_file()} == set()


def test_every_step_of_the_exchange_names_code_that_exists() -> None:
    names = named_code(DOC.read_text("utf-8"))
    assert {"ClientProxy.handle_consumer", "ServerProxy.handle_exchange", "open_request"} <= names
    assert names - defined_names() == set()


def test_the_checker_sees_a_missing_name() -> None:
    text = f"{PATH_SECTION}\n\n| a step | `gateway/node/nowhere.py`: `ClientProxy.gone` |\n"
    assert named_code(text) == {"ClientProxy.gone"}
    assert "ClientProxy.gone" not in defined_names()
    assert "ClientProxy.handle_consumer" in defined_names()
    assert "NodeContext.settings" in defined_names()  # an attribute set in __init__
    assert named_files(text) == {"gateway/node/nowhere.py"}
