"""Two `energy run` processes started at once on the same dropbox load each file exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from meter_files import three_meters_two_feeders

ENERGY = str(Path(sys.executable).with_name("energy"))


def test_two_runs_at_once_load_each_file_exactly_once(platform):
    inputs = three_meters_two_feeders(platform.settings.dropbox)
    names = sorted(p.name for p in platform.settings.dropbox.iterdir())
    runs = [
        subprocess.Popen(
            [ENERGY, "run"],
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [run.communicate(timeout=600) for run in runs]
    outputs = [out for out, _ in results]
    assert [run.returncode for run in runs] == [0, 0], [err[-3000:] for _, err in results]

    files = platform.query("select name, status from raw.files order by name")
    assert files["name"].tolist() == names
    assert set(files["status"]) == {"loaded"}
    expected_rows = sum(len(frame) * 4 for frame in inputs.values())
    assert platform.scalar("select count(*) from raw.readings") == expected_rows
    # Between them the two runs reported every file once.
    reported = [
        line.split()[0]
        for out in outputs
        for line in out.splitlines()
        if line.split()[1:2] == ["loaded"]
    ]
    assert sorted(reported) == names
    # Both built months; the marts hold each interval once.
    assert (
        platform.scalar(
            "select count(*) - count(distinct (meter_id, interval_start))"
            " from marts.fct_intervals_clean"
        )
        == 0
    )
