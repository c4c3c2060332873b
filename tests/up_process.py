"""Helpers for tests that run `energy up` as a real process and watch it from outside."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import requests

from energy_assets.dashboard.queries import freshness

ENERGY = str(Path(sys.executable).with_name("energy"))
SAMPLE_SYSTEM_INTERVALS = (31 + 29) * 96  # Jan and Feb 2024, 15-minute intervals
PARTITION_STATS = """
query ($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) {
    ... on AssetNode { partitionStats { numMaterialized numMaterializing numFailed } } } }
"""


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def answers(url: str) -> bool:
    """Whether `url` answers 200 now (a server still starting refuses the connection)."""
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def ui_answers(port: int) -> bool:
    return answers(f"http://127.0.0.1:{port}/server_info")


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    response = requests.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": query, "variables": variables or {}},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["data"]


def partition_stats(port: int, asset: str) -> dict:
    """Materialized / materializing / failed month counts of `asset` (`marts/fct_gaps`)."""
    node = graphql(port, PARTITION_STATS, {"path": asset.split("/")})["assetNodeOrError"]
    return node["partitionStats"]


def embedded_url(home: Path, db_port: int, database: str = "energy", role: str = "postgres") -> str:
    """The embedded server's URL for `role`, its password read from the home's passfile."""
    passfile = home / "secrets" / f"{role}.pgpass"
    return f"postgresql://{role}@127.0.0.1:{db_port}/{database}?passfile={passfile}"


def system_intervals(home: Path, db_port: int) -> int:
    try:
        conn = psycopg2.connect(embedded_url(home, db_port), connect_timeout=2)
    except psycopg2.OperationalError:
        return 0
    try:
        with conn.cursor() as cur:
            cur.execute("select count(*) from marts.fct_system_intervals")
            return cur.fetchone()[0]
    except psycopg2.Error:
        return 0
    finally:
        conn.close()


FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
"""Run statuses that end a run."""


def settled(home: Path, db_port: int) -> bool:
    """Whether the sample is in the marts and the platform has nothing left to do: no file in
    the dropbox, every run finished, every month rebuilt after its last file (the dashboard's
    freshness). The count of system intervals alone is reached while the last month's run (its
    anomalies, plots) and the marts built after the months are still under way."""
    if system_intervals(home, db_port) != SAMPLE_SYSTEM_INTERVALS:
        return False
    if any((home / "dropbox").iterdir()):
        return False
    if not all(status in FINISHED for _, status, _ in runs(home, db_port)):
        return False
    conn = psycopg2.connect(embedded_url(home, db_port), connect_timeout=5)
    try:
        return bool(freshness(conn)["up_to_date"].all())
    finally:
        conn.close()


@contextlib.contextmanager
def energy_up(ui_port: int, log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """`energy up` with `env` until the block ends, then Ctrl-C unless it stopped already; the
    log's tail is printed, so a failing test shows what the platform said."""
    with open(log, "w") as out:
        up = subprocess.Popen(
            [ENERGY, "up", "--port", str(ui_port)], stdout=out, stderr=out, env=env
        )
    try:
        wait_for(lambda: ui_answers(ui_port), 300, "the Dagster UI")
        yield up
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(timeout=90)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()
        print(log.read_text()[-3000:])
        dagster_log = Path(env["ENERGY_HOME"]) / "logs" / "dagster.log"
        if dagster_log.exists():
            print(dagster_log.read_text()[-3000:])


def platform_environ(home: Path, **values: str) -> dict[str, str]:
    """This environment without any platform variable, then a home of its own and `values`."""
    from conftest import PLATFORM_ENV, free_port

    env = {k: v for k, v in os.environ.items() if k not in PLATFORM_ENV}
    env.update(
        ENERGY_HOME=str(home),
        ENERGY_PG_PORT=str(free_port()),
        ENERGY_DASHBOARD_PORT=str(free_port()),
        ENERGY_FILE_STABLE_SECONDS="1",
        ENERGY_FORECASTS="off",
    )
    env.update(values)
    return env


def energy(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    """`energy ARGS` as a user types it, its output captured."""
    return subprocess.run(
        [ENERGY, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def leftovers(home: Path) -> list[str]:
    """Live processes that belong to the platform in `home`: started with it in their
    environment, or naming it (or its data directory) on their command line."""
    import psutil

    marks = {str(home), str((home / "pgdata").resolve())}
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE or process.pid == os.getpid():
            continue
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            environ_home = process.environ().get("ENERGY_HOME")
        except psutil.Error:
            continue
        if environ_home == str(home) or any(mark in cmdline for mark in marks):
            found.append(f"{process.pid} {cmdline[:120]}")
    return found


def runs(home: Path, db_port: int) -> list[tuple[str, str, dict[str, str]]]:
    """(job, status, tags) of every run in the home's Dagster storage, oldest first."""
    conn = psycopg2.connect(embedded_url(home, db_port, "dagster"), connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select r.pipeline_name, r.status,"
                " coalesce(json_object_agg(t.key, t.value) filter (where t.key is not null), '{}')"
                " from runs r left join run_tags t on t.run_id = r.run_id"
                " group by r.run_id, r.pipeline_name, r.status, r.create_timestamp"
                " order by r.create_timestamp"
            )
            return cur.fetchall()
    finally:
        conn.close()
