"""Ingest under faults: kills at the dangerous moments, files changing or replaced while they
load, entries that cannot be read, names and ids past the limits, the partition lock, and data
that must be corrected or retried rather than kept wrong.

Every test runs the real ingest job (or the real loader in a child process) against a real
PostgreSQL; where a test must catch the ingest at a precise moment, it makes the ingest wait
there on something the test holds (a lock, a named pipe), never on a hook in the product code.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import pytest
from hostile_files import count, csv, kw_sum, rows
from ingest_runs import BOUND_SECONDS, files_config, pause_inserts, wait_for, waiting_on_lock
from ingest_runs import ingest_run as run_job

from energy_assets.ingest import loader

PAUSE_KEY = 7_310_999  # advisory lock the test holds to pause an ingest inside a trigger


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


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def good_file(dropbox: Path, name: str = "GOOD_2024-01.csv") -> int:
    """A valid feeder-meter file; the readings it must load."""
    data = rows(8, 10.0)
    (dropbox / name).write_text(csv(data))
    return count(data)


def statuses(platform) -> list[tuple]:
    frame = platform.query(
        "select name, status, coalesce(rule, '-'), rows, pending_move from raw.files"
        " order by file_id"
    )
    return [tuple(r) for r in frame.itertuples(index=False)]


def assert_good_loaded(platform, expected_rows: int, name: str = "GOOD_2024-01.csv") -> None:
    got = platform.scalar(
        "select count(*) from raw.readings join raw.files using (file_id) where name = %s", (name,)
    )
    assert got == expected_rows


# --- one bad entry never fails or hangs the others ---------------------------------------------


def test_named_pipe_is_skipped_and_never_opened(platform):
    dropbox = platform.settings.dropbox
    os.mkfifo(dropbox / "PIPE_2024-01.csv")  # hashing it would block until a writer comes
    good = good_file(dropbox)

    def unblock() -> None:  # a read of the pipe waits for a writer: give it one, and an end
        with contextlib.suppress(OSError):  # ENXIO: no one is reading it just now
            os.close(os.open(dropbox / "PIPE_2024-01.csv", os.O_WRONLY | os.O_NONBLOCK))

    with bounded(BOUND_SECONDS, unblock):  # named, as the sensor listed it (or a user)
        report = ingest_run(platform, ["PIPE_2024-01.csv", "GOOD_2024-01.csv"])

    assert [(r["file"], r["status"]) for r in report] == [("GOOD_2024-01.csv", "loaded")]
    assert_good_loaded(platform, good)
    assert (dropbox / "PIPE_2024-01.csv").exists()  # left alone
    assert [name for name, *_ in statuses(platform)] == ["GOOD_2024-01.csv"]


def test_socket_is_skipped(platform):
    dropbox = platform.settings.dropbox
    good = good_file(dropbox)
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(dropbox / "SOCK_2024-01.csv"))
        report = ingest_run(platform, ["SOCK_2024-01.csv", "GOOD_2024-01.csv"])
    assert [(r["file"], r["status"]) for r in report] == [("GOOD_2024-01.csv", "loaded")]
    assert_good_loaded(platform, good)
    assert [name for name, *_ in statuses(platform)] == ["GOOD_2024-01.csv"]


def test_name_that_is_not_utf8_loads_under_a_readable_name(platform):
    dropbox = platform.settings.dropbox
    data = rows(8, 20.0)
    raw_name = b"M\xff1_2024-01.csv"
    with open(os.path.join(os.fsencode(dropbox), raw_name), "wb") as handle:
        handle.write(csv(data).encode())
    good = good_file(dropbox)

    report = ingest_run(platform)

    readable = "M\\xff1_2024-01.csv"  # the byte 0xFF written as \xff, the rest as it was
    assert sorted((r["file"], r["status"]) for r in report) == [
        ("GOOD_2024-01.csv", "loaded"),
        (readable, "loaded"),
    ]
    meters = platform.query(
        "select meter_id, count(*) as n from raw.readings join raw.files using (file_id)"
        " where name = %s group by meter_id",
        (readable,),
    )
    assert meters.values.tolist() == [["M\\xff1", count(data)]]
    stored = Path(platform.scalar("select stored_as from raw.files where name = %s", (readable,)))
    assert stored.name == readable and stored.read_bytes() == csv(data).encode()
    assert_good_loaded(platform, good)
    assert os.listdir(dropbox) == []


def test_reason_file_name_past_the_file_system_limit_is_shortened(platform):
    dropbox = platform.settings.dropbox
    name = "UNK_" + "x" * 240 + ".csv"  # 248 bytes: with `.reason.json` past 255
    (dropbox / name).write_text("Date,Reading,Units\n2024-01-01 00:00,12.5,kWh\n")
    good = good_file(dropbox)

    report = ingest_run(platform)

    assert sorted((r["file"], r["status"]) for r in report) == [
        ("GOOD_2024-01.csv", "loaded"),
        (name, "quarantined"),
    ]
    file_id, stored = platform.query(
        "select file_id, stored_as from raw.files where name = %s", (name,)
    ).iloc[0]
    stored = Path(stored)
    assert stored.name.endswith(f".{file_id}.csv") and stored.name.startswith("UNK_xxx")
    reason = json.loads(stored.with_name(stored.name + ".reason.json").read_text())
    assert (reason["file"], reason["rule"]) == (name, "unknown_header")
    assert stored.read_text().startswith("Date,Reading")
    assert_good_loaded(platform, good)


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


# --- the partition lock --------------------------------------------------------------------


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


# --- kills ---------------------------------------------------------------------------------

CHILD = """
import sys
from dagster import DagsterInstance
from energy_assets.ingest.assets import ingest_dropbox
from energy_assets.resources import Platform
platform = Platform(home=sys.argv[1], warehouse_url=sys.argv[2])
result = ingest_dropbox.execute_in_process(
    instance=DagsterInstance.ephemeral(), resources={"platform": platform}
)
sys.exit(0 if result.success else 1)
"""


def start_ingest(platform) -> subprocess.Popen:
    """The ingest job in a child process, on the same dropbox and warehouse."""
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(platform.settings.home), platform.warehouse_url],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def kill(child: subprocess.Popen) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(BOUND_SECONDS)


def pause_at(platform, trigger: str):
    """A trigger on raw.files that makes an ingest wait there on a lock this connection holds."""
    pause = connect(platform)
    with pause.cursor() as cur:
        cur.execute(
            "create function pause_ingest() returns trigger language plpgsql as"
            f" $$ begin perform pg_advisory_lock({PAUSE_KEY});"
            f" perform pg_advisory_unlock({PAUSE_KEY}); return new; end $$"
        )
        cur.execute(f"create trigger pause {trigger} execute function pause_ingest()")
        cur.execute("select pg_advisory_lock(%s)", (PAUSE_KEY,))
    return pause


def resume(pause) -> None:
    with pause.cursor() as cur:
        cur.execute("drop trigger pause on raw.files")
        cur.execute("drop function pause_ingest()")
        cur.execute("select pg_advisory_unlock(%s)", (PAUSE_KEY,))
    pause.close()


PAUSES = {  # where a trigger on raw.files makes the ingest wait on the test's lock
    "row inserted": "before insert on raw.files for each row",
    "destination recorded": (
        "before update on raw.files for each row"
        " when (new.stored_as is distinct from old.stored_as and new.stored_as is not null)"
    ),
    "move marked done": (
        "before update on raw.files for each row when (old.pending_move and not new.pending_move)"
    ),
}


@pytest.mark.parametrize("moment", list(PAUSES))
def test_kill_at_any_moment_loses_nothing_and_the_rerun_completes(platform, moment):
    dropbox, archive = platform.settings.dropbox, platform.settings.archive
    data = rows(8, 40.0)
    content = csv(data).encode()
    (dropbox / "KILL_2024-01.csv").write_bytes(content)
    pause = pause_at(platform, PAUSES[moment])
    child = start_ingest(platform)
    try:
        wait_for(lambda: waiting_on_lock(platform), f"the ingest paused at: {moment}")
    finally:
        kill(child)
    resume(pause)

    # Nothing lost: the file is in the dropbox, or stored with its committed row.
    in_dropbox = (dropbox / "KILL_2024-01.csv").exists()
    stored = list(archive.rglob("KILL_2024-01*.csv"))
    rows_now = platform.query("select status, stored_as from raw.files")
    assert in_dropbox or (stored and [Path(s) for s in rows_now["stored_as"]] == stored)

    report = ingest_run(platform)  # the rerun loads it, or completes what the kill left

    files = platform.query("select name, status, sha256, stored_as, pending_move from raw.files")
    assert files[["name", "status", "pending_move"]].values.tolist() == [
        ["KILL_2024-01.csv", "loaded", False]
    ]
    assert Path(files["stored_as"][0]).read_bytes() == content
    assert files["sha256"][0] == sha256(content)
    assert platform.scalar("select count(*) from raw.readings") == count(data)
    assert os.listdir(dropbox) == []
    assert [r["status"] for r in report] == (["loaded"] if in_dropbox else [])


def test_kill_inside_an_archive_resumes_with_the_members_not_yet_loaded(platform):
    dropbox = platform.settings.dropbox
    a, b = rows(8, 43.0), rows(8, 44.0)
    with zipfile.ZipFile(dropbox / "PAIR_2024-01.zip", "w") as archive:
        archive.writestr("A1_2024-01.csv", csv(a))
        archive.writestr("B1_2024-01.csv", csv(b))
    pause = pause_at(
        platform, "before insert on raw.files for each row when (new.member = 'B1_2024-01.csv')"
    )
    child = start_ingest(platform)
    try:
        wait_for(lambda: waiting_on_lock(platform), "the ingest at the second member")
    finally:
        kill(child)
    resume(pause)
    assert statuses(platform) == [
        ("PAIR_2024-01.zip", "loaded", "-", 0, True),  # unpacked, not yet stored
        ("PAIR_2024-01.zip/A1_2024-01.csv", "loaded", "-", count(a), False),
    ]

    report = ingest_run(platform)

    assert [(r["file"], r["status"]) for r in report] == [
        ("PAIR_2024-01.zip", "loaded"),
        ("PAIR_2024-01.zip/B1_2024-01.csv", "loaded"),
    ]
    assert statuses(platform) == [
        ("PAIR_2024-01.zip", "loaded", "-", 0, False),
        ("PAIR_2024-01.zip/A1_2024-01.csv", "loaded", "-", count(a), False),
        ("PAIR_2024-01.zip/B1_2024-01.csv", "loaded", "-", count(b), False),
    ]
    assert platform.scalar("select count(*) from raw.readings") == count(a) + count(b)
    assert os.listdir(dropbox) == [] and list(platform.settings.unpacking.iterdir()) == []
    assert (platform.settings.archive / "archives" / "PAIR_2024-01.zip").is_file()


def test_kill_between_commit_and_move_is_completed_not_a_duplicate(platform):
    """Quarantined: its reason file is written after the commit and before the move. A named
    pipe at the reason file's name holds the ingest there (opening it waits for a reader)."""
    dropbox, quarantine = platform.settings.dropbox, platform.settings.quarantine
    content = b"Date,Reading,Units\n2024-01-01 00:00,12.5,kWh\n"
    (dropbox / "UNK_2024-01.csv").write_bytes(content)
    quarantine.mkdir(parents=True, exist_ok=True)
    fifo = quarantine / "UNK_2024-01.csv.reason.json"
    os.mkfifo(fifo)
    first = start_ingest(platform)
    second = None
    try:
        wait_for(
            lambda: (
                platform.scalar("select count(*) from raw.files") == 1
                or not (dropbox / "UNK_2024-01.csv").exists()
            ),
            "the first ingest committed (or moved) the file",
        )
        second = start_ingest(platform)  # meanwhile, another process on the same dropbox
        wait_for(lambda: waiting_on_lock(platform), "the second ingest waiting for the file")
        # Only now: until the pipe is gone the first cannot get past the reason file (unlinked
        # earlier, a first slow to reach it would write a plain file and move, killed too late).
        # The first still waits on the pipe it opened; the second, once it has the claim, must not.
        fifo.unlink()
    finally:
        kill(first)
    try:
        assert second.wait(BOUND_SECONDS) == 0, second.stderr.read().decode()[-3000:]
    finally:
        second.kill()

    files = platform.query("select name, status, rule, stored_as, pending_move from raw.files")
    assert files[["name", "status", "rule", "pending_move"]].values.tolist() == [
        ["UNK_2024-01.csv", "quarantined", "unknown_header", False]
    ]
    stored = Path(files["stored_as"][0])
    assert stored == quarantine / "UNK_2024-01.csv" and stored.read_bytes() == content
    reason = json.loads((quarantine / "UNK_2024-01.csv.reason.json").read_text())
    assert reason["rule"] == "unknown_header" and reason["lines"] == [1]
    assert os.listdir(dropbox) == []


