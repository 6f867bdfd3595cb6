"""The package tree follows the data flow: imports only point down the layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parent.parent / "service"
# Highest first: a package may import from packages to its right, never to its left.
LAYERS = ["tools", "api", "ops", "routing", "completion", "state", "index", "encoding", "config"]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("service"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "service" and len(parts) > 1:
                    found.add(parts[1])
    return found


@pytest.mark.parametrize("package", LAYERS)
def test_package_imports_only_layers_below_it(package: str) -> None:
    allowed = set(LAYERS[LAYERS.index(package) :]) | {"__version__"}
    wrong = {
        f"{path.relative_to(SERVICE)} imports service.{name}"
        for path in (SERVICE / package).rglob("*.py")
        for name in _imports(path) - allowed
    }
    assert not wrong, sorted(wrong)


def test_every_package_says_its_job_in_one_line() -> None:
    for package in LAYERS:
        doc = ast.get_docstring(ast.parse((SERVICE / package / "__init__.py").read_text()))
        assert doc and "\n" not in doc.strip(), package


def test_no_module_is_left_at_the_top_of_the_package() -> None:
    loose = {p.name for p in SERVICE.glob("*.py")} - {"__init__.py", "__main__.py"}
    assert not loose
