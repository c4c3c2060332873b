"""What the package installs: every third-party module the code imports is a declared
dependency, and XGBoost is its CPU build, without NVIDIA's libraries."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
import xgboost

ROOT = Path(__file__).resolve().parents[1]


def declared() -> set[str]:
    """Distribution names in the project's dependencies, normalised (markers and pins dropped)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        normalise(re.split(r"[ ;<>=!~\[]", spec, maxsplit=1)[0]) for spec in project["dependencies"]
    }


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_top_level_modules() -> set[str]:
    modules = set()
    for path in (ROOT / "energy_assets").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"energy_assets"}


def test_every_imported_module_is_a_declared_dependency():
    providers = importlib.metadata.packages_distributions()
    undeclared = {
        module: providers.get(module)
        for module in imported_top_level_modules()
        if not {normalise(d) for d in providers.get(module, [])} & declared()
    }
    assert undeclared == {}


def test_xgboost_is_the_cpu_build_without_nvidia_libraries():
    if sys.platform == "darwin":
        pytest.skip("no xgboost-cpu wheel for macOS; its xgboost wheel has no NVIDIA libraries")
    installed = {normalise(d.metadata["Name"]) for d in importlib.metadata.distributions()}
    assert sorted(n for n in installed if n.startswith(("nvidia", "xgboost"))) == ["xgboost-cpu"]
    assert xgboost.__version__ == importlib.metadata.version("xgboost-cpu")
    assert int(xgboost.__version__.split(".")[0]) == 3
