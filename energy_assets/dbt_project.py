"""The dbt project and its manifest, which must exist before the code location loads."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from energy_assets.settings import DBT_PROJECT_DIR

DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def _newest_source_mtime() -> float:
    target = DBT_PROJECT_DIR / "target"
    sources = [
        p for p in DBT_PROJECT_DIR.rglob("*")
        if p.suffix in (".sql", ".yml", ".yaml") and target not in p.parents
    ]  # fmt: skip
    return max(p.stat().st_mtime for p in sources)


def ensure_manifest() -> Path:
    """Parse the project when the manifest is missing or older than a model, macro or YAML file.

    Parsing costs seconds, so it happens here (at start-up and import) and never per run.
    """
    manifest = dbt_project.manifest_path
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with open(manifest.parent / ".parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one parser at a time; the others reuse its manifest
        if not manifest.exists() or manifest.stat().st_mtime < _newest_source_mtime():
            subprocess.run(
                [DBT_EXECUTABLE, "parse", "--quiet", "--project-dir", str(DBT_PROJECT_DIR),
                 "--profiles-dir", str(DBT_PROJECT_DIR)],
                check=True,
            )  # fmt: skip
    return manifest
