"""`energy up` on the embedded PostgreSQL: UI up, sensor loads dropped files, Ctrl-C stops all."""

from __future__ import annotations

import signal
import subprocess

import psutil
import psycopg2
import pytest
from conftest import PLATFORM_ENV, free_port, server_home
from up_process import ENERGY, SAMPLE_SYSTEM_INTERVALS, system_intervals, ui_answers, wait_for

from energy_assets.postgres import platform_database
from energy_assets.sample import write_sample
from energy_assets.settings import Settings


@pytest.fixture
def embedded_home():
    with server_home() as home:
        yield home


def test_energy_up_serves_ui_loads_dropped_files_and_stops_cleanly(
    embedded_home, tmp_path, monkeypatch
):
    for key in PLATFORM_ENV:
        monkeypatch.delenv(key, raising=False)
    home, ui_port, db_port = embedded_home, free_port(), free_port()
    monkeypatch.setenv("ENERGY_HOME", str(home))
    monkeypatch.setenv("ENERGY_PG_PORT", str(db_port))
    monkeypatch.setenv("ENERGY_FILE_STABLE_SECONDS", "1")
    monkeypatch.setenv("ENERGY_FORECASTS", "off")  # covered by test_forecast_assets
    with open(tmp_path / "up.log", "w") as log:
        up = subprocess.Popen([ENERGY, "up", "--port", str(ui_port)], stdout=log, stderr=log)
    try:
        wait_for(lambda: ui_answers(ui_port), 120, "the Dagster UI")
        children = psutil.Process(up.pid).children(recursive=True)
        assert any("dagster-daemon" in " ".join(c.cmdline()) for c in children)

        write_sample(home / "dropbox")
        wait_for(lambda: system_intervals(db_port) == SAMPLE_SYSTEM_INTERVALS, 180,
                 "the sensor to load the sample and build the marts")  # fmt: skip
        assert not any((home / "dropbox").iterdir())

        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=90) == 0
    finally:
        if up.poll() is None:
            up.kill()
        print((tmp_path / "up.log").read_text()[-3000:])  # shown when the test fails
    assert not (home / "pgdata" / "postmaster.pid").exists()
    assert not ui_answers(ui_port)
    survivors = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert survivors == []

    # The data survives for the next start.
    with platform_database(Settings.from_env()) as db:
        conn = psycopg2.connect(db.warehouse_url)
        with conn.cursor() as cur:
            cur.execute("select count(*) from marts.fct_system_intervals")
            assert cur.fetchone()[0] == SAMPLE_SYSTEM_INTERVALS
            cur.execute("show work_mem")  # the embedded server's tuning, given at every start
            assert cur.fetchone()[0] == "64MB"
        conn.close()
