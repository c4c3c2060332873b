"""The code location loads, and what it defines is what analysts, schedules and scripts name:
every asset key, asset check, job, sensor and schedule, against `data/definitions.json`."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from energy_assets.definitions import defs
from energy_assets.settings import ANOMALY_PREFIX, AnomalyThresholds, Settings, variables

EXPECTED = Path(__file__).parent / "data" / "definitions.json"


def defined() -> dict[str, list[str]]:
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    return {
        "assets": sorted("/".join(k.path) for k in keys),
        "checks": sorted(f"{'/'.join(k.asset_key.path)}:{k.name}" for k in graph.asset_check_keys),
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs()),
        "sensors": sorted(s.name for s in defs.sensors),
        "schedules": sorted(s.name for s in defs.schedules),
        "partitioned": sorted(
            "/".join(k.path) for k in keys if graph.get(k).partitions_def is not None
        ),
    }


def test_every_definition_loads_under_its_known_name():
    assert defined() == json.loads(EXPECTED.read_text())


PACKAGE = Path(__file__).resolve().parents[1] / "energy_assets"
DOMAINS = ("ingest", "marts", "segments", "plots", "forecasts", "anomalies", "warehouse")
WIRING = {"assets.py", "sensors.py", "checks.py", "schedules.py"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_the_wiring_modules_of_a_domain_import_dagster():
    offenders = []
    for domain in DOMAINS:
        for path in sorted((PACKAGE / domain).rglob("*.py")):
            dagster = {m for m in imported_modules(path) if m.split(".")[0].startswith("dagster")}
            if dagster and path.name not in WIRING:
                offenders.append(f"{path.relative_to(PACKAGE)}: {sorted(dagster)}")
    assert offenders == []


def test_the_environment_is_read_in_settings_only():
    readers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "os.environ" in path.read_text(encoding="utf-8")
    )
    # cli.py hands its environment to the processes it starts, and reads nothing from it.
    assert readers == ["cli.py", "settings.py"]
    cli = (PACKAGE / "cli.py").read_text(encoding="utf-8")
    assert cli.count("os.environ") == cli.count("env=os.environ.copy()") == 1


def test_readme_configuration_names_every_setting():
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    named = {name for name, _, _ in variables(Settings)}
    assert sorted(n for n in named if f"`{n}`" not in table) == []
    assert "`ENERGY_ANOMALY_<NAME>`" in table
    assert all(name.startswith(ANOMALY_PREFIX) for name, _, _ in variables(AnomalyThresholds))