# --- what is committed is what was read ---------------------------------------------------


def test_file_replaced_while_it_loads_is_left_and_loaded_as_replaced(platform):
    dropbox = platform.settings.dropbox
    path = dropbox / "SWAP_2024-01.csv"
    old, new = rows(8, 50.0), rows(8, 60.0)
    path.write_text(csv(old))
    lock = pause_inserts(platform)

    def replace_meanwhile() -> None:
        try:
            wait_for(lambda: waiting_on_lock(platform), "the ingest waiting to record the file")
            (dropbox / "swap.tmp").write_text(csv(new))
            os.replace(dropbox / "swap.tmp", path)  # a writer replacing the file, atomically
        finally:
            lock.rollback()

    writer = threading.Thread(target=replace_meanwhile)
    writer.start()
    first = ingest_run(platform)
    writer.join()
    lock.close()

    assert first == []  # nothing of it committed: it changed while it was read
    assert platform.scalar("select count(*) from raw.files") == 0
    assert path.read_text() == csv(new)

    report = ingest_run(platform)

    assert [(r["file"], r["status"]) for r in report] == [("SWAP_2024-01.csv", "loaded")]
    sha, stored = platform.query("select sha256, stored_as from raw.files").iloc[0]
    assert sha == sha256(csv(new).encode()) == sha256(Path(stored).read_bytes())
    kw = platform.scalar("select sum(value) from raw.readings where channel = 'kw_del'")
    assert kw == pytest.approx(kw_sum(new))


