"""Ingest under faults: kills at the dangerous moments, files changing or replaced while they
load, entries that cannot be read, names and ids past the limits, the partition lock, and data
that must be corrected or retried rather than kept wrong.

Every test runs the real ingest job (or the real loader in a child process) against a real
PostgreSQL; where a test must catch the ingest at a precise moment, it makes the ingest wait
there on something the test holds (a lock, a named pipe), never on a hook in the product code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from hostile_files import count, csv, rows
from ingest_runs import files_config
from ingest_runs import ingest_run as run_job


def ingest_run(platform, files: list[str] | None = None) -> list[dict]:
    return run_job(platform, files_config(files or []))


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
