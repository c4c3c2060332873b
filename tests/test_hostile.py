"""Files that fight back: a corpus of hostile meter files through one `run_once`, file by file.

Each case is a small function returning the file and its expected verdict. Data rows sit on
file line i + 2 (header on line 1), which is what the expected `lines` count on.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import threading
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from conftest import SHARED_DATA
from dagster import DagsterInstance, build_sensor_context
from hostile_files import (
    HEADER,
    Case,
    Link,
    count,
    csv,
    flattened,
    kw_sum,
    rows,
    typed,
    with_cached_errors,
    workbook,
)
from ingest_runs import (
    BOUND_SECONDS,
    files_config,
    ingest_run,
    pause_inserts,
    platform_resource,
    wait_for,
    waiting_on_lock,
)

from energy_assets.ingest.sensors import dropbox_sensor
from energy_assets.settings import Settings

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
REASON_KEYS = {"rule", "message", "lines", "sample"}


def quarantined(name: str, data: str | bytes, rule: str, lines: list[int] | None = None) -> Case:
    data = data.encode() if isinstance(data, str) else data
    return Case(name, data, "quarantined", rule, lines=lines)


def loaded(name: str, data: str | bytes, n: int, **extra) -> Case:
    data = data.encode() if isinstance(data, str) else data
    return Case(name, data, "loaded", rows=n, **extra)


def archive(name: str, data: bytes, *members: Case) -> Case:
    """An archive: unpacked (loaded, no readings of its own); its members each get a verdict."""
    return Case(name, data, "loaded", rows=0, members=members)


def zipped(members: dict[str, str | bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in members.items():
            target.writestr(name, data)
    return out.getvalue()


# --- quarantined ------------------------------------------------------------------------------


def empty_file():
    return quarantined("EMPTY_2024-01.csv", b"", "empty_file")


def only_blank_lines():
    return quarantined("BLANK_2024-01.csv", b"\n\r\n \t\n\n", "empty_file")


def header_only():
    return quarantined("HDR_2024-01.csv", csv([]) + "\n\n", "header_only")


def unknown_header():
    text = "Date,Reading,Units\n2024-01-01 00:00,12.5,kWh\n"
    return quarantined("UNK_2024-01.csv", text, "unknown_header", [1])


def missing_kw_del():
    data = [[r[0], *r[2:]] for r in rows(8, 21)]
    header = ["Start Time", "kW rec", "kVA del", "kVA rec"]
    return quarantined("NOKW_2024-01.csv", csv(data, header), "missing_column", [1])


def zip_named_csv():  # judged by content: a zip, whatever its name says
    data = rows(8, 22)
    member = loaded("ZIP_2024-01.csv/ZIPPED_2024-01.csv", "", count(data), meter="ZIPPED")
    return archive("ZIP_2024-01.csv", zipped({"ZIPPED_2024-01.csv": csv(data)}), member)


def gzip_csv():
    data = rows(8, 23)
    member = loaded("GZ_2024-01.csv.gz/GZ_2024-01.csv", "", count(data), meter="GZ")
    return archive("GZ_2024-01.csv.gz", gzip.compress(csv(data).encode(), mtime=0), member)


def zip_of_several():
    a, b = rows(8, 71), rows(8, 72)
    members = {
        "data/": "",  # a folder entry: skipped
        "data/ZIPA_2024-01.csv": csv(a),
        "ZIPB_2024-01.csv": csv(b, sep=";"),
        "__MACOSX/._ZIPB_2024-01.csv": "resource fork",  # skipped
        "notes.csv": "Date,Reading,Units\n2024-01-01 00:00,12.5,kWh\n",
        "inner.csv.gz": gzip.compress(csv(rows(8, 73)).encode(), mtime=0),
        "BASE_2024-01.csv": plain().data,  # loaded before, under this name: a duplicate
    }
    return archive(
        "BATCH_2024-01.zip",
        zipped(members),
        loaded("BATCH_2024-01.zip/data/ZIPA_2024-01.csv", "", count(a), meter="ZIPA"),
        loaded("BATCH_2024-01.zip/ZIPB_2024-01.csv", "", count(b), meter="ZIPB"),
        quarantined("BATCH_2024-01.zip/notes.csv", "", "unknown_header", [1]),
        quarantined("BATCH_2024-01.zip/inner.csv.gz", "", "nested_archive"),
        Case("BATCH_2024-01.zip/BASE_2024-01.csv", b"", "duplicate", rows=0),
    )


def zip_bomb():  # 256 MiB of zeros in 255 KB: past the default 200:1 ratio
    out = io.BytesIO()
    with (
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb,
        bomb.open("BOMB_2024-01.csv", "w", force_zip64=True) as member,
    ):
        for _ in range(256):
            member.write(b"0" * (1 << 20))
    return quarantined("BOMB_2024-01.zip", out.getvalue(), "archive_bomb")


def nul_padded():  # a copy cut short by a crash: valid rows, then preallocated zero bytes
    return quarantined("NUL_2024-01.csv", csv(rows(8, 24)).encode() + b"\0" * 512, "binary_file")


def two_sheets():
    sheet = [HEADER, *typed(rows(8, 25))]
    return quarantined("XL2_2024-01.xlsx", workbook(sheet, sheet), "multiple_sheets")


def cached_formula_error():
    cells = typed(rows(8, 26))
    cells[3][1] = "=1/0"  # saved by Excel with the cached value #DIV/0!
    data = with_cached_errors(workbook([HEADER, *cells]))
    return quarantined("XLERR_2024-01.xlsx", data, "formula_error", [5])  # sheet row 5


def more_fields_than_header():
    data = rows(8, 31)
    data[3].append("7.50")  # six fields under five columns
    return quarantined("WIDE_2024-01.csv", csv(data), "bad_row", [5])


def truncated_last_line():
    text = csv(rows(12, 32)) + "2024-01-01 03:00,12."  # the copy stopped mid-record
    return quarantined("TRUNC_2024-01.csv", text, "truncated_last_line", [14])


def duplicate_column():
    data = [[*r, f"{float(r[1]) + 5:.2f}"] for r in rows(8, 33)]  # kW del twice, differing
    text = csv(data, [*HEADER, "kW del"])
    return quarantined("DUPCOL_2024-01.csv", text, "duplicate_column", [1])


def non_numeric():
    data = rows(8, 34)
    data[5][1] = "abc"
    return quarantined("ABC_2024-01.csv", csv(data), "non_numeric", [7])


def bad_timestamp():
    data = rows(8, 35)
    data[4][0] = "2024-13-45 00:00"
    return quarantined("BADTS_2024-01.csv", csv(data), "bad_timestamp", [6])


def conflicting_duplicate():
    data = rows(8, 36)
    data.append([data[2][0], "99.00", *data[2][2:]])  # 00:30 again, other kW del
    return quarantined("CONFL_2024-01.csv", csv(data), "conflicting_duplicate", [4, 10])


def off_interval_grid():
    data = rows(8, 37)
    data.insert(3, ["2024-01-01 00:37", "5.00", "0.10", "6.00", "0.15"])
    return quarantined("GRID_2024-01.csv", csv(data), "off_interval_grid", [5])


def before_2000():
    data = rows(8, 38, start="1999-12-31 23:45")  # first row: 15 minutes before 2000
    return quarantined("OLD_1999-12.csv", csv(data), "timestamp_out_of_range", [2])


def in_the_future():
    data = rows(8, 39, start=f"{TODAY - timedelta(days=1):%Y-%m-%d %H:%M}")
    data.append([f"{TODAY + timedelta(days=3):%Y-%m-%d %H:%M}", "5.00", "0.10", "6.00", "0.15"])
    return quarantined("FUTURE_next-week.csv", csv(data), "timestamp_out_of_range", [10])


def hours_ahead():  # less than a day ahead (a clock or time zone a little off): loads
    data = rows(8, 69, start=f"{TODAY + timedelta(hours=6):%Y-%m-%d %H:%M}")
    return loaded("AHEAD_today.csv", csv(data), count(data), meter="AHEAD")


def negative_kw_del():  # a reversed CT: a reading to flag, not a file to refuse
    data = rows(8, 40)
    data[6][1] = "-3.50"
    return loaded("NEGKW_2024-01.csv", csv(data), count(data), meter="NEGKW", kw_del=kw_sum(data))


def negative_kva_del():
    data = rows(8, 41)
    data[2][3] = "-1.25"
    return loaded("NEGKVA_2024-01.csv", csv(data), count(data), meter="NEGKVA")


def symlink():  # to a valid file outside the dropbox, which must stay untouched
    return Case("LINK_2024-01.csv", Link(csv(rows(8, 42)).encode()), "quarantined", "symlink")


def mixed_timezones():
    data = rows(8, 43)
    for row in data[4:]:  # the same instants, half of them written in +01:00
        local = datetime.fromisoformat(row[0]) + timedelta(hours=1)
        row[0] = f"{local:%Y-%m-%d %H:%M}+01:00"
    return quarantined("MIXTZ_2024-01.csv", csv(data), "mixed_timezones")


# --- loaded -----------------------------------------------------------------------------------


def meter_metadata():  # names three meters of the corpus; UNLISTED is not among them
    text = "ID,Name,Multiplier\nBASE,North,1\nSEMI,North,2\nTAB,South,1\n"
    return loaded("meter-data.csv", text, 0)


def plain():
    data = rows(8, 50)
    return loaded("BASE_2024-01.csv", csv(data), count(data), meter="BASE")


def same_bytes_other_name():
    return Case("BASE_2024-01 - Copy.csv", plain().data, "duplicate", rows=0)


def semicolons():
    data = rows(8, 51)
    return loaded("SEMI_2024-01.csv", csv(data, sep=";"), count(data), meter="SEMI")


def tabs():
    data = rows(8, 52)
    return loaded("TAB_2024-01.csv", csv(data, sep="\t"), count(data), meter="TAB")


def decimal_commas():
    data = rows(8, 1.5)  # 1,50 1,75 2,00 ...: must not become 150 or 200
    text = csv([[r[0], *(v.replace(".", ",") for v in r[1:])] for r in data], sep=";")
    return loaded("COMMA_2024-01.csv", text, count(data), meter="COMMA", kw_del=kw_sum(data))


def utf8_bom():
    data = rows(8, 53)
    return loaded("BOM_2024-01.csv", b"\xef\xbb\xbf" + csv(data).encode(), count(data), meter="BOM")


def cp1252_meter_column():
    data = rows(8, 54)
    text = csv([["Zähler1", *r] for r in data], ["Meter", *HEADER])
    return loaded("LATIN_2024-01.csv", text.encode("cp1252"), count(data), meter="Zähler1")


def quoted_comments():
    data = rows(6, 55)
    notes = ['"swapped, see ticket 4711"', '"read by hand\nsecond visit"', '"said ""approx"""']
    lines = [[*r, notes[i % 3]] for i, r in enumerate(data)]
    lines[4] = [f'"{v}"' for v in data[4]] + ['""']  # every field quoted, empty comment
    text = csv(lines, [*HEADER, "Comment"])
    return loaded("QUOTED_2024-01.csv", text, count(data), meter="QUOTED", kw_del=kw_sum(data))


