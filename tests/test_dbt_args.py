"""The environment a month's dbt build runs with, and that it keeps dbt's partial parsing."""

from __future__ import annotations

import json
import os
import subprocess

from energy_assets.marts.dbt_project import (
    dbt_command,
    month_environment,
    restore_parse,
    save_parse,
)


def test_month_environment_names_the_window_the_calendar_and_the_estimates():
    assert month_environment(
        "2024-01-01T00:00:00+00:00", "2024-02-01T00:00:00+00:00", "Europe/London", (2, 8)
    ) == {
        "ENERGY_DBT_MONTH_START": "2024-01-01T00:00:00+00:00",
        "ENERGY_DBT_MONTH_END": "2024-02-01T00:00:00+00:00",
        "ENERGY_DBT_TIMEZONE": "Europe/London",
        "ENERGY_DBT_ESTIMATE_LINEAR_INTERVALS": "2",
        "ENERGY_DBT_ESTIMATE_MAX_INTERVALS": "8",
    }


def test_a_homes_next_month_build_parses_no_file_again(tmp_path):
    """A home's month builds start from its last parse (the asset's restore_parse and
    save_parse), and a month's values reach dbt without changing what it parsed with, so the
    next month's build parses no file again (a full parse: about 1.5 s of every build). The
    warehouse is not the default connection's, as on a server of its own or another port."""
    home = tmp_path / "home"
    home.mkdir()
    connection = {"ENERGY_PGPORT": "25999", "ENERGY_PGDATABASE": "elsewhere"}
    performance = []
    for month, end in (("2024-01", "2024-02"), ("2024-02", "2024-03")):
        target = tmp_path / month
        target.mkdir()
        restore_parse(home, target)
        environment = month_environment(
            f"{month}-01T00:00:00+00:00", f"{end}-01T00:00:00+00:00", "UTC"
        )
        subprocess.run(
            dbt_command("parse", "--quiet", target=target),
            env={**os.environ, **connection, **environment},
            check=True,
        )
        save_parse(target, home)
        performance.append(json.loads((target / "perf_info.json").read_text()))
    assert performance[0]["parsed_path_count"] == performance[0]["path_count"] > 100
    assert performance[1]["parsed_path_count"] == 0
