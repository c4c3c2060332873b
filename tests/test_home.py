"""The platform's home: found the same from any folder, made only by the commands that set a
platform up, and named in `energy --help` and every error."""

from __future__ import annotations

import pytest
from up_process import energy, platform_environ

from energy_assets.settings import DEFAULT_PG_PORT, REPO_ROOT, Settings

NEEDS_A_HOME = {
    "status": ["status"],
    "export": ["export", "system", "--from", "2024-01"],
    "plot": ["plot", "MAC000002", "--month", "2024-01"],
    "docs": ["docs"],
    "db-url": ["db-url"],
    "db-start": ["db", "start"],
    "db-status": ["db", "status"],
    "psql": ["psql", "--", "-c", "select 1"],
}


def test_the_default_home_is_the_checkouts_whatever_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).home == REPO_ROOT / ".energy"


def test_the_default_port_is_below_the_ephemeral_range():
    assert Settings.from_env({}).pg_port == DEFAULT_PG_PORT < 32768


@pytest.mark.parametrize("command", sorted(NEEDS_A_HOME))
def test_a_command_refuses_a_folder_without_a_home_and_makes_none(command, tmp_path):
    home = tmp_path / "not-a-home"
    result = energy(*NEEDS_A_HOME[command], env=platform_environ(home))
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"energy {NEEDS_A_HOME[command][0]}: no platform home at {home};"
        " run `energy up` there or set ENERGY_HOME"
    )
    assert "Traceback" not in result.stderr
    assert not home.exists()


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("ENERGY_FORECAST_BAG", "0", "expected a whole number of at least 1"),
        ("ENERGY_BACKTEST_METERS", "-5", "expected a whole number of at least 1"),
        ("ENERGY_ANOMALY_SPIKE_K", "high", "could not convert string to float: 'high'"),
    ],
)
def test_a_setting_that_does_not_parse_is_named_in_one_line(variable, value, why, tmp_path):
    result = energy("--help", env=platform_environ(tmp_path / "home", **{variable: value}))
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(f"{variable}={value!r}: {why}")
    assert "Traceback" not in result.stderr


def test_help_names_the_home_in_use(tmp_path):
    home = tmp_path / "somewhere"
    result = energy("--help", env=platform_environ(home))
    assert result.returncode == 0
    assert f"home: {home} (ENERGY_HOME)" in result.stdout