def gaps():
    data = rows(8, 56)
    data[1][2], data[2][3], data[3][4] = "", "NaN", "Null"
    data[5][1:5] = ["", "NaN", "Null", ""]  # an interval with no value at all
    assert count(data) == 8 * 4 - 3 - 4
    return loaded("GAPS_2024-01.csv", csv(data), count(data), meter="GAPS")


def identical_duplicates():
    data = rows(8, 57)
    data = [*data[:3], data[2], *data[3:], data[6]]  # 00:30 twice in a row, 01:30 again at the end
    assert count(data) == 8 * 4
    return loaded("DUPROWS_2024-01.csv", csv(data), count(data), meter="DUPROWS")


def out_of_order():
    data = rows(8, 58)
    data = data[4:] + data[:4][::-1]
    return loaded("SHUFFLED_2024-01.csv", csv(data), count(data), meter="SHUFFLED")


def vendor_spelling():
    data = rows(8, 59)
    header = ["START_TIME", "KW_DEL", "KW_REC", "KVA_DEL", "KVA_REC"]
    return loaded("VENDOR_2024-01.csv", csv(data, header), count(data), meter="VENDOR")


def spaces_in_name():
    data = rows(8, 60)
    return loaded("Feeder 7 North_2024-01.csv", csv(data), count(data), meter="Feeder 7 North")


