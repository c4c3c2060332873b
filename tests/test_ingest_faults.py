"""Ingest under faults: kills at the dangerous moments, files changing or replaced while they
load, entries that cannot be read, names and ids past the limits, the partition lock, and data
that must be corrected or retried rather than kept wrong.

Every test runs the real ingest job (or the real loader in a child process) against a real
PostgreSQL; where a test must catch the ingest at a precise moment, it makes the ingest wait
there on something the test holds (a lock, a named pipe), never on a hook in the product code.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg2
import pytest
from hostile_files import count, csv, rows
from ingest_runs import BOUND_SECONDS, files_config
from ingest_runs import ingest_run as run_job

from energy_assets.ingest import loader


def ingest_run(platform, files: list[str] | None = None) -> list[dict]:
    return run_job(platform, files_config(files or []))


@contextlib.contextmanager
def bounded(seconds: float, unblock: Callable[[], None]) -> Iterator[None]:
    """Fail the test when the block has not finished after `seconds`: from then on a watchdog
    calls `unblock()` every so often, to free the hung work so that the test can end."""
    fired, finished = threading.Event(), threading.Event()

    def watch() -> None:
        if finished.wait(seconds):
            return
        fired.set()
        while not finished.wait(0.2):
            unblock()

    watchdog = threading.Thread(target=watch, daemon=True)
    watchdog.start()
    try:
        yield
    finally:
        finished.set()
        watchdog.join()
        if fired.is_set():
            pytest.fail(f"did not finish within {seconds} s: it hangs")


def connect(platform):
    conn = psycopg2.connect(platform.warehouse_url)
    conn.autocommit = True
    return conn


def good_file(dropbox: Path, name: str = "GOOD_2024-01.csv") -> int:
    """A valid feeder-meter file; the readings it must load."""
    data = rows(8, 10.0)
    (dropbox / name).write_text(csv(data))
    return count(data)


def assert_good_loaded(platform, expected_rows: int, name: str = "GOOD_2024-01.csv") -> None:
    got = platform.scalar(
        "select count(*) from raw.readings join raw.files using (file_id) where name = %s", (name,)
    )
    assert got == expected_rows


def test_meter_id_too_long_for_the_index_is_refused_by_its_rule(platform):
    dropbox = platform.settings.dropbox
    # Random letters: a repeated letter would compress below the index limit.
    letters = np.random.default_rng(0).choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), 10_000)
    blob = "".join(letters)
    data = [["M1", *r] for r in rows(4, 30.0)]
    data[2][0] = blob  # line 4
    text = csv(data, ["Meter", "Start Time", "kW del", "kW rec", "kVA del", "kVA rec"])
    (dropbox / "LONGID_2024-01.csv").write_text(text)
    good = good_file(dropbox)

    report = ingest_run(platform)

    assert sorted((r["file"], r["status"]) for r in report) == [
        ("GOOD_2024-01.csv", "loaded"),
        ("LONGID_2024-01.csv", "quarantined"),
    ]
    reason = json.loads(
        (platform.settings.quarantine / "LONGID_2024-01.csv.reason.json").read_text()
    )
    assert (reason["rule"], reason["lines"], reason["sample"]) == (
        "meter_id_too_long",
        [4],
        blob[:80],
    )
    assert_good_loaded(platform, good)


def test_time_sorted_file_over_many_chunks_loads_while_others_read(platform, monkeypatch):
    monkeypatch.setattr(loader, "CHUNK_ROWS", 1000)  # so the months arrive chunk after chunk
    data = rows(4 * 31 * 96, 5.0, start="2024-01-01 00:00")  # Jan to early May, sorted by time
    (platform.settings.dropbox / "SORTED_2024.csv").write_text(csv(data))
    reader = connect(platform)
    reader.cursor().execute("set statement_timeout = '30s'")
    counts = []

    def terminate() -> None:  # unwedge a deadlocked ingest so the test can end
        platform.query(
            "select pg_terminate_backend(pid) from pg_stat_activity"
            " where datname = current_database() and pid <> pg_backend_pid()"
        )

    done = threading.Event()

    def read_meanwhile() -> None:
        while not done.is_set():
            with reader.cursor() as cur:
                cur.execute("select count(*) from raw.readings")
                counts.append(cur.fetchone()[0])
            time.sleep(0.05)

    readers = threading.Thread(target=read_meanwhile, daemon=True)
    readers.start()
    try:
        with bounded(BOUND_SECONDS, terminate):
            report = ingest_run(platform)
    finally:
        done.set()
        readers.join(BOUND_SECONDS)
        reader.close()

    assert [(r["file"], r["status"], r["rows"]) for r in report] == [
        ("SORTED_2024.csv", "loaded", count(data))
    ]
    assert report[0]["months"] == ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05"]
    assert platform.scalar("select count(*) from raw.readings") == count(data)
    assert set(counts) <= {0, count(data)}  # readers never blocked, never saw half a file
