"""End to end through `energy run`: dropbox -> raw -> dbt marts, checked against pandas."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from energy_assets.cli import main
from energy_assets.operations import run_once
from energy_assets.sample import feeder_meter_frame

STEP = pd.Timedelta(minutes=15)
METERS = {"M1": ("North", 120.0), "M2": ("North", 80.0), "M3": ("South", 200.0)}


def write_meter_file(dropbox: Path, name: str, start: str, end: str, base_kw: float, seed: int,
                     drop: list[tuple[str, str]] = ()) -> pd.DataFrame:  # fmt: skip
    """A seed-style export; intervals in each [from, to] of `drop` are left out (gaps)."""
    frame = feeder_meter_frame(name, start, end, base_kw, seed=seed)
    times = pd.to_datetime(frame["Start Time"])
    for first, last in drop:
        frame = frame[~times.between(pd.Timestamp(first), pd.Timestamp(last))]
        times = pd.to_datetime(frame["Start Time"])
    frame.to_csv(dropbox / name, index=False)
    return frame


def write_meter_data(dropbox: Path) -> None:
    pd.DataFrame(
        [(m, feeder, mult) for m, (feeder, mult) in METERS.items()],
        columns=["ID", "Name", "Multiplier"],
    ).to_csv(dropbox / "meter-data.csv", index=False)


def three_meters_two_feeders(dropbox: Path) -> dict[str, pd.DataFrame]:
    """3 meters on 2 feeders across Jan and Feb 2024, with gaps, one file spanning both months."""
    files = {
        "M1": [
            write_meter_file(dropbox, "M1_2024-01.csv", "2024-01-01", "2024-02-01", 30, 1,
                             drop=[("2024-01-10 10:00", "2024-01-10 11:45"),
                                   ("2024-01-31 22:00", "2024-01-31 23:45")]),
            write_meter_file(dropbox, "M1_2024-02.csv", "2024-02-01", "2024-03-01", 30, 2,
                             drop=[("2024-02-01 00:00", "2024-02-01 00:45")]),
        ],
        "M2": [
            write_meter_file(dropbox, "M2_2024-01.csv", "2024-01-01", "2024-02-01", 20, 3),
            write_meter_file(dropbox, "M2_2024-02.csv", "2024-02-01", "2024-03-01", 20, 4,
                             drop=[("2024-02-20 03:00", "2024-02-20 03:00")]),
        ],
        "M3": [
            write_meter_file(dropbox, "M3_2024-01-15.csv", "2024-01-15", "2024-02-15", 25, 5),
        ],
    }  # fmt: skip
    write_meter_data(dropbox)
    return {meter: pd.concat(frames, ignore_index=True) for meter, frames in files.items()}


def expected_marts(inputs: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The marts computed independently from the input files."""
    grids, gaps, clean = {}, [], []
    for meter, frame in inputs.items():
        times = pd.to_datetime(frame["Start Time"]).dt.tz_localize("UTC")
        grid = pd.date_range(times.min(), times.max(), freq=STEP)
        grids[meter] = grid
        missing = grid.difference(pd.DatetimeIndex(times))
        if len(missing):
            run_id = (pd.Series(missing).diff() != STEP).cumsum()
            for _, run in pd.Series(missing).groupby(run_id.to_numpy()):
                gaps.append((meter, run.iloc[0], run.iloc[-1] + STEP, len(run)))
        feeder, multiplier = METERS[meter]
        values = frame.drop(columns="Start Time").set_index(times) * multiplier
        values = values.reindex(grid)
        values["feeder"] = feeder
        values["present"] = values["kW del"].notna()
        clean.append(values)
    clean_all = pd.concat(clean).rename_axis("interval_start").reset_index()
    feeder = clean_all.groupby(["feeder", "interval_start"]).agg(
        mw_del=("kW del", lambda s: s.sum(min_count=1) / 1000),
        mw_rec=("kW rec", lambda s: s.sum(min_count=1) / 1000),
        mva_del=("kVA del", lambda s: s.sum(min_count=1) / 1000),
        mva_rec=("kVA rec", lambda s: s.sum(min_count=1) / 1000),
        meters_reporting=("present", "sum"),
        meters_expected=("present", "size"),
    )
    feeder["mw_net"] = feeder["mw_del"] - feeder["mw_rec"]
    feeder["mva_net"] = feeder["mva_del"] - feeder["mva_rec"]
    feeder["pf_net"] = feeder["mw_net"] / feeder["mva_net"].replace(0, np.nan)
    system = feeder.groupby("interval_start").agg(
        mw_total=("mw_net", lambda s: s.sum(min_count=1)),
        mva_total=("mva_net", lambda s: s.sum(min_count=1)),
    )
    return {
        "clean_rows": sum(len(g) for g in grids.values()),
        "gaps": pd.DataFrame(gaps, columns=["meter_id", "gap_start", "gap_end", "missing"]),
        "feeder": feeder.reset_index(),
        "system": system.reset_index(),
    }