def quotes_in_name():
    data, meter = rows(8, 61), 'O\'Brien "Main"'
    return loaded(f"{meter}_2024-01.csv", csv(data), count(data), meter=meter)


def unicode_name():
    data = rows(8, 62)
    return loaded("zähler_ü.csv", csv(data), count(data), meter="zähler")


def shell_name():
    data = rows(8, 63)
    meter = "$(echo hi);rm -rf x"
    return loaded(f"{meter}_2024.csv", csv(data), count(data), meter=meter)


def more_shell_name():
    data = rows(8, 64)
    meter = "-n `id` |&>*?!#<"
    return loaded(f"{meter}_2024.csv", csv(data), count(data), meter=meter)


def backslash_name():  # a Windows path that became a file name
    data, meter = rows(8, 68), "C:\\meters\\M5"
    return loaded(f"{meter}_2024-01.csv", csv(data), count(data), meter=meter)


def no_final_newline():
    data = rows(8, 65)
    return loaded("NOEOL_2024-01.csv", csv(data).rstrip("\n"), count(data), meter="NOEOL")


def meter_without_metadata():
    data = rows(8, 66)
    return loaded("UNLISTED_2024-01.csv", csv(data), count(data), meter="UNLISTED")


def one_sheet_workbook():
    data = rows(8, 67)
    xlsx = workbook([HEADER, *typed(data)])
    return loaded("XL1_2024-01.xlsx", xlsx, count(data), meter="XL1", kw_del=kw_sum(data))


