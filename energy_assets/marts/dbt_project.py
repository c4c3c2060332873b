"""The dbt project outside Dagster: its manifest, the relations it creates, its command lines.

The manifest must exist before the code location is imported (the dbt assets are built from
it); `ensure_manifest` is the explicit step that prepares it, called by every command that
starts the platform, by the test session and by the Docker build, never by an import.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from psycopg2 import sql

from energy_assets.settings import DBT_PROJECT_DIR
from energy_assets.warehouse.database import RELATIONS_LOCK, connect

DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))
MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"


def dbt_command(*args: str, target: str | Path | None = None) -> list[str]:
    """A dbt command line on the platform's project and profile; `target` gives it a target
    folder of its own, so the shared manifest is never rewritten under processes reading it."""
    where = ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    own = ["--target-path", str(target)] if target is not None else []
    return [DBT_EXECUTABLE, *args, *where, *own]


VIEWS_SCHEMA = "marts"
VIEWS = ("--exclude", "tag:monthly")  # the dbt selection of the views
VIEWS_BUILT = "views built from models "  # + models_version(): the marts schema's comment

log = logging.getLogger(__name__)


def _newest_source_mtime() -> float:
    target = DBT_PROJECT_DIR / "target"
    sources = [
        p
        for p in DBT_PROJECT_DIR.rglob("*")
        if p.suffix in (".sql", ".yml", ".yaml") and target not in p.parents
    ]
    return max(p.stat().st_mtime for p in sources)


def ensure_manifest() -> Path:
    """Parse the project when the manifest is missing or older than a model, macro or YAML file.

    Parsing costs seconds, so it happens here (at start-up) and never per run.
    """
    manifest = MANIFEST
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with open(manifest.parent / ".parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one parser at a time; the others reuse its manifest
        if not manifest.exists() or manifest.stat().st_mtime < _newest_source_mtime():
            subprocess.run(
                dbt_command("parse", "--quiet"),
                check=True,
            )
    return manifest


def relations(monthly: bool) -> list[tuple[str, str]]:
    """(schema, name) of the models dbt materializes: the month-partitioned ones, or the rest."""
    nodes = json.loads(MANIFEST.read_text())["nodes"].values()
    return [
        (node["schema"], node["alias"])
        for node in nodes
        if node["resource_type"] == "model"
        and node["config"]["materialized"] != "ephemeral"
        and ("monthly" in node["tags"]) == monthly
    ]


def models_version() -> str:
    """A short hash of the parsed project: it changes whenever a model, macro or test does."""
    return hashlib.sha1(MANIFEST.read_bytes()).hexdigest()[:12]


def ensure_relations(warehouse_url: str) -> None:
    """Create any missing mart tables (empty) and views before runs may go in parallel, and
    rebuild the views when they were built from other models than these.

    Two runs that both find a table or view missing would both try to create it (see
    dagster#18733); creating them here, one process at a time, leaves runs only the
    delete + insert of their month, which a per-model lock serialises. The month runs' tests
    read the views (relationships to dim_meter and dim_customer), which the views job only
    rebuilds after them: after an upgrade they would meet the older definitions. The schema's
    comment records the models the views were built from; rebuilding unchanged views costs a
    dbt run and no lock (macros/analyst_view.sql).
    """
    conn = connect(warehouse_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock(%s)", (RELATIONS_LOCK,))
            # Only the missing tables, created empty: an existing one's pre-hook would delete its
            # whole history. A month run fills them (their months are to build, stale_months).
            missing = _missing(cur, monthly=True)
            if missing:
                _dbt_run("--select", *missing, "--empty")
            if _missing(cur, monthly=False):
                _dbt_run(*VIEWS)
                _record_views_version(cur)
            elif _views_version(cur) != models_version():
                try:
                    _dbt_run(*VIEWS)
                except subprocess.CalledProcessError:
                    log.warning(
                        "the mart views were built from other models and could not all be"
                        " rebuilt now (dbt's message above says why); the views run retries"
                    )
                else:
                    _record_views_version(cur)
    finally:
        conn.close()


def _missing(cur, monthly: bool) -> list[str]:
    """The models (month-partitioned, or the others) whose relation does not exist."""
    names = {f"{schema}.{name}": name for schema, name in relations(monthly)}
    cur.execute("select n from unnest(%s::text[]) n where to_regclass(n) is null", (list(names),))
    return sorted(names[n] for (n,) in cur.fetchall())


def _record_views_version(cur) -> None:
    cur.execute(
        sql.SQL("comment on schema {} is {}").format(
            sql.Identifier(VIEWS_SCHEMA), sql.Literal(VIEWS_BUILT + models_version())
        )
    )


def _views_version(cur) -> str | None:
    cur.execute("select obj_description(to_regnamespace(%s), 'pg_namespace')", (VIEWS_SCHEMA,))
    comment = cur.fetchone()[0] or ""
    return comment.removeprefix(VIEWS_BUILT) if comment.startswith(VIEWS_BUILT) else None


def _dbt_run(*selection: str) -> None:
    """`dbt run` of the models `selection` names."""
    with tempfile.TemporaryDirectory(prefix="dbt-target-") as target:
        subprocess.run(
            dbt_command("run", "--quiet", *selection, target=target),
            check=True,
        )


def month_environment(
    start: str, end: str, timezone: str, estimate: tuple[int, int] = (4, 0)
) -> dict[str, str]:
    """A month build's dbt vars as the environment variables its dbt process reads
    (macros/run_var.sql): the window [start, end) of a month partition (or a range of them),
    the local calendar of customer meters without a timezone of their own, and the longest
    gaps estimated (linearly, from the meter's profile: `Settings.estimate_*`).

    Not `--vars`: dbt parses the whole project again when its vars differ from those the
    manifest was parsed with, about 1.5 s of every month's build.
    """
    values = {
        "month_start": start,
        "month_end": end,
        "timezone": timezone,
        "estimate_linear_intervals": estimate[0],
        "estimate_max_intervals": estimate[1],
    }
    return {f"ENERGY_DBT_{name.upper()}": str(value) for name, value in values.items()}


PARSE_FILE = "partial_parse.msgpack"


def restore_parse(home: Path, target: Path) -> None:
    """Start a dbt command in `target` from the home's last parse of the project.

    dbt reuses a saved parse only when the connection it was parsed with is the same, and the
    project's own (from `ensure_manifest`) has the default one's: a home whose warehouse is
    elsewhere (a server of its own, another port) would parse the whole project at every step.
    dbt checks the saved parse against the project's files itself.
    """
    saved = home / "dbt" / PARSE_FILE
    if saved.exists():
        shutil.copy(saved, target / PARSE_FILE)


def save_parse(target: Path, home: Path) -> None:
    """Keep the parse a dbt command in `target` ended with for the home's next one (replaced
    atomically: steps of several runs may end at once)."""
    parsed = target / PARSE_FILE
    if parsed.exists():
        folder = home / "dbt"
        folder.mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, delete=False) as copy:
            shutil.copyfile(parsed, copy.name)
        os.replace(copy.name, folder / PARSE_FILE)


DBT_BUILD = ("build", "--exclude-resource-type", "unit_test")
"""`dbt build` of the selected models and their data tests. The unit tests are left out: they
test the models' code, not the month's data, so the test suite runs them (tests/test_marts.py)
rather than every month and views run."""