def test_energy_run_builds_marts_equal_to_pandas(platform, capsys):
    inputs = three_meters_two_feeders(platform.settings.dropbox)
    expected = expected_marts(inputs)

    assert main(["run"]) == 0
    summary = capsys.readouterr().out
    assert "6 files: 6 loaded" in summary and "0 quarantined" in summary

    assert (
        platform.scalar("select count(*) from marts.fct_intervals_clean") == expected["clean_rows"]
    )
    gaps = platform.query(
        "select meter_id, gap_start, gap_end, missing_intervals as missing"
        " from marts.fct_gaps order by meter_id, gap_start"
    )
    pd.testing.assert_frame_equal(gaps, expected["gaps"], check_dtype=False)
    # The gap across the month boundary is one gap, not two.
    assert ("M1", pd.Timestamp("2024-01-31 22:00", tz="UTC")) in set(
        zip(gaps.meter_id, gaps.gap_start, strict=True)
    )

    feeder = platform.query(
        "select feeder, interval_start, mw_del, mw_rec, mva_del, mva_rec, mw_net, mva_net, pf_net,"
        " meters_reporting, meters_expected from marts.fct_feeder_intervals"
        " order by feeder, interval_start"
    )
    want = expected["feeder"]
    assert len(feeder) == len(want)
    pd.testing.assert_frame_equal(feeder, want[feeder.columns], check_dtype=False, rtol=1e-9)
    assert (feeder["mw_rec"] > 0).any(), "the input has bi-directional intervals"

    system = platform.query(
        "select interval_start, mw_total, mva_total from marts.fct_system_intervals"
        " order by interval_start"
    )
    pd.testing.assert_frame_equal(system, expected["system"], check_dtype=False, rtol=1e-9)

    archived = sorted(p.name for p in platform.settings.archive.rglob("*.csv"))
    assert archived == sorted(["meter-data.csv", *(f"{m}.csv" for m in [
        "M1_2024-01", "M1_2024-02", "M2_2024-01", "M2_2024-02", "M3_2024-01-15"])])  # fmt: skip
    assert not any(platform.settings.dropbox.iterdir())


def test_file_spanning_two_months_touches_both_partitions(platform):
    write_meter_file(platform.settings.dropbox, "M9_x.csv", "2024-03-30", "2024-04-02", 10, 0)
    report = run_once(platform.settings)
    assert report.ok
    assert report.files[0]["months"] == ["2024-03", "2024-04"]
    months = platform.query(
        "select distinct tableoid::regclass::text as part from raw.readings order by 1"
    )["part"].tolist()
    assert months == ["raw.readings_2024_03", "raw.readings_2024_04"]
    assert report.steps[1] == ("marts 2024-03..2024-04", True)
    clean_months = platform.query(
        "select date_trunc('month', interval_start, 'UTC') as m, count(*) as n"
        " from marts.fct_intervals_clean group by 1 order by 1"
    )
    assert clean_months["n"].tolist() == [2 * 96, 1 * 96]