CASES = [  # processed in this order (by modification time)
    meter_metadata,
    plain,
    same_bytes_other_name,
    empty_file,
    only_blank_lines,
    header_only,
    unknown_header,
    missing_kw_del,
    zip_named_csv,
    gzip_csv,
    zip_of_several,
    zip_bomb,
    nul_padded,
    two_sheets,
    cached_formula_error,
    more_fields_than_header,
    truncated_last_line,
    duplicate_column,
    non_numeric,
    bad_timestamp,
    conflicting_duplicate,
    off_interval_grid,
    before_2000,
    in_the_future,
    hours_ahead,
    negative_kw_del,
    negative_kva_del,
    symlink,
    mixed_timezones,
    semicolons,
    tabs,
    decimal_commas,
    utf8_bom,
    cp1252_meter_column,
    quoted_comments,
    gaps,
    identical_duplicates,
    out_of_order,
    vendor_spelling,
    spaces_in_name,
    quotes_in_name,
    unicode_name,
    shell_name,
    more_shell_name,
    backslash_name,
    no_final_newline,
    meter_without_metadata,
    one_sheet_workbook,
]


def write_corpus(dropbox: Path, outside: Path, cases: list[Case]) -> None:
    """Write the files one second apart in age, so the ingest takes them in list order."""
    first = time.time() - 3600
    for i, case in enumerate(cases):
        path = dropbox / case.name
        if isinstance(case.data, Link):
            (outside / case.name).write_bytes(case.data.target)
            path.symlink_to(outside / case.name)
        else:
            path.write_bytes(case.data)
        os.utime(path, (first + i, first + i), follow_symlinks=False)


