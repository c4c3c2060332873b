"""Running the ingest job in a test, and waiting for what a paused ingest does."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg2
import pytest
from dagster import DagsterInstance

from energy_assets.ingest.assets import ingest_dropbox
from energy_assets.resources import Platform

BOUND_SECONDS = 120
"""Far beyond what any ingest in the tests takes: reaching it means a hang."""


def platform_resource(platform) -> Platform:
    return Platform(home=str(platform.settings.home), warehouse_url=platform.warehouse_url)


def ingest_run(platform, run_config: dict | None = None) -> list[dict]:
    """The ingest job in this process on a real (ephemeral) Dagster instance, as a sensor's run
    or a user's would run; the row it reports per file."""
    result = ingest_dropbox.execute_in_process(
        run_config=run_config or {},
        instance=DagsterInstance.ephemeral(),
        resources={"platform": platform_resource(platform)},
    )
    assert result.success
    return result.output_for_node("ingest_files")


def files_config(names: list[str]) -> dict:
    """The run config naming files, as a user in the UI (or `energy run`) gives them."""
    return {"ops": {"ingest_files": {"config": {"files": names}}}}


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never saw: {what}")
        time.sleep(0.1)


def waiting_on_lock(platform) -> bool:
    """Some session of the warehouse waits for a lock (an ingest the test paused)."""
    return bool(
        platform.scalar(
            "select count(*) from pg_locks l join pg_database d on d.oid = l.database"
            " where not l.granted and d.datname = current_database()"
        )
    )


def pause_inserts(platform):
    """A connection holding raw.files in SHARE mode: an ingest waits at its first insert there,
    inside its transaction, until the connection rolls back."""
    conn = psycopg2.connect(platform.warehouse_url)
    conn.cursor().execute("lock table raw.files in share mode")
    return conn
