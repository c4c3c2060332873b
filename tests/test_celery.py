"""Month runs whose steps execute on Celery workers (ENERGY_EXECUTOR=celery).

Real workers (`energy worker`, which starts `dagster-celery worker start`) on the machine's
RabbitMQ (127.0.0.1:5672) and Redis (127.0.0.1:6379), on queues named for this module alone;
the runs are orchestrated by a process of their own, as a run worker would. The marts they build
equal those an in-process run built from the same files, also when a worker is killed
mid-step. The workers are stopped by PID and their queues deleted at the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import psutil
import psycopg2
import pytest
from conftest import PLATFORM_ENV, PlatformUnderTest, configured_platform, copied_databases
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from kombu import Connection
from meter_files import three_meters_two_feeders
from psycopg2 import sql

from energy_assets.commands.run import run_once
from energy_assets.scaleout import DBT, ML, WAREHOUSE_POOL, queue_name
from energy_assets.settings import Settings

BIN = Path(sys.executable).parent
BACKEND = "redis://127.0.0.1:6379/9"
MONTH_STEP = "monthly_marts"
RUN_MONTHS = """
import sys
from datetime import date

from dagster import DagsterInstance

from energy_assets.commands.run import execute
from energy_assets.partitions import range_tags
from energy_assets.commands.session import platform_session
from energy_assets.settings import Settings

settings = Settings.from_env()
with platform_session(settings, create=False), DagsterInstance.get() as instance:
    tags = range_tags(date(2024, 1, 1), date(2024, 2, 1))
    sys.exit(0 if execute("monthly_marts_job", instance, settings, tags=tags) else 1)
"""
"""January and February through the month job, as one run (as `energy run` builds them)."""


def marts(platform: PlatformUnderTest) -> dict[str, pd.DataFrame]:
    """Every table of the marts schema, its rows in a stable order."""
    conn = psycopg2.connect(platform.warehouse_url)
    tables = {}
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select table_name from information_schema.tables"
                " where table_schema = 'marts' and table_type = 'BASE TABLE'"
            )
            for (name,) in cur.fetchall():
                cur.execute(sql.SQL("select * from marts.{}").format(sql.Identifier(name)))
                frame = pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])
                text = frame.astype(str)  # exact values, in an order every type sorts in
                tables[name] = text.sort_values(list(text.columns)).reset_index(drop=True)
    finally:
        conn.close()
    return tables


def assert_marts_equal(built: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame]) -> None:
    assert built.keys() == expected.keys()
    for name, frame in built.items():
        pd.testing.assert_frame_equal(frame, expected[name], obj=name)


@dataclass
class Worker:
    name: str
    process: subprocess.Popen
    log: Path

    def celery_group(self) -> int:
        """The process group of dagster-celery's worker (started by `energy worker`)."""
        (child,) = psutil.Process(self.process.pid).children()
        return os.getpgid(child.pid)


@dataclass
class Cluster:
    platform: PlatformUnderTest
    prefix: str
    workers: list[Worker] = field(default_factory=list)
    in_process: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def celery(self) -> dict[str, str]:
        """The settings of runs and workers on this module's queues."""
        return {
            "ENERGY_EXECUTOR": "celery",
            "ENERGY_CELERY_QUEUES": self.prefix,
            "ENERGY_CELERY_BACKEND": BACKEND,
        }

    def start_worker(self, kinds: list[str]) -> Worker:
        name = f"{self.prefix}-{len(self.workers)}"
        log = self.platform.settings.home / f"{name}.log"
        args = [str(BIN / "energy"), "worker", "--name", name]
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [*args, *(f"--queue={kind}" for kind in kinds)],
                env={**os.environ, **self.celery},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(name, process, log)
        self.workers.append(worker)
        return worker

    def run_months(self) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", RUN_MONTHS])


def ready(worker: Worker, timeout: float = 120) -> None:
    """Wait for the worker to listen (Celery logs `<name>@<host> ready.`)."""
    deadline = time.monotonic() + timeout
    while b" ready." not in worker.log.read_bytes():
        assert worker.process.poll() is None, worker.log.read_text()[-3000:]
        assert time.monotonic() < deadline, worker.log.read_text()[-3000:]
        time.sleep(0.2)


def delete_queues(broker: str, prefix: str) -> None:
    with Connection(broker) as connection:
        channel = connection.default_channel
        for kind in (DBT, ML):
            with contextlib.suppress(Exception):  # never declared: nothing to delete
                channel.queue_delete(queue_name(prefix, kind))


SERVICES = {"RabbitMQ": 5672, "Redis": 6379}