def expected(case: Case) -> dict:
    want = {"status": case.status, "report": case.status, "rule": case.rule, "rows": case.rows}
    if case.status == "quarantined":
        want["reason.json"] = (case.rule, [])
        want["rows"] = 0
    if case.lines is not None:
        want["lines"] = case.lines
    if case.meter is not None:
        want["meters"] = [case.meter]
    if case.kw_del is not None:
        want["kw_del"] = pytest.approx(case.kw_del)
    return want


def observed(case: Case, file, report_row: dict | None, readings, quarantine: Path) -> dict:
    mine = readings[readings["file_id"] == file.file_id]
    got = {
        "status": file.status,
        "report": report_row and report_row["status"],
        "rule": file.rule if isinstance(file.rule, str) else None,  # NULL comes back as NaN
        "rows": len(mine),
        "meters": sorted(mine["meter_id"].unique()),
        "kw_del": float(mine.loc[mine["channel"] == "kw_del", "value"].sum()),
    }
    if case.status == "quarantined":
        stored = Path(file.stored_as if isinstance(file.stored_as, str) else "?")
        reason_file = quarantine / f"{stored.name}.reason.json"
        reason = json.loads(reason_file.read_text()) if reason_file.exists() else {}
        got["reason.json"] = (reason.get("rule"), sorted(REASON_KEYS - reason.keys()))
        got["lines"] = reason.get("lines")
    return {key: got.get(key) for key in expected(case)}


NOT_FOR_INGEST = [  # still being written, by the names writers and copy tools give them
    "PART_2024-01.csv.part",
    "TMP_2024-01.csv.tmp",
    "WINSCP_2024-01.csv.filepart",
    "CHROME_2024-01.csv.crdownload",
    "~$LOCK_2024-01.xlsx",
    ".HIDDEN_2024-01.csv",
]


def test_hostile_corpus_each_file_gets_its_verdict(platform, tmp_path):
    settings = platform.settings
    tops = [make() for make in CASES]
    cases = flattened(tops)
    assert len(tops) >= 28 and len({c.name for c in cases}) == len(cases)
    outside = tmp_path / "outside"
    outside.mkdir()
    write_corpus(settings.dropbox, outside, tops)
    for name in NOT_FOR_INGEST:  # valid content, old enough: only the name keeps it out
        (settings.dropbox / name).write_text(csv(rows(8, 91)))
        os.utime(settings.dropbox / name, (time.time() - 3600,) * 2)
    link_target = outside / symlink().name
    target_before = (link_target.read_bytes(), link_target.stat().st_mtime_ns)

    by_name = {row["file"]: row for row in ingest_run(platform)}
    left_in_dropbox = sorted(p.name for p in settings.dropbox.iterdir())
    files = platform.query("select file_id, name, status, rule, stored_as from raw.files")
    readings = platform.query("select file_id, meter_id, channel, value from raw.readings")
    problems = []
    for case in cases:
        file = files[files["name"] == case.name]
        if len(file) != 1:
            problems.append(f"{case.name!r}: {len(file)} rows in raw.files")
            continue
        got = observed(case, file.iloc[0], by_name.get(case.name), readings, settings.quarantine)
        want = expected(case)
        if got != want:
            diff = {k: (want[k], got[k]) for k in want if got[k] != want[k]}
            problems.append(f"{case.name!r}: (expected, got) {diff}")

    # The platform is not wedged: a valid file dropped afterwards still loads.
    late = rows(8, 90)
    (settings.dropbox / "LATE_2024-01.csv").write_text(csv(late))
    second = ingest_run(platform)
    late_rows = platform.scalar(
        "select count(*) from raw.readings join raw.files using (file_id) where name = %s",
        ("LATE_2024-01.csv",),
    )
    got_late = [(r["file"], r["status"], r["rows"]) for r in second], late_rows
    want_late = [("LATE_2024-01.csv", "loaded", count(late))], count(late)
    if got_late != want_late:
        problems.append(f"second run: (expected, got) {(want_late, got_late)}")

    assert not problems, "\n".join(["files that got the wrong verdict:", *problems])
    assert sorted(by_name) == sorted(c.name for c in cases)
    assert left_in_dropbox == sorted(NOT_FOR_INGEST), "every other file leaves the dropbox"
    # raw.readings holds exactly the valid files' rows, nothing of the others.
    assert len(readings) == sum(c.rows for c in cases if c.status == "loaded")
    refused = set(files.loc[files["status"] != "loaded", "file_id"])
    assert not refused & set(readings["file_id"])
    assert (readings["value"] != 0).all(), "no value of the corpus is zero: a gap became a zero"
    assert set(platform.query("select meter_id from raw.meters")["meter_id"]) == {
        "BASE",
        "SEMI",
        "TAB",
    }
    # The symbolic link was refused without touching what it points to.
    assert link_target.exists()
    assert (link_target.read_bytes(), link_target.stat().st_mtime_ns) == target_before