# --- duplicates and retries -----------------------------------------------------------------


def test_same_bytes_under_another_meters_name_are_that_meters_readings(platform):
    dropbox = platform.settings.dropbox
    data = rows(8, 70.0)
    for name in ("M1_2024-01.csv", "M2_2024-01.csv", "M1_2024-01 - Copy.csv"):
        (dropbox / name).write_text(csv(data))
        os.utime(dropbox / name, (time.time() - 100 + len(name),) * 2)

    ingest_run(platform)

    files = platform.query("select name, status, sha256 from raw.files order by file_id")
    assert files[["name", "status"]].values.tolist() == [
        ["M1_2024-01.csv", "loaded"],
        ["M2_2024-01.csv", "loaded"],
        ["M1_2024-01 - Copy.csv", "duplicate"],  # M1 again
    ]
    assert set(files["sha256"]) == {sha256(csv(data).encode())}  # the content's own hash
    per_meter = platform.query("select meter_id, count(*) from raw.readings group by 1 order by 1")
    assert per_meter.values.tolist() == [["M1", count(data)], ["M2", count(data)]]


FORMAT = """\
name: site_log
kind: readings
timestamp: [date]
channels:
  kwh_import: [reading]
required: [kwh_import]
default_interval_minutes: 30
"""


def test_quarantined_content_is_tried_again_when_dropped_again(platform):
    dropbox = platform.settings.dropbox
    content = "Date,Reading\n2024-01-01 00:00,1.5\n2024-01-01 00:30,2.5\n"
    (dropbox / "SITE7_2024-01.csv").write_text(content)
    first = ingest_run(platform)
    assert [(r["file"], r["status"]) for r in first] == [("SITE7_2024-01.csv", "quarantined")]

    # The cause is fixed (a format for the layout), and the same bytes dropped again.
    (platform.settings.home / "formats").mkdir(exist_ok=True)
    (platform.settings.home / "formats" / "site_log.yaml").write_text(FORMAT)
    (dropbox / "SITE7_2024-01.csv").write_text(content)
    second = ingest_run(platform)

    assert [(r["file"], r["status"], r["rows"]) for r in second] == [
        ("SITE7_2024-01.csv", "loaded", 2)
    ]
    assert [(n, s, r) for n, s, r, *_ in statuses(platform)] == [
        ("SITE7_2024-01.csv", "quarantined", "unknown_header"),
        ("SITE7_2024-01.csv", "loaded", "-"),
    ]


