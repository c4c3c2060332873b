"""The dbt command lines the month assets build: pure functions, no dbt run."""

from __future__ import annotations

import json

from energy_assets.marts.dbt_project import dbt_build_args, month_vars


def test_month_vars_name_the_window_and_the_calendar():
    assert month_vars(
        "2024-01-01T00:00:00+00:00", "2024-02-01T00:00:00+00:00", "Europe/London"
    ) == {
        "month_start": "2024-01-01T00:00:00+00:00",
        "month_end": "2024-02-01T00:00:00+00:00",
        "timezone": "Europe/London",
        "estimate_linear_intervals": 4,
        "estimate_max_intervals": 0,
    }


BUILD = ["build", "--exclude-resource-type", "unit_test"]  # unit tests: in the test suite


def test_build_args_pass_the_vars_as_sorted_json():
    variables = {"timezone": "UTC", "month_start": "a", "month_end": "b"}
    args = dbt_build_args(variables)
    assert args[:4] == [*BUILD, "--vars"]
    assert json.loads(args[4]) == variables
    # The same window always gives the same command line (dbt's partial parsing keys on it).
    assert args[4] == '{"month_end": "b", "month_start": "a", "timezone": "UTC"}'
    assert dbt_build_args({"month_end": "b", "timezone": "UTC", "month_start": "a"}) == args


def test_build_args_without_vars_build_everything():
    assert dbt_build_args() == BUILD
    assert dbt_build_args({}) == BUILD