def test_file_still_being_written_loads_whole(platform, monkeypatch):
    monkeypatch.setenv("ENERGY_FILE_STABLE_SECONDS", "2")
    settings = Settings.from_env()
    data = rows(96, 70)
    content = csv(data).encode()
    size = len(content) // 5 + 1
    chunks = [content[i : i + size] for i in range(0, len(content), size)]
    assert len(chunks) == 5 and not all(c.endswith(b"\n") for c in chunks[:-1])
    path = settings.dropbox / "GROWING_2024-01.csv"
    started = threading.Event()

    def writer():
        for i, chunk in enumerate(chunks):
            if i:
                time.sleep(0.6)
            with open(path, "ab") as handle:
                handle.write(chunk)
            started.set()

    ingest_run(platform)  # warm up (imports), so the next run lists files at once
    thread = threading.Thread(target=writer)
    thread.start()
    started.wait(5)
    report = ingest_run(platform)
    thread.join()

    assert [(r["file"], r["status"], r["rows"]) for r in report] == [(path.name, "loaded", 96 * 4)]
    assert platform.scalar("select count(*) from raw.readings") == count(data) == 96 * 4


# --- writers that pause -------------------------------------------------------------------------


def sensor_tick(platform, cursor: str | None):
    """One evaluation of the dropbox sensor; its run requests and next cursor."""
    context = build_sensor_context(
        instance=DagsterInstance.ephemeral(),
        cursor=cursor,
        resources={"platform": platform_resource(platform)},
    )
    result = dropbox_sensor(context)
    return result.run_requests, result.cursor


def next_request(platform, cursor: str | None):
    """Tick the sensor, as the daemon does, until it requests a run."""
    requests: list = []
    deadline = time.monotonic() + BOUND_SECONDS
    while not requests:
        assert time.monotonic() < deadline, "the sensor never requested the file"
        time.sleep(0.25)
        requests, cursor = sensor_tick(platform, cursor)
    [request] = requests
    return request, cursor