# --- local times corrected when the meter's timezone arrives ------------------------------------


def test_readings_before_metadata_are_read_again_in_the_meters_timezone(platform):
    dropbox = platform.settings.dropbox
    winter = rows(8, 80.0, start="2024-01-01 00:00")  # Amsterdam is UTC+1 in winter
    summer = rows(8, 81.0, start="2024-07-01 00:00")  # and UTC+2 in summer
    (dropbox / "AMS_2024-01.csv").write_text(csv(winter))
    with zipfile.ZipFile(dropbox / "AMS_2024-07.zip", "w") as archive:  # read from its archive
        archive.writestr("AMS_2024-07.csv", csv(summer))
    (dropbox / "UTC_2024-01.csv").write_text(csv(rows(8, 82.0)))  # a meter whose zone stays
    ingest_run(platform)  # no metadata yet: read in ENERGY_TIMEZONE (UTC)

    (dropbox / "meter-data.csv").write_text(
        "ID,Name,Multiplier,Timezone\nAMS,North,1,Europe/Amsterdam\n"
    )
    [meta] = ingest_run(platform)

    expected = sorted(
        pd.Timestamp(r[0]).tz_localize("Europe/Amsterdam").tz_convert("UTC")
        for r in winter + summer
    )
    got = platform.query(
        "select distinct interval_start from raw.readings where meter_id = 'AMS' order by 1"
    )["interval_start"].tolist()
    assert got == expected
    assert got[0] == pd.Timestamp("2023-12-31 23:00", tz="UTC")  # into the month before
    assert platform.scalar("select count(*) from raw.readings where meter_id = 'AMS'") == count(
        winter
    ) + count(summer)
    utc = platform.query("select min(interval_start) from raw.readings where meter_id = 'UTC'")
    assert utc.iat[0, 0] == pd.Timestamp("2024-01-01 00:00", tz="UTC")
    zones = platform.query(
        "select meter_id, local_timezone, first_interval from raw.file_meters order by file_id"
    )
    assert zones[["meter_id", "local_timezone"]].values.tolist() == [
        ["AMS", "Europe/Amsterdam"],
        ["AMS", "Europe/Amsterdam"],
        ["UTC", "UTC"],
    ]
    assert meta["status"] == "loaded"
    assert meta["months"] == [
        "2023-12",
        "2024-01",
        "2024-02",
        "2024-03",
        "2024-04",
        "2024-05",
        "2024-06",
        "2024-07",
    ]


