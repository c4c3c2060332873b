"""Anomaly detectors on hand-built series with known answers, and the monthly asset on real
grid data with faults put in by hand."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA

from energy_assets.anomalies.checks import rate_verdict
from energy_assets.anomalies.detectors import (
    baseline,
    baseline_mask,
    daily_profiles,
    day_shifts,
    dropouts,
    find_anomalies,
    flatlines,
    forecast_residuals,
    gap_findings,
    isolated_days,
    offpeak_spikes,
    prepare,
    reverse_flows,
    spikes,
)
from energy_assets.commands.run import range_tags
from energy_assets.ingest.dropbox import dropbox_files
from energy_assets.settings import AnomalyThresholds

START = pd.Timestamp("2024-01-01", tz="UTC")
T = pd.Timestamp


def series(values, target: str = "m1", freq: str = "30min", start=START) -> pd.DataFrame:
    times = pd.date_range(start, periods=len(values), freq=freq)
    return pd.DataFrame(
        {"target_id": target, "interval_start": times, "value": np.asarray(values, dtype=float)}
    )


def household(days: int = 35, seed: int = 0, target: str = "m1") -> pd.DataFrame:
    """A day-shaped load: 0.3 kW at night, up to ~1.5 kW in the evening, +-10% noise."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(START, periods=days * 48, freq="30min")
    hour = (times.hour + times.minute / 60).to_numpy()
    kw = 0.3 + 1.2 * np.exp(-((hour - 19) ** 2) / 6) + 0.3 * np.exp(-((hour - 8) ** 2) / 2)
    kw = np.round(kw * rng.uniform(0.9, 1.1, len(kw)), 3)
    return pd.DataFrame({"target_id": target, "interval_start": times, "value": kw})


def spans(found: pd.DataFrame) -> list[tuple]:
    return sorted((r.kind, r.interval_start, r.interval_end) for r in found.itertuples())


def with_base(frame: pd.DataFrame, history_end: pd.Timestamp | None = None):
    frame = prepare(frame)
    mask = baseline_mask(frame, history_end, 7)
    return frame, mask, baseline(frame, mask)


def test_flatline_flags_exact_run_and_ignores_zeros_and_short_runs():
    values = np.r_[np.arange(1, 11) / 10, [2.5] * 16, [1.0, 0.5], [1.7] * 15, [0.0] * 30, 0.3]
    frame = prepare(series(values))
    found = flatlines(frame)
    assert spans(found) == [("flatline", START + pd.Timedelta("5h"), START + pd.Timedelta("13h"))]
    assert found["reason"].iat[0] == "value stuck at 2.50 kW for 16 intervals (8 h)"
    # A gap (NaN) splits a run.
    values[15] = np.nan
    assert flatlines(prepare(series(values))).empty


def test_dropout_on_busy_meter_but_not_on_idle_meter():
    busy = household(days=20)  # 6 zeros in 960 readings: rarely at zero
    busy.loc[100:105, "value"] = 0.0  # 6 intervals at zero
    frame, _, base = with_base(busy)
    found = dropouts(frame, base)
    assert spans(found) == [
        (
            "drop_to_zero",
            busy["interval_start"][100],
            busy["interval_start"][105] + pd.Timedelta("30min"),
        )
    ]
    assert found["reason"].iat[0].startswith("value 0.00 kW for 6 intervals (3 h) after ")
    # A normally idle meter (zero most of the time, e.g. a standby generator) is not flagged.
    idle = np.zeros(480)
    idle[200:210] = 5.0
    frame, _, base = with_base(series(idle))
    assert dropouts(frame, base).empty
    assert flatlines(frame).empty


def test_spike_above_robust_and_physical_ceiling():
    load = household(days=10)
    load.loc[200, "value"] = 9.0  # the day peak is ~1.6 kW
    frame, mask, _ = with_base(load)
    found = spikes(frame, mask)
    assert spans(found) == [
        ("spike", load["interval_start"][200], load["interval_start"][200] + pd.Timedelta("30min"))
    ]
    assert "9.00 kW is above the meter's robust ceiling" in found["reason"].iat[0]
    # An ordinary evening peak stays under the ceiling; a physical ceiling catches what it must.
    capped = spikes(frame, mask, AnomalyThresholds(physical_ceiling_kw=1.55))
    assert "physical ceiling of 1.55 kW" in " ".join(capped["reason"])
    assert len(capped) > 1


def test_offpeak_spike_at_night_only():
    load = household(days=14)
    night = load.index[(load["interval_start"] == START + pd.Timedelta("10 days 03:00:00"))][0]
    load.loc[night, "value"] = 1.5  # a daytime level, at 03:00
    evening = load.index[(load["interval_start"] == START + pd.Timedelta("10 days 19:00:00"))][0]
    load.loc[evening, "value"] *= 1.2
    frame, mask, _ = with_base(load)
    found = offpeak_spikes(frame, mask)
    assert spans(found) == [
        (
            "offpeak_spike",
            START + pd.Timedelta("10 days 03:00:00"),
            START + pd.Timedelta("10 days 03:30:00"),
        )
    ]
    assert found["reason"].iat[0].startswith("night-time 1.50 kW at 03:00 against a typical")