def test_writer_pausing_longer_than_the_window_never_has_its_half_loaded(platform, monkeypatch):
    monkeypatch.setenv("ENERGY_FILE_STABLE_SECONDS", "1")
    data = rows(96, 70)
    content = csv(data).encode()
    half = len(content) // 2
    path = platform.settings.dropbox / "PAUSED_2024-01.csv"
    requested = threading.Event()

    def writer() -> None:
        with path.open("wb") as handle:
            handle.write(content[:half])
            handle.flush()
            requested.wait(BOUND_SECONDS)  # paused past the window: the sensor asks for it
            handle.write(content[half:])

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_for(lambda: path.exists() and path.stat().st_size == half, "the first half")
        request, cursor = next_request(platform, None)
    finally:
        requested.set()
        thread.join()

    # By the time the run starts the writer has written the rest: not what the sensor saw.
    first = ingest_run(platform, request.run_config)
    assert first == []
    assert platform.scalar("select count(*) from raw.files") == 0
    assert path.read_bytes() == content  # left in the dropbox, whole

    again, _ = next_request(platform, cursor)  # the next looks find it stable again
    assert again.run_key != request.run_key
    second = ingest_run(platform, again.run_config)
    assert [(r["file"], r["status"], r["rows"]) for r in second] == [
        (path.name, "loaded", count(data))
    ]
    assert platform.scalar("select sha256 from raw.files") == hashlib.sha256(content).hexdigest()


def test_writer_resuming_while_its_half_loads_leaves_it_for_the_next_look(platform, monkeypatch):
    monkeypatch.setenv("ENERGY_FILE_STABLE_SECONDS", "1")
    data = rows(96, 71)
    content = csv(data).encode()
    half = len(content) // 2
    path = platform.settings.dropbox / "RESUMED_2024-01.csv"
    handle = path.open("wb")
    handle.write(content[:half])
    handle.flush()
    lock = pause_inserts(platform)  # the run will wait inside its transaction

    def resume_meanwhile() -> None:
        try:
            wait_for(lambda: waiting_on_lock(platform), "the ingest reading the half file")
            handle.write(content[half:])  # the writer resumes while its half is being loaded
            handle.close()
        finally:
            lock.rollback()

    resumer = threading.Thread(target=resume_meanwhile)
    resumer.start()
    first = ingest_run(platform, files_config([path.name]))  # started during the pause
    resumer.join()
    lock.close()

    assert first == []
    assert platform.scalar("select count(*) from raw.files") == 0
    assert path.read_bytes() == content

    second = ingest_run(platform, files_config([path.name]))
    assert [(r["file"], r["status"], r["rows"]) for r in second] == [
        (path.name, "loaded", count(data))
    ]
    assert platform.scalar("select sha256 from raw.files") == hashlib.sha256(content).hexdigest()


# --- the real London data, as published: gzip ------------------------------------------------

LCL = SHARED_DATA / "lcl_london_2013_60hh" / "halfhourly_kwh.csv.gz"


def test_lcl_halfhourly_gz_loads_as_published(platform):
    if not LCL.exists():
        pytest.skip(f"the real LCL data is not here: {LCL} (see ../shared/data)")
    shutil.copy(LCL, platform.settings.dropbox / LCL.name)
    with gzip.open(LCL, "rb") as source:
        unpacked = source.read()
    table = pd.read_csv(io.BytesIO(unpacked), dtype=str, keep_default_na=False)
    values = table["energy(kWh/hh)"].str.strip()
    expected = int((~values.str.lower().isin(["", "null"])).sum())

    report = ingest_run(platform)

    member = f"{LCL.name}/halfhourly_kwh.csv"
    assert [(r["file"], r["status"], r["rows"]) for r in report] == [
        (LCL.name, "loaded", 0),
        (member, "loaded", expected),
    ]
    files = platform.query("select name, sha256, format from raw.files order by file_id")
    assert files.values.tolist() == [
        [LCL.name, hashlib.sha256(LCL.read_bytes()).hexdigest(), "gzip"],
        [member, hashlib.sha256(unpacked).hexdigest(), "lcl_halfhourly"],
    ]
    meters = platform.scalar("select count(distinct meter_id) from raw.readings")
    assert meters == table["LCLid"].nunique()
    assert platform.scalar("select count(*) from raw.readings") == expected
    assert (platform.settings.archive / "archives" / LCL.name).read_bytes() == LCL.read_bytes()