def require_services() -> None:
    """RabbitMQ and Redis on 127.0.0.1: a skip that says so on a machine without them, a
    failure in CI (`CI=true`), which has them and must not pass by skipping."""
    missing = []
    for name, port in SERVICES.items():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except OSError:
            missing.append(f"{name} on 127.0.0.1:{port}")
    if missing:
        message = f"the Celery tests need {' and '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def cluster(pg_server, templates, tmp_path_factory) -> Iterator[Cluster]:
    """A platform with January and February loaded and built in-process (the reference),
    then set to execute steps on Celery workers."""
    require_services()
    with copied_databases(pg_server, templates) as urls, pytest.MonkeyPatch.context() as env:
        for key in PLATFORM_ENV:
            env.delenv(key, raising=False)
        platform = configured_platform(env, tmp_path_factory.mktemp("celery") / "home", urls)
        cluster = Cluster(platform, f"test-{uuid.uuid4().hex[:8]}")
        try:
            # The workers start while the reference builds in-process: two for dbt steps (one
            # to take over from the other), one for ML steps.
            starting = [cluster.start_worker(kinds) for kinds in ([DBT], [ML], [DBT])]
            three_meters_two_feeders(platform.settings.dropbox)
            assert run_once(platform.settings).ok  # exports the platform's environment
            cluster.in_process = marts(platform)
            for name, value in cluster.celery.items():  # for the runs, from here on
                env.setenv(name, value)
            for worker in starting:
                ready(worker)
            yield cluster
        finally:
            for worker in cluster.workers:
                if worker.process.poll() is None:
                    worker.process.send_signal(signal.SIGTERM)
            for worker in cluster.workers:
                worker.process.wait(timeout=60)
            delete_queues(Settings.from_env().celery_broker, cluster.prefix)


def latest_run(instance: DagsterInstance):
    (run,) = instance.get_runs(RunsFilter(job_name="monthly_marts_job"), limit=1)
    return run


def executed_on(instance: DagsterInstance, run_id: str) -> list[tuple[str, str]]:
    """(step, Celery worker) of each step execution a worker reported, in order."""
    executions = []
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        metadata = event.event_specific_data.metadata
        if "Celery worker" in metadata:
            executions.append((event.step_key, metadata["Celery worker"].value))
    return executions


def test_month_steps_run_on_two_workers_and_build_the_same_marts(cluster):
    """The dbt step on a dbt worker, the Python ML steps and checks on the ML worker."""
    before = cluster.platform.scalar("select count(*) from marts.fct_intervals_clean")
    conn = psycopg2.connect(cluster.platform.warehouse_url)
    with conn, conn.cursor() as cur:  # the run must rebuild it
        cur.execute("truncate marts.fct_intervals_clean")
    conn.close()
    assert cluster.run_months().wait(timeout=300) == 0

    with DagsterInstance.get() as instance:
        run = latest_run(instance)
        assert run.status == DagsterRunStatus.SUCCESS
        workers = dict(executed_on(instance, run.run_id))
        pools = {pool.name: pool.limit for pool in instance.event_log_storage.get_pool_limits()}
    assert pools == {WAREHOUSE_POOL: Settings().warehouse_slots}  # the dbt steps' pool
    dbt_worker, ml_worker, spare = (f"{w.name}@{socket.gethostname()}" for w in cluster.workers)
    assert workers.pop(MONTH_STEP) in (dbt_worker, spare)
    assert len(workers) == 7 and set(workers.values()) == {ml_worker}  # 5 assets, 2 checks
    assert cluster.platform.scalar("select count(*) from marts.fct_intervals_clean") == before
    assert_marts_equal(marts(cluster.platform), cluster.in_process)


def test_a_worker_killed_mid_step_hands_its_step_to_another_and_a_rerun_changes_nothing(cluster):
    """Steps are acknowledged once done: the dbt step of a worker killed with SIGKILL (dbt and
    all) goes back to its queue, and another dbt worker runs it again from its start."""
    with DagsterInstance.get() as instance:
        previous = latest_run(instance).run_id
        orchestrator = cluster.run_months()
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline and orchestrator.poll() is None
            run = latest_run(instance)
            dbt = [w for step, w in executed_on(instance, run.run_id) if step == MONTH_STEP]
            if run.run_id != previous and dbt:
                break
            time.sleep(0.2)
        (victim,) = (w for w in cluster.workers if dbt[0].startswith(f"{w.name}@"))
        done = instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_SUCCESS)
        assert MONTH_STEP not in {record.step_key for record in done}  # killed mid-step
        os.killpg(victim.celery_group(), signal.SIGKILL)

        assert orchestrator.wait(timeout=300) == 0
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.SUCCESS
        dbt = [w for step, w in executed_on(instance, run.run_id) if step == MONTH_STEP]
    (survivor,) = (w for w in cluster.workers[0::2] if w is not victim)
    assert dbt == [
        f"{victim.name}@{socket.gethostname()}",
        f"{survivor.name}@{socket.gethostname()}",
    ]
    assert victim.process.wait(timeout=30) != 0
    assert_marts_equal(marts(cluster.platform), cluster.in_process)

    assert cluster.run_months().wait(timeout=300) == 0
    assert_marts_equal(marts(cluster.platform), cluster.in_process)