def test_same_file_twice_loads_once_and_broken_sequence_is_quarantined(platform):
    dropbox = platform.settings.dropbox
    frame = write_meter_file(dropbox, "M1_2024-01.csv", "2024-01-01", "2024-01-03", 30, 1)
    broken = frame.copy()
    broken.loc[50, "Start Time"] = "2024-01-01 12:37"  # off the 15-minute grid, file line 52
    broken.to_csv(dropbox / "M2_2024-01.csv", index=False)

    first = run_once(platform.settings)
    assert [(r["file"], r["status"]) for r in first.files] == [
        ("M1_2024-01.csv", "loaded"), ("M2_2024-01.csv", "quarantined")]  # fmt: skip
    frame.to_csv(dropbox / "M1_2024-01 (copy).csv", index=False)  # same content, new name
    second = run_once(platform.settings)
    assert [(r["file"], r["status"]) for r in second.files] == [
        ("M1_2024-01 (copy).csv", "duplicate")]  # fmt: skip

    assert platform.scalar("select count(*) from raw.readings") == len(frame) * 4
    assert platform.scalar("select count(distinct meter_id) from raw.readings") == 1
    files = platform.query("select name, status, rule, reason from raw.files order by file_id")
    assert files["status"].tolist() == ["loaded", "quarantined", "duplicate"]
    assert files.loc[1, "rule"] == "off_interval_grid"
    assert "line 52" in files.loc[1, "reason"]

    quarantined = platform.settings.quarantine / "M2_2024-01.csv"
    assert quarantined.exists()
    reason = json.loads(Path(f"{quarantined}.reason.json").read_text())
    assert reason["rule"] == "off_interval_grid" and reason["lines"] == [52]
    assert reason["sample"].startswith("2024-01-01 12:37")


def test_rematerializing_a_month_leaves_other_months_alone(platform):
    three_meters_two_feeders(platform.settings.dropbox)
    assert run_once(platform.settings).ok
    tables = ["fct_intervals_clean", "fct_feeder_intervals", "fct_system_intervals"]

    def snapshot():
        return {t: platform.query(f"select * from marts.{t} order by 1, 2") for t in tables}

    before = snapshot()
    from dagster import DagsterInstance

    from energy_assets.definitions import defs
    from energy_assets.platform import platform_session

    with platform_session(platform.settings):
        result = defs.resolve_job_def("monthly_marts_job").execute_in_process(
            partition_key="2024-01-01", instance=DagsterInstance.get()
        )
    assert result.success
    after = snapshot()
    for table in tables:
        pd.testing.assert_frame_equal(after[table], before[table])


def test_meter_without_metadata_joins_its_feeder_when_metadata_arrives(platform):
    dropbox = platform.settings.dropbox
    write_meter_file(dropbox, "M1_2024-01.csv", "2024-01-01", "2024-01-02", 30, 1)
    assert run_once(platform.settings).ok
    assert platform.scalar("select count(*) from marts.fct_feeder_intervals") == 0
    assert not platform.scalar("select bool_or(has_metadata) from marts.fct_intervals_clean")

    write_meter_data(dropbox)
    report = run_once(platform.settings)
    assert report.ok
    assert report.files[0]["months"] == ["2024-01"]  # the month holding M1's readings
    feeder = platform.query("select feeder, mw_del from marts.fct_feeder_intervals")
    assert len(feeder) == 96 and set(feeder["feeder"]) == {"North"}
    raw_kw = platform.scalar(
        "select sum(value) from raw.readings where channel = 'kw_del' and meter_id = 'M1'"
    )
    assert feeder["mw_del"].sum() == pytest.approx(raw_kw * 120 / 1000)
