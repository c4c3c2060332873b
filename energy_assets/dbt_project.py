"""The dbt project and its manifest, which must exist before the code location loads."""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from dagster_dbt import DbtProject

from energy_assets.settings import DBT_PROJECT_DIR

DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))
_CREATE_LOCK = 7_310_002  # advisory lock key: creating mart relations

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


def relations(monthly: bool) -> list[tuple[str, str]]:
    """(schema, name) of the models dbt materializes: the month-partitioned ones, or the rest."""
    nodes = json.loads(dbt_project.manifest_path.read_text())["nodes"].values()
    return [
        (node["schema"], node["alias"])
        for node in nodes
        if node["resource_type"] == "model"
        and node["config"]["materialized"] != "ephemeral"
        and ("monthly" in node["tags"]) == monthly
    ]


def ensure_relations(warehouse_url: str) -> None:
    """Create any missing mart tables (empty) and views before runs may go in parallel.

    Two runs that both find a table or view missing would both try to create it (see
    dagster#18733); creating them here, one process at a time, leaves runs only the
    delete + insert of their month, which a per-model lock serialises.
    """
    from energy_assets import warehouse

    conn = warehouse.connect(warehouse_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
            for monthly, extra in ((True, ["--empty"]), (False, [])):
                names = [f"{schema}.{name}" for schema, name in relations(monthly)]
                cur.execute("select count(to_regclass(n)) from unnest(%s::text[]) n", (names,))
                if cur.fetchone()[0] < len(names):
                    # Its own target folder: the shared manifest must not be rewritten under
                    # processes reading it.
                    with tempfile.TemporaryDirectory(prefix="dbt-target-") as target:
                        subprocess.run(
                            [DBT_EXECUTABLE, "run", "--quiet", "--project-dir",
                             str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
                             "--target-path", target,
                             "--select" if monthly else "--exclude", "tag:monthly", *extra],
                            check=True,
                        )  # fmt: skip
    finally:
        conn.close()