def test_reverse_flow_only_without_export_history_and_negative_import():
    load = household(days=10)
    load.loc[400:403, "value"] *= -1
    frame, _, base = with_base(load, history_end=START + pd.Timedelta(days=8))
    found = reverse_flows(frame, base)
    assert spans(found) == [
        (
            "reverse_flow",
            load["interval_start"][400],
            load["interval_start"][403] + pd.Timedelta("30min"),
        )
    ]
    # A PV meter that exports every sunny hour is not flagged for exporting.
    pv = household(days=10)
    hour = pv["interval_start"].dt.hour
    pv["value"] -= np.where((hour >= 10) & (hour < 15), 2.0, 0.0)
    frame, _, base = with_base(pv)
    assert reverse_flows(frame, base).empty
    # Delivered energy below zero is impossible whatever the meter.
    frame, _, base = with_base(pv.assign(delivered=np.r_[[-0.5], np.ones(len(pv) - 1)]))
    assert spans(reverse_flows(frame, base)) == [
        ("negative_import", START, START + pd.Timedelta("30min"))
    ]


def test_level_shift_and_sign_flip_days():
    load = household(days=42)
    shifted = load["interval_start"].dt.date == date(2024, 2, 5)
    flipped = load["interval_start"].dt.date == date(2024, 2, 8)
    load.loc[shifted, "value"] *= 4
    load.loc[flipped, "value"] *= -1
    found = day_shifts(prepare(load))
    assert sorted(zip(found["kind"], found["day"], strict=True)) == [
        ("level_shift", date(2024, 2, 5)),
        ("sign_flip", date(2024, 2, 8)),
    ]
    assert found.set_index("kind").at["level_shift", "reason"].startswith("day mean ")
    assert day_shifts(prepare(household(days=42))).empty


def test_isolation_forest_flags_the_odd_day_only():
    load = pd.concat([household(days=42, seed=s, target=f"m{s}") for s in range(3)])
    odd = (load["target_id"] == "m1") & (load["interval_start"].dt.date == date(2024, 1, 20))
    load.loc[odd, "value"] = load.loc[odd, "value"].to_numpy()[::-1] * 3  # night-heavy, 3x
    frame = prepare(load)
    found = isolated_days(daily_profiles(frame, "UTC", 0.8))
    assert list(zip(found["target_id"], found["day"], strict=True)) == [("m1", date(2024, 1, 20))]
    assert found["detector"].iat[0] == "isolation_forest"


def test_forecast_residuals_per_target():
    times = pd.date_range(START, periods=96, freq="15min")
    rng = np.random.default_rng(1)
    actual = 10 + rng.normal(0, 0.5, 96)
    rows = pd.DataFrame(
        {
            "target_kind": "feeder",
            "target_id": "North",
            "interval_start": times,
            "p50": 10.0,
            "actual": actual,
        }
    )
    rows.loc[40, "actual"] = 25.0
    found = forecast_residuals(rows)
    assert spans(found) == [("forecast_residual", times[40], times[41])]
    assert found["target_kind"].iat[0] == "feeder"
    assert forecast_residuals(rows.iloc[:0]).empty  # no backtest yet: nothing found


def test_gap_findings_from_fct_gaps():
    gaps = pd.DataFrame(
        {
            "meter_id": ["m1"],
            "gap_start": [START],
            "gap_end": [START + pd.Timedelta("3h")],
            "missing_intervals": [6],
        }
    )
    found = gap_findings(gaps)
    assert found["reason"].tolist() == ["no reading for 6 intervals (3 h)"]
    assert found["kind"].tolist() == ["gap"]


def test_history_only_sets_baselines_and_findings_stay_in_the_window():
    load = household(days=40)
    load.loc[load["interval_start"] == START + pd.Timedelta("2 days 12:00:00"), "value"] = 20.0
    month = START + pd.Timedelta(days=31)
    found = find_anomalies(load, month, month + pd.Timedelta(days=9))
    assert found.empty  # the spike sits in the history: it shapes nothing and is not reported
    assert len(find_anomalies(load)) >= 1


def test_rate_verdict():
    assert rate_verdict(5.0, []) == (True, "5.00 per 1000 intervals (ceiling 20)")
    assert not rate_verdict(25.0, [])[0]
    assert rate_verdict(2.1, [2.0, 1.9, 2.2, 2.0])[0]
    assert not rate_verdict(9.0, [2.0, 1.9, 2.2, 2.0])[0]


