"""The house rules of docs/architecture.md that a reader cannot see from one file.

Imports run down the tree: nothing below the CLI imports it (errors live in
``agent.errors``); paho is imported only by the pole's link (``agent/mqtt``) and the
centre's tools (``agent/centre``); numpy, OpenCV and onnxruntime never at the top of a
module the agent process loads before vision (tests/vision/test_parent_imports.py checks
the running process).  Modules stay small enough to read in one sitting.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

AGENT = Path(__file__).resolve().parent.parent / "agent"
MODULES = sorted(AGENT.rglob("*.py"))
MAX_LINES = 480  # "about 450" in docs/architecture.md; a module past this is split


def imports(path: Path) -> set[str]:
    """Every module name ``path`` imports, anywhere in it (also inside functions)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def rel(path: Path) -> str:
    return path.relative_to(AGENT.parent).as_posix()


def test_the_layout_is_found() -> None:
    assert len(MODULES) > 100
    assert (AGENT / "cli.py") in MODULES


def test_nothing_below_the_cli_imports_it() -> None:
    allowed = {"agent/__main__.py", "agent/cli.py"}
    bad = [
        rel(p)
        for p in MODULES
        if rel(p) not in allowed and {"agent.cli", "agent.cli.main"} & imports(p)
    ]
    assert bad == []


def test_only_the_link_and_the_centre_import_paho() -> None:
    bad = [
        rel(p)
        for p in MODULES
        if any(n == "paho" or n.startswith("paho.") for n in imports(p))
        and not rel(p).startswith(("agent/mqtt/", "agent/centre/"))
    ]
    assert bad == []


@pytest.mark.parametrize("path", MODULES, ids=rel)
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{rel(path)} has {lines} lines: split it by job"
