"""What the package installs: every third-party module the code imports is a declared
dependency, each range stops before the next major version and holds what is installed (the
newest the ranges allow, in CI), and XGBoost is its CPU build, without NVIDIA's libraries."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from pathlib import Path

import pytest
import xgboost
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def requirements() -> list[Requirement]:
    """The project's dependencies that apply on this platform (their markers evaluated)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = [Requirement(line) for line in project["dependencies"]]
    return [r for r in declared if r.marker is None or r.marker.evaluate()]


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
    declared = {canonicalize_name(r.name) for r in requirements()}
    undeclared = {
        module: providers.get(module)
        for module in imported_top_level_modules()
        if not {canonicalize_name(d) for d in providers.get(module, [])} & declared
    }
    assert undeclared == {}


def test_every_dependency_has_an_upper_bound():
    unbounded = [
        str(r) for r in requirements() if not any(s.operator in ("<", "<=") for s in r.specifier)
    ]
    assert unbounded == []


def test_installed_versions_are_inside_the_ranges():
    outside = [
        f"{r.name} {importlib.metadata.version(r.name)} not in {r.specifier}"
        for r in requirements()
        if not r.specifier.contains(importlib.metadata.version(r.name), prereleases=True)
    ]
    assert outside == []


def test_xgboost_is_the_cpu_build_without_nvidia_libraries():
    if sys.platform == "darwin":
        pytest.skip("no xgboost-cpu wheel for macOS; its xgboost wheel has no NVIDIA libraries")
    installed = {canonicalize_name(d.metadata["Name"]) for d in importlib.metadata.distributions()}
    assert sorted(n for n in installed if n.startswith(("nvidia", "xgboost"))) == ["xgboost-cpu"]
    assert xgboost.__version__ == importlib.metadata.version("xgboost-cpu")
    assert int(xgboost.__version__.split(".")[0]) == 3
