"""The `energy` commands print no warnings of Dagster's (beta / preview parameters used on
purpose): what they print on stderr is their own progress and errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from meter_files import write_meter_data, write_meter_file

ENERGY = str(Path(sys.executable).with_name("energy"))


def energy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ENERGY, *args], capture_output=True, text=True, timeout=600)


def test_run_and_status_print_no_warnings(platform):
    write_meter_file(platform.settings.dropbox, "M1_2024-01.csv", "2024-01-01", "2024-01-03", 30, 1)
    write_meter_data(platform.settings.dropbox)
    for command in (["run"], ["status"]):
        result = energy(*command)
        assert result.returncode == 0, result.stdout + result.stderr
        warnings = [line for line in result.stderr.splitlines() if "Warning" in line]
        assert warnings == [], command
