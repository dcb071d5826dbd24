"""The dependency direction of docs/LAYOUT.md, checked on every module's imports (nested
imports included): contracts depend on nothing of ours, the SDK never imports the pipeline."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("schemas", "streams", "sinks", "alerting", "ingest", "spendwatch")
# package -> what of ours (and Faust) it must not import
FORBIDDEN = {
    "schemas": ("streams", "sinks", "alerting", "ingest", "spendwatch", "faust"),
    "sinks": ("streams", "alerting", "ingest", "spendwatch"),
    "alerting": ("streams", "ingest", "spendwatch"),
    "ingest": ("alerting",),
    "sdk/src/spendwatch": ("schemas", "streams", "sinks", "alerting", "ingest", "faust"),
}


def imported_roots(path: Path) -> set[str]:
    """Top-level names of every absolute import in ``path``."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_what_the_layout_allows(package: str) -> None:
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules, package
    wrong = {
        str(m.relative_to(ROOT)): sorted(imported_roots(m) & set(FORBIDDEN[package]))
        for m in modules
    }
    assert {m: names for m, names in wrong.items() if names} == {}


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """Positive control: a nested ``from streams...`` import is found."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from streams.topics import ALERTS\n    import faust.app\n")
    assert imported_roots(module) == {"streams", "faust"}
