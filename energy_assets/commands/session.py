"""Bringing the platform up for a command: database, schema, dbt manifest, Dagster instance."""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from energy_assets.marts.dbt_project import ensure_manifest, ensure_relations
from energy_assets.partitions import MONTH_RUN_TAG
from energy_assets.settings import Settings, export
from energy_assets.warehouse import roles
from energy_assets.warehouse.database import apply_schema
from energy_assets.warehouse.postgres import Database, platform_database, sqlalchemy_url


def platform_env(settings: Settings, db: Database) -> dict[str, str]:
    """Environment every platform process needs: Dagster's home, the warehouse, dbt's profile."""
    url = urlsplit(db.warehouse_url)
    return {
        "ENERGY_HOME": str(settings.home),
        "DAGSTER_HOME": str(settings.dagster_home),
        "ENERGY_WAREHOUSE_URL": db.warehouse_url,
        "ENERGY_PGHOST": url.hostname or "127.0.0.1",
        "ENERGY_PGPORT": str(url.port or 5432),
        "ENERGY_PGUSER": url.username or getpass.getuser(),
        "ENERGY_PGPASSWORD": url.password or "",
        "ENERGY_PGDATABASE": url.path.lstrip("/"),
    }


def dagster_config(dagster_url: str, month_run_concurrency: int) -> dict:
    """dagster.yaml: run/event/schedule storage in PostgreSQL, a queue for month runs.

    Month runs share a tag whose limit bounds how many rebuild months at once (the machine's
    cores are the limit that matters; runs of the same month serialise on a database lock).
    """
    return {
        "storage": {"postgres": {"postgres_url": sqlalchemy_url(dagster_url)}},
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {
                "max_concurrent_runs": 4,
                "dequeue_interval_seconds": 1,
                "tag_concurrency_limits": [{"key": MONTH_RUN_TAG, "limit": month_run_concurrency}],
            },
        },
        "sensors": {"use_threads": True, "num_workers": 2},
        "telemetry": {"enabled": False},
    }


def write_dagster_yaml(dagster_home: Path, dagster_url: str, month_run_concurrency: int) -> None:
    dagster_home.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(dagster_config(dagster_url, month_run_concurrency), sort_keys=False)
    path = dagster_home / "dagster.yaml"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


@contextlib.contextmanager
def platform_session(settings: Settings) -> Iterator[Database]:
    """Database up, schema applied, manifest parsed, dagster.yaml written, env exported."""
    settings.ensure_dirs()
    with platform_database(settings) as db:
        apply_schema(db.warehouse_url)
        roles.restrict_dagster_database(db.dagster_url, db.warehouse_url)
        ensure_manifest()
        write_dagster_yaml(settings.dagster_home, db.dagster_url, settings.month_run_concurrency)
        export(platform_env(settings, db))
        ensure_relations(db.warehouse_url)
        yield db
