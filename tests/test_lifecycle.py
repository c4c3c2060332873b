"""Every way of stopping the platform leaves no process behind, and the work a stop cut short is
done at the next start: `energy up` and `energy run` as real processes, stopped with SIGTERM,
SIGINT and SIGKILL at the dangerous moments, the embedded PostgreSQL killed under a load.

The `energy up` tests share one home, in file order: each start finds what the stop before it
left.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg2
import pytest
from conftest import server_home
from meter_files import write_meter_file
from up_process import (
    ENERGY,
    FINISHED,
    embedded_url,
    energy,
    leftovers,
    platform_environ,
    runs,
    settled,
    ui_answers,
    wait_for,
)

from energy_assets.ingest.sample import write_sample
from energy_assets.settings import Settings
from energy_assets.warehouse.postgres import EmbeddedPostgres, Secrets, alone, platform_database

pytestmark = pytest.mark.db  # embedded servers of their own
IN_PROGRESS = {"STARTING", "STARTED", "CANCELING"}
HOLD_THE_SERVER = """
import sys, time
from energy_assets.settings import Settings
from energy_assets.warehouse.postgres import platform_database
with platform_database(Settings.from_env()):
    print("ready", flush=True)
    time.sleep(3600)
"""


def server_running(home: Path) -> bool:
    return Settings.from_env({"ENERGY_HOME": str(home)}).pgdata.joinpath("postmaster.pid").exists()


def run_statuses(home: Path, port: int, job: str) -> list[str]:
    try:
        return [status for name, status, _ in runs(home, port) if name == job]
    except psycopg2.Error:  # the server or Dagster's tables not there yet
        return []


def test_the_server_stops_when_its_last_user_is_killed():
    with server_home() as home:
        env = platform_environ(home)
        user = subprocess.Popen(
            [sys.executable, "-c", HOLD_THE_SERVER], env=env, stdout=subprocess.PIPE, text=True
        )
        assert user.stdout.readline().strip() == "ready"
        assert server_running(home)
        user.kill()
        user.wait()
        wait_for(lambda: not server_running(home), 30, "the keeper to stop the server")
        wait_for(lambda: leftovers(home) == [], 30, "the server and its keeper to exit")


def test_only_another_user_makes_a_leaving_user_leave_the_server_running(tmp_path):
    """The keeper's wait ends by taking the watched lock for a moment, as the last user leaves;
    held there (a keeper not yet scheduled), it must not look like a user to the one leaving,
    which would go and leave the server to stop after it."""
    locks = EmbeddedPostgres(tmp_path / "pgdata", 0, Secrets(tmp_path), tmp_path).locks
    paths = (locks.users, locks.users, locks.watched)
    opened = [os.open(path, os.O_RDWR | os.O_CREAT, 0o600) for path in paths]
    leaving_users, other_users, keeper_watched = opened
    try:
        fcntl.flock(leaving_users, fcntl.LOCK_SH)
        fcntl.flock(other_users, fcntl.LOCK_SH)
        fcntl.flock(leaving_users, fcntl.LOCK_UN)
        assert not alone(leaving_users)  # another user is left

        fcntl.flock(other_users, fcntl.LOCK_UN)
        fcntl.flock(keeper_watched, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the keeper waking
        assert alone(leaving_users)
    finally:
        for fd in opened:
            os.close(fd)


def test_db_start_keeps_the_server_for_queries_until_db_stop():
    with server_home() as home:
        env = platform_environ(home)
        with platform_database(Settings.from_env(env)):
            pass  # a home, its server stopped again
        refused = energy("db-url", env=env)
        assert refused.returncode == 1 and "not running" in refused.stderr

        assert energy("db", "start", env=env).returncode == 0
        url = energy("db-url", env=env)
        assert url.returncode == 0
        answer = psycopg2.connect(url.stdout.strip())
        with answer.cursor() as cur:
            cur.execute("select 41 + 1")
            assert cur.fetchone() == (42,)
        answer.close()
        assert energy("db", "status", env=env).returncode == 0

        # Another platform process uses the server too: `db stop` leaves it to that one.
        with platform_database(Settings.from_env(env)):
            released = energy("db", "stop", env=env)
            assert released.returncode == 0 and "still running" in released.stdout
            assert server_running(home)
        assert not server_running(home)
        assert energy("db", "status", env=env).returncode == 1
        assert energy("db-url", env=env).returncode == 1
        wait_for(lambda: leftovers(home) == [], 30, "the keeper to exit")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_ends_energy_run_with_nothing_left_running(stop):
    with server_home() as home:
        env = platform_environ(home)
        write_sample(home / "dropbox")
        port = int(env["ENERGY_PG_PORT"])
        run = subprocess.Popen([ENERGY, "run"], env=env, stderr=subprocess.PIPE, text=True)
        wait_for(
            lambda: "STARTED" in run_statuses(home, port, "monthly_marts_job"),
            600,
            "energy run to start building a month",
        )
        run.send_signal(stop)
        _, err = run.communicate(timeout=120)
        assert run.returncode == 130, err
        assert "energy run: interrupted" in err and "Traceback" not in err.split("interrupted")[-1]
        assert leftovers(home) == []
        assert not server_running(home)
        with platform_database(Settings.from_env(env)):
            statuses = {status for _, status, _ in runs(home, port)}
        assert statuses <= FINISHED and "FAILURE" in statuses


@pytest.fixture(scope="module")
def home():
    with server_home() as home:
        yield home


@pytest.fixture(scope="module")
def env(home):
    return platform_environ(home)


def start_up(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, int]:
    from conftest import free_port

    ui_port = free_port()
    with open(log, "a") as out:
        up = subprocess.Popen(
            [ENERGY, "up", "--port", str(ui_port)], env=env, stdout=out, stderr=out
        )
    wait_for(lambda: up.poll() is not None or ui_answers(ui_port), 300, "the Dagster UI")
    assert up.poll() is None, log.read_text()[-3000:]
    return up, ui_port


def test_sigterm_during_a_month_run_stops_energy_up_with_nothing_left(home, env, tmp_path):
    port = int(env["ENERGY_PG_PORT"])
    up, _ = start_up(env, tmp_path / "up.log")
    write_sample(home / "dropbox")
    wait_for(
        lambda: "STARTED" in run_statuses(home, port, "monthly_marts_job"),
        600,
        "the sensor to start a month run",
    )
    up.send_signal(signal.SIGTERM)
    assert up.wait(timeout=120) == 0
    assert leftovers(home) == []
    assert not server_running(home)
    output = (tmp_path / "up.log").read_text()
    assert "Traceback" not in output and output.rstrip().endswith("stopped")


def test_a_second_energy_up_on_the_same_home_refuses(home, env, tmp_path):
    up, _ = start_up(env, tmp_path / "up.log")
    try:
        second = energy("up", "--port", "1", env=env, timeout=120)
        assert second.returncode == 1
        assert f"energy up: energy up already runs on this home (pid {up.pid}); stop it first" in (
            second.stderr
        )
    finally:
        up.send_signal(signal.SIGKILL)  # the next test's subject
        up.wait()


def test_sigkill_of_energy_up_leaves_no_process_behind(home):
    wait_for(lambda: leftovers(home) == [], 90, "every process of the killed energy up to exit")
    assert not server_running(home)


def test_the_next_start_retries_the_runs_the_stops_cut_short(home, env, tmp_path):
    port = int(env["ENERGY_PG_PORT"])
    up, _ = start_up(env, tmp_path / "up.log")
    try:
        wait_for(
            lambda: settled(home, port),
            900,
            "the interrupted months to be rebuilt",
        )
        history = runs(home, port)
        assert not [r for r in history if r[1] in IN_PROGRESS]
        cut_short = [tags for job, status, tags in history if status == "FAILURE"]
        assert cut_short and all(
            tags.get("dagster/failure_reason") != "STEP_FAILURE" for tags in cut_short
        )
        assert all("dagster/auto_retry_run_id" in tags for tags in cut_short)
    finally:
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=120) == 0
    assert leftovers(home) == []


def test_a_killed_database_stops_energy_up_and_its_file_loads_at_the_next_start(
    home, env, tmp_path
):
    port = int(env["ENERGY_PG_PORT"])
    log = tmp_path / "up.log"
    up, _ = start_up(env, log)
    write_meter_file(home / "dropbox", "M1001_2024-03.csv", "2024-03-01", "2024-04-01", 15, 1)
    wait_for(
        lambda: len(run_statuses(home, port, "ingest_dropbox")) == 2,
        120,
        "the sensor to request the file's ingest run",
    )
    postmaster = int((home / "pgdata" / "postmaster.pid").read_text().split()[0])
    psutil.Process(postmaster).kill()
    assert up.wait(timeout=120) == 1
    assert "energy up: the embedded PostgreSQL stopped" in log.read_text()
    wait_for(lambda: leftovers(home) == [], 90, "every process to exit")

    up, _ = start_up(env, log)
    try:

        def loaded() -> bool:
            conn = psycopg2.connect(embedded_url(home, port))
            try:
                with conn.cursor() as cur:
                    cur.execute(
                        "select status, count(*) from raw.files where name = %s group by 1",
                        ("M1001_2024-03.csv",),
                    )
                    return cur.fetchall() == [("loaded", 1)]
            finally:
                conn.close()

        wait_for(
            lambda: (
                loaded()
                and all(s in FINISHED or s == "QUEUED" for _, s, _ in runs(home, port))
                and not [r for r in runs(home, port) if r[1] in IN_PROGRESS]
            ),
            600,
            "the file to load after the restart",
        )
        assert not any((home / "dropbox").iterdir())
    finally:
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=120) == 0
    assert leftovers(home) == []


def test_run_monitoring_knows_a_run_whose_process_is_gone(platform):
    """The launcher `energy up`'s instance uses tells Dagster's run monitoring which runs lost
    their process: the pid each run records, alive or not."""
    from dagster import DagsterInstance, job, op
    from dagster._core.events import EngineEventData
    from dagster._core.launcher import WorkerStatus

    from energy_assets.commands.session import platform_session
    from energy_assets.launcher import LocalRunLauncher

    @op
    def nothing() -> None:
        pass

    @job
    def idle() -> None:
        nothing()

    gone = subprocess.Popen(["true"])
    gone.wait()
    with platform_session(platform.settings), DagsterInstance.get() as instance:
        assert isinstance(instance.run_launcher, LocalRunLauncher)
        health = {}
        for name, pid in (("alive", os.getpid()), ("gone", gone.pid), ("unsaid", None)):
            run = instance.create_run_for_job(idle)
            if pid is not None:
                instance.report_engine_event(
                    "Started process for run", run, EngineEventData.in_process(pid)
                )
            health[name] = instance.run_launcher.check_run_worker_health(run).status
    assert health == {
        "alive": WorkerStatus.RUNNING,
        "gone": WorkerStatus.FAILED,
        "unsaid": WorkerStatus.RUNNING,  # started, its process not named yet
    }


def test_energy_up_fails_at_its_start_the_runs_left_starting(platform):
    """A run the last `energy up` launched whose process never reported its start fails at the
    next start (so run retries launch it again at once, not after the start timeout); runs
    waiting in the queue or started are left to the queue and to run monitoring."""
    import dagster_runs
    from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

    from energy_assets.commands.session import platform_session
    from energy_assets.launcher import fail_runs_left_starting

    with platform_session(platform.settings), DagsterInstance.get() as instance:
        queued, starting, started = (
            dagster_runs.create(instance, {}, "ingest_dropbox") for _ in range(3)
        )
        dagster_runs.enqueue(instance, queued)
        dagster_runs.report(
            instance, starting, DagsterEventType.RUN_STARTING, DagsterRunStatus.STARTING
        )
        dagster_runs.start(instance, started)
        assert fail_runs_left_starting(instance) == [starting.run_id]
        statuses = [instance.get_run_by_id(r.run_id).status for r in (queued, starting, started)]
        assert statuses == [
            DagsterRunStatus.QUEUED,
            DagsterRunStatus.FAILURE,
            DagsterRunStatus.STARTED,
        ]
        failed = instance.get_run_by_id(starting.run_id)
        assert failed.tags["dagster/failure_reason"] == "START_TIMEOUT"  # retried: not a step's
