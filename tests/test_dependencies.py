"""The dependency ranges: each stops before the next major version, and what is installed (the
newest the ranges allow, in CI) lies inside them."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def requirements() -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    return [Requirement(line) for line in project["dependencies"]]


def test_every_dependency_has_an_upper_bound():
    unbounded = [
        str(r) for r in requirements() if not any(s.operator in ("<", "<=") for s in r.specifier)
    ]
    assert unbounded == []


def test_installed_versions_are_inside_the_ranges():
    outside = [
        f"{r.name} {version(r.name)} not in {r.specifier}"
        for r in requirements()
        if not r.specifier.contains(version(r.name), prereleases=True)
    ]
    assert outside == []
