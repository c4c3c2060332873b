"""Bringing the platform up for a command: database, schema, dbt manifest, Dagster instance."""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml

from energy_assets.marts.dbt_project import ensure_manifest, ensure_relations
from energy_assets.partitions import MONTH_RUN_TAG, PARTITION_TAG
from energy_assets.scaleout import WAREHOUSE_POOL
from energy_assets.settings import Settings, export
from energy_assets.warehouse import roles
from energy_assets.warehouse.database import apply_schema
from energy_assets.warehouse.postgres import (
    ANALYST,
    Database,
    password_of,
    platform_database,
    write_private,
)

DAGSTER_PASSWORD_VARIABLE = "ENERGY_DAGSTER_PGPASSWORD"
RUN_MONITORING = {
    "enabled": True,
    # A run whose process died is marked FAILURE within a poll: `energy_assets.launcher` tells.
    "poll_interval_seconds": 5,
    "start_timeout_seconds": 180,
    "cancel_timeout_seconds": 180,
    "max_resume_run_attempts": 0,  # Dagster cannot resume a local run; it retries it instead
}
RUN_RETRIES = {
    "enabled": True,
    "max_retries": 2,
    # Only runs whose process died or was stopped: a failing step or check fails again.
    "retry_on_asset_or_op_failure": False,
}
"""A retry re-executes from the first step that did not succeed (Dagster's default strategy):
every step replaces what it writes for its month in one transaction, so the step a stop cut
short runs again whole, and the steps that had finished are not repeated."""


def user_of(url: str) -> str:
    return unquote(urlsplit(url).username or "") or getpass.getuser()


def platform_env(settings: Settings, db: Database) -> dict[str, str]:
    """Environment every platform process needs: Dagster's home, the warehouse, dbt's profile,
    the passwords (only ever in the environment of the platform's own processes)."""
    url = urlsplit(db.warehouse_url)
    return {
        "ENERGY_HOME": str(settings.home),
        "DAGSTER_HOME": str(settings.dagster_home),
        "ENERGY_WAREHOUSE_URL": db.warehouse_url,
        "ENERGY_PGHOST": url.hostname or "127.0.0.1",
        "ENERGY_PGPORT": str(url.port or 5432),
        "ENERGY_PGUSER": user_of(db.warehouse_url),
        "ENERGY_PGPASSWORD": db.password,
        "ENERGY_PGDATABASE": url.path.lstrip("/"),
        DAGSTER_PASSWORD_VARIABLE: (
            db.password if db.server is not None else password_of(db.dagster_url)
        ),
    }


def dagster_storage(dagster_url: str) -> dict:
    """Dagster's `postgres_db` storage config for `dagster_url`: the password is read from the
    environment, the URL's parameters (a passfile, sslmode) are kept."""
    url = urlsplit(dagster_url)
    return {
        "postgres_db": {
            "username": user_of(dagster_url),
            "password": {"env": DAGSTER_PASSWORD_VARIABLE},
            "hostname": url.hostname or "127.0.0.1",
            "port": url.port or 5432,
            "db_name": url.path.lstrip("/"),
            "params": dict(parse_qsl(url.query)),
            # SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql:// URL.
            "scheme": "postgresql+psycopg2",
        }
    }


def dagster_config(dagster_url: str, month_run_concurrency: int) -> dict:
    """dagster.yaml: run/event/schedule storage in PostgreSQL, a queue for month runs, run
    monitoring and retries for runs whose process died.

    Month runs share a tag whose limit bounds how many rebuild months at once (the machine's
    cores are the limit that matters); two runs of the same month share their work, so they
    take turns in the queue instead of holding two places, one waiting on the other's lock.
    Among the waiting runs, the highest `dagster/priority` starts first.
    """
    return {
        "storage": {"postgres": dagster_storage(dagster_url)},
        "run_launcher": {"module": "energy_assets.launcher", "class": "LocalRunLauncher"},
        "run_monitoring": RUN_MONITORING,
        "run_retries": RUN_RETRIES,
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {
                "max_concurrent_runs": 4,
                "dequeue_interval_seconds": 1,
                "tag_concurrency_limits": [
                    {"key": MONTH_RUN_TAG, "limit": month_run_concurrency},
                    {"key": PARTITION_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
                ],
            },
        },
        "sensors": {"use_threads": True, "num_workers": 2},
        "telemetry": {"enabled": False},
    }


def write_dagster_yaml(dagster_home: Path, dagster_url: str, month_run_concurrency: int) -> None:
    """Written for its owner only (0600): it names no secret, but says where the storage is."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(dagster_config(dagster_url, month_run_concurrency), sort_keys=False)
    path = dagster_home / "dagster.yaml"
    if not path.exists() or path.read_text() != text or path.stat().st_mode & 0o077:
        write_private(path, text)


def limit_warehouse_pool(slots: int) -> None:
    """Set the warehouse pool's limit in Dagster's storage, where every run's executor reads it
    (pools without a limit, as under the in-process executor, limit nothing)."""
    from dagster import DagsterInstance
    from sqlalchemy.exc import IntegrityError

    with DagsterInstance.get() as instance:
        try:
            instance.event_log_storage.set_concurrency_slots(WAREHOUSE_POOL, slots)
        except IntegrityError:  # a worker starting beside it created the pool's row meanwhile
            instance.event_log_storage.set_concurrency_slots(WAREHOUSE_POOL, slots)


@contextlib.contextmanager
def platform_session(settings: Settings, create: bool = True) -> Iterator[Database]:
    """Database up, schema applied, manifest parsed, dagster.yaml written, env exported.

    Without `create`, a home without a database is refused instead of made.
    """
    if not create:
        settings.require_home()
    settings.ensure_dirs()
    with platform_database(settings) as db:
        apply_schema(db.warehouse_url)
        if db.server is not None:
            roles.ensure_password(db.warehouse_url, ANALYST, db.server.secrets.password(ANALYST))
        roles.restrict_dagster_database(db.dagster_url, db.warehouse_url)
        ensure_manifest()
        write_dagster_yaml(settings.dagster_home, db.dagster_url, settings.month_run_concurrency)
        export(platform_env(settings, db))
        ensure_relations(db.warehouse_url)
        if settings.executor == "celery":
            limit_warehouse_pool(settings.warehouse_slots)
        yield db