# --- archives ----------------------------------------------------------------------------------


def test_gzip_bomb_is_refused_while_streaming(platform, monkeypatch):
    monkeypatch.setenv("ENERGY_MAX_UNPACKED_BYTES", str(64 << 20))
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip, which declares no size up front
    with (platform.settings.dropbox / "BOMB_2024-01.csv.gz").open("wb") as bomb:
        bomb.write(packer.compress(b"Start Time,kW del\n"))
        for _ in range(128):  # 128 MiB
            bomb.write(packer.compress(b"0" * (1 << 20)))
        bomb.write(packer.flush())
    good = good_file(platform.settings.dropbox)

    report = ingest_run(platform)

    assert sorted((r["file"], r["status"]) for r in report) == [
        ("BOMB_2024-01.csv.gz", "quarantined"),
        ("GOOD_2024-01.csv", "loaded"),
    ]
    [(rule, sample)] = platform.query(
        "select rule, sample from raw.files where status = 'quarantined'"
    ).values.tolist()
    assert (rule, sample) == ("archive_bomb", f"more than {64 << 20:,} bytes unpacked")
    assert list(platform.settings.unpacking.iterdir()) == []  # nothing left unpacked
    assert_good_loaded(platform, good)


def test_gzip_members_name_and_hash(platform):
    data = rows(8, 90.0)
    text = csv(data).encode()
    (platform.settings.dropbox / "M7_2024-01.csv.gz").write_bytes(gzip.compress(text, mtime=0))
    ingest_run(platform)
    files = platform.query(
        "select f.name, f.status, f.sha256, coalesce(f.member, '-'), coalesce(a.name, '-'),"
        " coalesce(f.name_meter, '-')"
        " from raw.files f left join raw.files a on a.file_id = f.archive_id order by f.file_id"
    )
    assert files.values.tolist() == [
        ["M7_2024-01.csv.gz", "loaded", sha256(gzip.compress(text, mtime=0)), "-", "-", "-"],
        [
            "M7_2024-01.csv.gz/M7_2024-01.csv",
            "loaded",
            sha256(text),
            "M7_2024-01.csv",
            "M7_2024-01.csv.gz",
            "M7",
        ],
    ]