OPENSTEF = SHARED_DATA / "openstef_example_nl_2020" / "get_model_input_pid_287.csv.gz"


def write_faulty_feeder_meter(dropbox) -> None:
    """Real 15-minute grid load (OpenSTEF pid 287, December 2020) as a feeder-meter export with
    five faults put in: a gap, a stuck register, a drop to zero, a spike and reverse flow."""
    frame = pd.read_csv(OPENSTEF, usecols=["index", "load"], parse_dates=["index"])
    frame = frame[(frame["index"] >= "2020-12-01") & (frame["index"] < "2021-01-01")]
    kw = (frame.set_index("index")["load"] * 1000).round(3)

    def at(start: str, periods: int) -> pd.DatetimeIndex:
        return pd.date_range(pd.Timestamp(start, tz="UTC"), periods=periods, freq="15min")

    kw[at("2020-12-10 06:00", 24)] = 5000.0
    kw[at("2020-12-15 10:00", 4)] = 0.0
    kw[at("2020-12-20 12:00", 1)] = 40000.0
    kw[at("2020-12-22 13:00", 4)] = -2000.0
    kw = kw.drop(at("2020-12-05 00:00", 3)).dropna()
    pd.DataFrame(
        {
            "Start Time": kw.index.strftime("%Y-%m-%d %H:%M:%S+00:00"),
            "kW del": kw.clip(lower=0),
            "kW rec": (-kw).clip(lower=0),
            "kVA del": (kw.clip(lower=0) / 0.95).round(3),
            "kVA rec": ((-kw).clip(lower=0) / 0.95),
        }
    ).to_csv(dropbox / "P287_2020-12.csv", index=False)
    pd.DataFrame([("P287", "North", 1)], columns=["ID", "Name", "Multiplier"]).to_csv(
        dropbox / "meter-data.csv", index=False
    )


def ingest_and_detect(settings, month: date) -> None:
    """The real ingest job, then only what the anomalies asset reads for one month: the dbt
    interval marts and ml/anomalies (not every mart and model of the month's job)."""
    from dagster import AssetKey, DagsterInstance

    from energy_assets.commands.session import platform_session

    with platform_session(settings):
        from energy_assets.definitions import defs

        instance = DagsterInstance.get()
        files = [p.name for p in dropbox_files(settings.dropbox)]
        config = {"ops": {"ingest_files": {"config": {"files": files}}}}
        assert (
            defs.resolve_job_def("ingest_dropbox")
            .execute_in_process(run_config=config, instance=instance)
            .success
        )
        keys = [
            AssetKey(["marts", "fct_intervals_clean"]),
            AssetKey(["marts", "fct_feeder_intervals"]),
            AssetKey(["ml", "anomalies"]),
        ]
        assert (
            defs.resolve_job_def("monthly_marts_job")
            .execute_in_process(
                instance=instance, tags=range_tags(month, month), asset_selection=keys
            )
            .success
        )


@pytest.mark.skipif(not OPENSTEF.exists(), reason="needs ../shared/data (real OpenSTEF data)")
def test_monthly_asset_finds_the_injected_faults(platform):
    write_faulty_feeder_meter(platform.settings.dropbox)
    ingest_and_detect(platform.settings, date(2020, 12, 1))

    rows = platform.query(
        "select target_kind, kind, interval_start, interval_end, detector, reason"
        " from ml.anomalies where month_start = '2020-12-01' and target_id = 'P287'"
        " and detector in ('rules', 'fct_gaps') order by interval_start"
    )
    got = [
        (r.kind, r.interval_start.isoformat(), r.interval_end.isoformat())
        for r in rows.itertuples()
    ]
    assert got == [
        ("gap", "2020-12-05T00:00:00+00:00", "2020-12-05T00:45:00+00:00"),
        ("flatline", "2020-12-10T06:00:00+00:00", "2020-12-10T12:00:00+00:00"),
        ("drop_to_zero", "2020-12-15T10:00:00+00:00", "2020-12-15T11:00:00+00:00"),
        ("spike", "2020-12-20T12:00:00+00:00", "2020-12-20T12:15:00+00:00"),
        ("reverse_flow", "2020-12-22T13:00:00+00:00", "2020-12-22T14:00:00+00:00"),
    ]
    assert rows["reason"][1] == "value stuck at 5000.00 kW for 24 intervals (6 h)"
    feeder = platform.query("select kind from ml.anomalies where target_kind = 'feeder'")
    assert "spike" in set(feeder["kind"])
    month = platform.query("select intervals, findings, rate from ml.anomaly_months")
    assert month["intervals"][0] == 2 * 31 * 96  # the meter's grid and the feeder's
    plot = platform.settings.home / "plots" / "anomalies" / "2020-12"
    assert (plot / "North.png").stat().st_size > 10_000
    assert (plot / "all.png").stat().st_size > 10_000
