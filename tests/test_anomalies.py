"""Anomaly detectors on hand-built series with known answers, and the monthly asset on real
grid data with faults put in by hand."""

from __future__ import annotations

import io
from datetime import date

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA

from energy_assets.anomalies.checks import rate_verdict
from energy_assets.anomalies.detectors import (
    baseline,
    baseline_mask,
    clock_repeats,
    clock_shifts,
    daily_profiles,
    day_shifts,
    dropouts,
    find_anomalies,
    flatlines,
    forecast_residuals,
    gap_findings,
    isolated_days,
    meter_findings,
    meter_shards,
    multiplier_errors,
    offpeak_spikes,
    prepare,
    reverse_flows,
    silent_meters,
    spikes,
    stale_copies,
    trailing_days,
    triage,
    unexplained_gaps,
)
from energy_assets.ingest.dropbox import dropbox_files
from energy_assets.marts.exports import export_csv
from energy_assets.partitions import range_tags
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


def test_flatline_needs_a_run_the_meter_would_not_reach_by_chance():
    varied = np.arange(1, 301) / 100  # a meter that never repeats a value
    values = np.r_[varied, [2.5] * 10, [1.0, 0.5], [1.7] * 9, [0.0] * 30, 0.3]
    frame, _, base = with_base(series(values))
    found = flatlines(frame, base)  # 10 in a row are enough
    run = START + pd.Timedelta("150h")
    assert spans(found) == [("flatline", run, run + pd.Timedelta("5h"))]
    assert found["reason"].iat[0] == "value stuck at 2.50 kW for 10 intervals (5 h)"
    assert found["details"].iat[0]["needed"] == 10
    # A gap (NaN) splits a run.
    values[305] = np.nan
    assert flatlines(prepare(series(values)), base).empty
    # A coarse meter repeating every other value needs flatline_intervals (16) of them.
    coarse = np.tile([0.5, 0.5, 0.6, 0.6], 50)
    frame, _, base = with_base(series(np.r_[coarse, [0.9] * 15, coarse, [0.8] * 16]))
    assert [r.interval_end - r.interval_start for r in flatlines(frame, base).itertuples()] == [
        pd.Timedelta("8h")
    ]


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
    assert flatlines(frame, base).empty


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


def test_spike_ceiling_of_a_meter_whose_history_is_quiet():
    """A home vacant through the history (0.05 kW standby) and lived in during the month: its
    ordinary evenings are no spikes, since the month's own quantiles lift the ceiling; a 9 kW
    reading still is one (one interval cannot lift a quantile of a month)."""
    load = household(days=56)
    month = START + pd.Timedelta(days=28)
    load.loc[load["interval_start"] < month, "value"] = 0.05
    at = load.index[load["interval_start"] == month + pd.Timedelta("10 days 12:00:00")][0]
    load.loc[at, "value"] = 9.0
    frame, mask, _ = with_base(load, month)
    found = spikes(frame, mask)
    assert spans(found) == [
        ("spike", load["interval_start"][at], load["interval_start"][at] + pd.Timedelta("30min"))
    ]
    night = offpeak_spikes(frame, mask)
    assert night.empty, night["reason"]
    # A meter idle at zero is judged by what it draws when it draws.
    idle = idle_meter()
    idle.loc[40 * 48 + 30, "value"] = 15.0
    frame, mask, _ = with_base(idle, START + pd.Timedelta(days=28))
    assert spans(spikes(frame, mask)) == [
        (
            "spike",
            START + pd.Timedelta("40 days 15:00:00"),
            START + pd.Timedelta("40 days 15:30:00"),
        )
    ]


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


def test_offpeak_spike_margin_over_the_night_level():
    # 0.8 kW at 03:00 is 2.4 x the nights' ~0.33 kW peak: a night load, not a spike, by
    # default (3 x); a margin of 2 flags it.
    load = household(days=28)
    at = START + pd.Timedelta("24 days 03:00:00")
    load.loc[load["interval_start"] == at, "value"] = 0.8
    frame, mask, _ = with_base(load, START + pd.Timedelta(days=21))
    assert offpeak_spikes(frame, mask).empty
    found = offpeak_spikes(frame, mask, AnomalyThresholds(offpeak_margin=2.0))
    assert spans(found) == [("offpeak_spike", at, at + pd.Timedelta("30min"))]


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
    load.loc[shifted, "value"] *= 6
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


def residual_rows(days: int = 21, seed: int = 1) -> pd.DataFrame:
    """Backtest rows of a feeder: a P50 of 10 MW, actuals within +-0.5 MW of it, hourly."""
    times = pd.date_range(START, periods=days * 24, freq="1h")
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "target_kind": "feeder",
            "target_id": "North",
            "interval_start": times,
            "p50": 10.0,
            "actual": 10 + rng.uniform(-0.5, 0.5, len(times)),
        }
    )


def test_forecast_residuals_need_persistence():
    rows = residual_rows()
    month = START + pd.Timedelta(days=14)
    rows.loc[rows["interval_start"] == month + pd.Timedelta("2 days 03:00:00"), "actual"] = 13.0
    assert forecast_residuals(rows, history_end=month).empty  # one interval is not persistent
    evening = (rows["interval_start"] >= month + pd.Timedelta("4 days 10:00:00")) & (
        rows["interval_start"] < month + pd.Timedelta("4 days 23:00:00")
    )
    rows.loc[evening, "actual"] = 14.0  # 13 h at 14 MW against 10
    found = forecast_residuals(rows, history_end=month)
    day = month + pd.Timedelta(days=4)
    assert spans(found) == [  # the run, and its day's energy error
        ("forecast_residual", day, day + pd.Timedelta(days=1)),
        ("forecast_residual", day + pd.Timedelta("10h"), day + pd.Timedelta("23h")),
    ]
    run = found.loc[found["interval_start"] == day + pd.Timedelta("10h")].iloc[0]
    assert run["target_kind"] == "feeder"
    assert run["details"]["observed_energy"] == 182.0  # 13 h x 14 MW
    assert run["details"]["expected_energy"] == 130.0
    assert run["reason"].startswith("13 intervals in a row beyond 4 robust SDs")
    assert "observed 182.00 MWh against an expected 130.00 MWh" in run["reason"]
    # An evening of 11 h is not yet persistent (its day's energy error still is found).
    shorter = rows.assign(
        actual=rows["actual"].where(
            ~evening | (rows["interval_start"] >= month + pd.Timedelta("4 days 12:00:00")), 10.0
        )
    )
    assert spans(forecast_residuals(shorter, history_end=month)) == [
        ("forecast_residual", day, day + pd.Timedelta(days=1))
    ]
    assert forecast_residuals(rows.iloc[:0]).empty  # no backtest yet: nothing found


def test_forecast_residual_day_energy_and_its_rate_setting():
    rows = residual_rows(days=60, seed=2)
    month = START + pd.Timedelta(days=30)
    day = rows["interval_start"].dt.floor("D") == month + pd.Timedelta(days=5)
    rows.loc[day, "actual"] += 0.45  # every hour a little high: no hour is extreme, the day is
    found = forecast_residuals(rows, history_end=month)
    assert [(r.interval_start, r.interval_end) for r in found.itertuples()] == [
        (month + pd.Timedelta(days=5), month + pd.Timedelta(days=6))
    ]
    assert found["details"].iat[0]["day_robust_z"] > found["details"].iat[0]["threshold"]
    # A higher accepted rate of chance days lowers the threshold.
    often = AnomalyThresholds(residual_days_per_year=50.0)
    assert (
        forecast_residuals(rows, often, history_end=month)["details"].iat[0]["threshold"]
        < found["details"].iat[0]["threshold"]
    )


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


def assert_gap_estimated(platform) -> None:
    """The 3 missing intervals are estimated linearly between the readings either side, the
    feeder counts them and its export says so; every measured interval keeps its reading."""
    clean = platform.query(
        "select interval_start, kw_net, quality, estimation_method from marts.fct_intervals_clean"
        " where meter_id = 'P287' order by interval_start"
    )
    edge = clean.set_index("interval_start")["kw_net"]
    before, after = (
        edge[pd.Timestamp(t, tz="UTC")] for t in ("2020-12-04 23:45", "2020-12-05 00:45")
    )
    estimated = clean[clean["quality"] == "estimated"]
    assert estimated["interval_start"].tolist() == list(
        pd.date_range("2020-12-05", periods=3, freq="15min", tz="UTC")
    )
    assert set(estimated["estimation_method"]) == {"linear"}
    expected = [before + (after - before) * k / 4 for k in (1, 2, 3)]
    assert estimated["kw_net"].to_numpy() == pytest.approx(expected, rel=1e-12)
    feeder = platform.query(
        "select f.interval_start, f.mw_net, f.meters_estimated, c.kw_net from"
        " marts.fct_feeder_intervals as f join marts.fct_intervals_clean as c using"
        " (interval_start) where c.meter_id = 'P287' order by 1"
    )
    assert feeder["meters_estimated"].sum() == 3
    measured = feeder["meters_estimated"] == 0
    assert (feeder["mw_net"][measured] * 1000).to_numpy() == pytest.approx(
        feeder["kw_net"][measured].to_numpy(), rel=1e-12
    )
    out = io.BytesIO()
    month = date(2020, 12, 1)
    export_csv(
        platform.warehouse_url, "feeder", out, name="North", first_month=month, last_month=month
    )
    exported = pd.read_csv(io.BytesIO(out.getvalue()))
    assert exported["Estimated"].sum() == 3
    assert exported.loc[exported["Estimated"] == 1, "Start Time"].tolist() == [
        "2020-12-05 00:00:00+00",
        "2020-12-05 00:15:00+00",
        "2020-12-05 00:30:00+00",
    ]


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
def test_monthly_asset_finds_the_injected_faults(platform, monkeypatch):
    monkeypatch.setenv("ENERGY_ESTIMATE_MAX_INTERVALS", "8")  # the 3-interval gap is estimated
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
    severities = platform.query("select kind, severity, action, details from ml.anomalies")
    assert set(severities["severity"]) <= {"low", "medium", "high"}
    assert severities["action"].notna().all() and severities["details"].notna().all()
    assert_gap_estimated(platform)
    month = platform.query("select intervals, findings, rate from ml.anomaly_months")
    assert month["intervals"][0] == 2 * 31 * 96  # the meter's grid and the feeder's
    plot = platform.settings.home / "plots" / "anomalies" / "2020-12"
    assert (plot / "North.png").stat().st_size > 10_000
    assert (plot / "all.png").stat().st_size > 10_000


def local_household(days: int, start: str, tz: str, target: str = "m1") -> pd.DataFrame:
    """household()'s shape kept by local clock time in `tz` (across DST changes), UTC stamps."""
    times = pd.date_range(pd.Timestamp(start, tz=tz), periods=days * 48, freq="30min")
    local = times.tz_convert(tz)
    hour = (local.hour + local.minute / 60).to_numpy()
    rng = np.random.default_rng(3)
    kw = 0.3 + 1.2 * np.exp(-((hour - 19) ** 2) / 6) + 0.3 * np.exp(-((hour - 8) ** 2) / 2)
    kw = np.round(kw * rng.uniform(0.9, 1.1, len(kw)), 3)
    return pd.DataFrame(
        {"target_id": target, "interval_start": times.tz_convert("UTC"), "value": kw}
    )


def normal_series() -> dict[str, pd.DataFrame]:
    """Loads that are ordinary and must raise no finding of the meter-fault detectors."""
    holiday = household(days=42)
    away = holiday["interval_start"].between(T("2024-01-29", tz="UTC"), T("2024-02-05", tz="UTC"))
    fridge = np.random.default_rng(4).uniform(0.2, 0.4, away.sum()).round(3)
    holiday.loc[away, "value"] = fridge  # a week away: fridge and standby only
    pv = household(days=42)
    hour = pv["interval_start"].dt.hour
    pv["value"] -= np.where((hour >= 10) & (hour < 15), 2.0, 0.0)
    heater = household(days=42)
    heater.loc[heater["interval_start"].dt.hour < 7, "value"] += 3.0  # storage heater at night
    dst = pd.concat(
        [
            local_household(42, "2024-03-10", "Europe/London").assign(timezone="Europe/London"),
            local_household(42, "2024-10-06", "Europe/London", "m2").assign(
                timezone="Europe/London"
            ),
        ]
    )
    return {
        "holiday": holiday,
        "pv exporter": pv,
        "storage heater": heater,
        "dst days": dst,
        "idle meter": idle_meter(),
    }


def idle_meter(days: int = 42) -> pd.DataFrame:
    """A meter at zero but for a half hour of ~1.5 kW every fifth day (a garage, a pump)."""
    load = series(np.zeros(days * 48))
    used = np.arange(5, days, 5) * 48 + np.resize([20, 6, 36, 26], len(range(5, days, 5)))
    load.loc[used, "value"] = np.resize([1.4, 1.5, 1.6, 1.55], len(used))
    return load


@pytest.mark.parametrize(
    "name", ["holiday", "pv exporter", "storage heater", "dst days", "idle meter"]
)
def test_normal_series_are_not_flagged(name):
    load = normal_series()[name]
    found = find_anomalies(load, load["interval_start"].min() + pd.Timedelta(days=28))
    assert found[found["detector"] == "rules"].empty, found[["kind", "reason"]]


def days_of(found: pd.DataFrame) -> list[tuple]:
    return sorted(zip(found["target_id"], found["day"], strict=True))


def test_multiplier_errors_by_ct_ratio():
    load = household(days=42)
    day = load["interval_start"].dt.date
    load.loc[day.isin([date(2024, 2, 5), date(2024, 2, 6)]), "value"] *= 2
    load.loc[day == date(2024, 2, 9), "value"] /= 10
    load.loc[day == date(2024, 2, 1), "value"] *= 1.3  # a busy day: no CT ratio
    profiles = daily_profiles(prepare(load), "UTC", 0.8)
    found = multiplier_errors(profiles)
    assert days_of(found) == [
        ("m1", date(2024, 2, 5)),
        ("m1", date(2024, 2, 6)),
        ("m1", date(2024, 2, 9)),
    ]
    assert [d["nearest_ratio"] for d in found["details"]] == [2.0, 2.0, 0.1]
    assert found["reason"].iat[0].endswith("close to a ratio of 2: a wrong CT ratio or multiplier?")
    sqrt3 = household(days=42)
    sqrt3.loc[sqrt3["interval_start"].dt.date == date(2024, 2, 5), "value"] *= 3**0.5
    found = multiplier_errors(daily_profiles(prepare(sqrt3), "UTC", 0.8))
    assert [d["nearest_ratio"] for d in found["details"]] == [1.7321]
    # Only the ratios configured count.
    only_ten = AnomalyThresholds(multiplier_ratios=(10.0,))
    assert multiplier_errors(daily_profiles(prepare(sqrt3), "UTC", 0.8), only_ten).empty


def test_multiplier_errors_need_every_quantile_moved_by_the_ratio():
    """A day that gains a load (an all-day heater: +0.3 kW doubles the base load but not the
    evening peak) moves its quantiles unevenly and is no CT ratio; the same day scaled x2 is."""
    load = household(days=42)
    day = load["interval_start"].dt.date
    load.loc[day == date(2024, 2, 5), "value"] += 0.3
    load.loc[day == date(2024, 2, 8), "value"] *= 2
    found = multiplier_errors(daily_profiles(prepare(load), "UTC", 0.8))
    assert days_of(found) == [("m1", date(2024, 2, 8))]
    details = found["details"].iat[0]
    assert details["nearest_ratio"] == 2.0
    assert 1.9 < details["ratio"] < 2.1 and details["robust_z"] >= 4


def test_multiplier_errors_of_a_large_ratio_allow_a_quantile_further_off():
    """Days at x0.1 whose evening peak came out at x0.06 (a quantile off by a log of 0.51, past
    multiplier_spread's 0.35): within 0.3 of log 10 (0.69) that is still the ratio. The same
    unevenness at x2 is no CT ratio (the share of log 2 is below multiplier_spread)."""
    load = household(days=42)
    day = load["interval_start"].dt.date
    evening = load["interval_start"].dt.hour.between(17, 21)
    tenth = day.isin([date(2024, 2, 5), date(2024, 2, 6)])
    load.loc[tenth, "value"] *= 0.1
    load.loc[tenth & evening, "value"] *= 0.6
    doubled = day == date(2024, 2, 12)
    load.loc[doubled, "value"] *= 2
    load.loc[doubled & evening, "value"] *= 1.67
    profiles = daily_profiles(prepare(load), "UTC", 0.8)
    found = multiplier_errors(profiles)
    assert days_of(found) == [("m1", date(2024, 2, 5)), ("m1", date(2024, 2, 6))]
    assert [d["nearest_ratio"] for d in found["details"]] == [0.1, 0.1]
    fixed_spread = AnomalyThresholds(multiplier_spread_share=0.0)
    assert multiplier_errors(profiles, fixed_spread).empty


@pytest.mark.parametrize(("wander", "found_days"), [(0.1, [date(2024, 2, 8)]), (0.4, [])])
def test_multiplier_errors_judged_against_how_much_the_days_wander(wander, found_days):
    """A x sqrt 3 day stands out on a household whose whole day wanders +-10% in level from one
    day to the next; on one whose days wander +-40% it is within what its ordinary days do."""
    load = household(days=42)
    level = np.exp(np.random.default_rng(5).normal(0, wander, 42))
    load["value"] *= np.repeat(level, 48)
    load.loc[load["interval_start"].dt.date == date(2024, 2, 8), "value"] *= 3**0.5
    found = multiplier_errors(daily_profiles(prepare(load), "UTC", 0.8))
    assert [d for _, d in days_of(found)] == found_days, found["reason"].tolist()


def test_trailing_days_before_or_after_each_day():
    days = pd.MultiIndex.from_product(
        [["m1"], [date(2024, 1, d) for d in range(1, 6)]], names=["target_id", "day"]
    )
    level = pd.DataFrame({0: [1.0, 2.0, 3.0, 4.0, 5.0]}, index=days)
    before = trailing_days(level, 2, 1)[0]
    after = trailing_days(level, 2, 1, following=True)[0]
    assert before.tolist()[1:] == [1.0, 1.5, 2.5, 3.5] and np.isnan(before.iat[0])
    assert after.tolist()[:-1] == [2.5, 3.5, 4.5, 5.0] and np.isnan(after.iat[-1])


def wandering_household(wander: float, seed: int) -> pd.DataFrame:
    """household() whose whole day wanders in level from one day to the next (lognormal)."""
    load = household(days=42)
    load["value"] *= np.repeat(np.exp(np.random.default_rng(seed).normal(0, wander, 42)), 48)
    return load


def test_multiplier_error_put_right_is_judged_against_the_days_after_too():
    """Two days x sqrt 3 on a household whose days wander +-12%: too little for the trailing
    days alone, enough once the days after show the same ratio. The same change kept for the
    rest of the series is no fault put right and is not found."""
    load = wandering_household(0.12, 6)
    kept = load.copy()
    day = load["interval_start"].dt.date
    load.loc[day.isin([date(2024, 2, 1), date(2024, 2, 2)]), "value"] *= 3**0.5
    found = multiplier_errors(daily_profiles(prepare(load), "UTC", 0.8))
    assert days_of(found) == [("m1", date(2024, 2, 2))]
    details = found["details"].iat[0]
    assert details["nearest_ratio"] == 1.7321
    assert 1.5 < details["ratio_to_following"] < 2.0 and details["robust_z"] < 4
    assert "the following days'" in found["reason"].iat[0]
    trailing_only = AnomalyThresholds(multiplier_return_k=np.inf)
    assert multiplier_errors(daily_profiles(prepare(load), "UTC", 0.8), trailing_only).empty
    kept.loc[kept["interval_start"] >= T("2024-02-01", tz="UTC"), "value"] *= 3**0.5
    assert multiplier_errors(daily_profiles(prepare(kept), "UTC", 0.8)).empty
    unchanged = wandering_household(0.12, 6)
    assert multiplier_errors(daily_profiles(prepare(unchanged), "UTC", 0.8)).empty


def test_multiplier_errors_on_a_meter_at_zero_for_hours():
    """Quantiles at zero on the usual days carry no ratio: the others judge the day; a day that
    loses its zeros while the others keep them is no scaled day."""
    load = household(days=42)
    hour = load["interval_start"].dt.hour
    load.loc[(hour >= 11) & (hour < 15), "value"] = 0.0  # solar covers the midday load
    day = load["interval_start"].dt.date
    load.loc[day == date(2024, 2, 5), "value"] *= 0.5
    cloudy = (day == date(2024, 2, 8)) & (hour >= 11) & (hour < 15)
    load.loc[cloudy, "value"] = 0.6  # a cloudy day: the midday load is bought
    found = multiplier_errors(daily_profiles(prepare(load), "UTC", 0.8))
    assert days_of(found) == [("m1", date(2024, 2, 5))]
    assert found["details"].iat[0]["nearest_ratio"] == 0.5


def test_clock_shift_of_a_day():
    load = household(days=42)
    day = (load["interval_start"].dt.date == date(2024, 2, 5)).to_numpy()
    load.loc[day, "value"] = np.roll(load.loc[day, "value"].to_numpy(), 8)  # stamped 4 h late
    found = clock_shifts(daily_profiles(prepare(load), "UTC", 0.8))
    assert days_of(found) == [("m1", date(2024, 2, 5))]
    assert found["details"].iat[0]["shift_hours"] == 4
    assert found["reason"].iat[0].startswith("the day's profile matches the usual one 4 h later")
    # A household whose days vary too much to show a shift is not judged.
    noisy = household(days=42)
    noisy["value"] *= np.random.default_rng(5).uniform(0.1, 3, len(noisy))
    assert clock_shifts(daily_profiles(prepare(noisy), "UTC", 0.8)).empty


def test_clock_shift_by_readings_stamped_twice():
    load = household(days=10)
    values = load["value"].to_numpy()
    late = np.flatnonzero(load["interval_start"].dt.date == date(2024, 1, 6))
    load.loc[late, "value"] = values[late - 8]  # the day's readings stamped 4 h late
    early = np.flatnonzero(load["interval_start"].dt.date == date(2024, 1, 8))
    load.loc[early, "value"] = values[early + 6]  # and this day's 3 h early
    found = clock_repeats(prepare(load))
    # Both copies: the previous evening's 4 h again after midnight, the 3 h after midnight
    # already at the end of the early day.
    assert spans(found) == [
        ("clock_shift", T("2024-01-05 20:00", tz="UTC"), T("2024-01-06 04:00", tz="UTC")),
        ("clock_shift", T("2024-01-08 21:00", tz="UTC"), T("2024-01-09 03:00", tz="UTC")),
    ]
    assert list(found["details"]) == [
        {"intervals": 8, "lag_hours": 4},
        {"intervals": 6, "lag_hours": 3},
    ]
    assert found["reason"].iat[0] == (
        "8 intervals (4 h) from 2024-01-06 00:00 UTC identical, value for value, to the 4 h "
        "before: readings stamped twice, a clock 4 h off?"
    )
    # A pump cycling one hour on, one hour off repeats itself exactly, honestly; so does a
    # household whose hour of repeats is shorter than the lag it repeats.
    pump = series(np.tile([1.5, 1.5, 0.0, 0.0], 240))
    assert clock_repeats(prepare(pump)).empty
    short = household(days=10)
    values = short["value"].to_numpy()
    short.loc[100:103, "value"] = values[100 - 12 : 104 - 12]  # 2 h as 6 h before
    assert clock_repeats(prepare(short)).empty


def test_stale_copy_of_the_previous_day():
    load = household(days=10)
    day = load["interval_start"].dt.date
    load.loc[day == date(2024, 1, 6), "value"] = load.loc[day == date(2024, 1, 5), "value"].values
    found = stale_copies(prepare(load))
    assert spans(found) == [("stale_copy", T("2024-01-06", tz="UTC"), T("2024-01-07", tz="UTC"))]
    assert found["details"].iat[0] == {"intervals": 48, "lag_days": 1}
    # A flat meter repeats itself honestly.
    assert stale_copies(prepare(series(np.full(480, 0.3)))).empty


def test_silent_meter_while_its_feeder_reports():
    meters = pd.concat([household(days=3, seed=s, target=f"m{s}") for s in range(3)])
    meters["feeder"] = "F1"
    silent = (meters["target_id"] == "m1") & meters["interval_start"].between(
        T("2024-01-02 10:00", tz="UTC"), T("2024-01-02 12:30", tz="UTC")
    )
    found = silent_meters(prepare(meters[~silent]))
    assert [(r.target_id, r.interval_start, r.interval_end) for r in found.itertuples()] == [
        ("m1", T("2024-01-02 10:00", tz="UTC"), T("2024-01-02 13:00", tz="UTC"))
    ]
    assert found["details"].iat[0] == {
        "intervals": 6,
        "feeder": "F1",
        "feeder_reporting_share": round(2 / 3, 3),
    }
    # The whole feeder silent (its concentrator) is a gap, not a meter's fault; as a null value
    # on the clean grid the same silence is found.
    outage = meters["interval_start"].between(
        T("2024-01-02 10:00", tz="UTC"), T("2024-01-02 12:30", tz="UTC")
    )
    assert silent_meters(prepare(meters[~outage])).empty
    assert len(silent_meters(prepare(meters.assign(value=meters["value"].mask(silent))))) == 1
    assert silent_meters(prepare(meters[~silent].drop(columns="feeder"))).empty


def test_meter_shards_keep_a_feeder_whole_and_the_findings_do_not_depend_on_the_processes():
    """Six meters in shards of about two: feeder F1's three meters stay in one shard, so its
    silent meter is still found; two processes find exactly what one does, and each shard's
    findings are the detectors' on that shard alone."""
    meters = pd.concat(
        [household(days=30, seed=s, target=f"m{s}") for s in range(6)], ignore_index=True
    )
    meters["feeder"] = meters["target_id"].map({"m0": "F1", "m1": "F1", "m2": "F1"})
    silent = (meters["target_id"] == "m1") & meters["interval_start"].between(
        T("2024-01-20 10:00", tz="UTC"), T("2024-01-20 12:30", tz="UTC")
    )
    spike = (meters["target_id"] == "m4") & (
        meters["interval_start"] == T("2024-01-25 03:00", tz="UTC")
    )
    meters = meters[~silent].assign(value=meters["value"].mask(spike, 40.0))
    t = AnomalyThresholds(shard_meters=2)
    # m3 joined feeder F2 halfway through: still one meter in one shard.
    joined = (meters["target_id"] == "m3") & (meters["interval_start"] >= T("2024-01-15", tz="UTC"))
    meters.loc[joined, "feeder"] = "F2"

    shards = meter_shards(meters, t.shard_meters)
    members = [set(shard["target_id"]) for shard in shards]
    assert len(shards) == 3 and sum(map(len, shards)) == len(meters)
    assert set().union(*members) == {f"m{s}" for s in range(6)}
    assert any({"m0", "m1", "m2"} <= m for m in members)
    assert sum("m3" in m for m in members) == 1
    shuffled = meter_shards(meters.sample(frac=1, random_state=1), t.shard_meters)
    assert [set(shard["target_id"]) for shard in shuffled] == members

    start, end = T("2024-01-08", tz="UTC"), T("2024-01-31", tz="UTC")
    one = meter_findings(meters, start, end, t, processes=1)
    several = meter_findings(meters, start, end, t, processes=2)
    pd.testing.assert_frame_equal(one, several)
    apart = pd.concat([find_anomalies(s, start, end, t) for s in shards], ignore_index=True)
    pd.testing.assert_frame_equal(one, apart)
    kinds = {(r.target_id, r.kind) for r in one.itertuples()}
    assert {("m1", "silent_meter"), ("m4", "spike")} <= kinds
    whole = meter_findings(meters, start, end, AnomalyThresholds(shard_meters=6), processes=2)
    pd.testing.assert_frame_equal(whole, find_anomalies(meters, start, end, t))


def test_triage_gives_severity_and_action():
    found = pd.DataFrame(
        {"kind": ["spike", "spike", "multiplier_error", "clock_shift"], "score": [1.2, 3.5, 1, 1]}
    )
    judged = triage(found)
    assert judged["severity"].tolist() == ["low", "high", "high", "medium"]
    assert judged["action"].iat[2] == "check the CT ratio / multiplier held for the meter"


def test_residuals_of_a_target_without_history_are_judged_against_its_month():
    """A first month (no backtest rows before it) is still judged: against its own errors."""
    times = pd.date_range("2024-01-01", "2024-02-01", freq="15min", tz="UTC", inclusive="left")
    error = np.random.default_rng(0).standard_normal(len(times))
    error[500:560] = 50.0  # 15 h far beyond an SD of 1
    forecasts = pd.DataFrame(
        {
            "target_kind": "meter",
            "target_id": "M2",
            "interval_start": times,
            "p50": 30.0,
            "actual": 30.0 + error,
        }
    )
    found = forecast_residuals(forecasts, history_end=pd.Timestamp("2024-01-01", tz="UTC"))
    spans = sorted(found[["interval_start", "interval_end"]].itertuples(index=False, name=None))
    day = (pd.Timestamp("2024-01-06", tz="UTC"), pd.Timestamp("2024-01-07", tz="UTC"))
    assert spans == [day, (times[500], times[560])]  # the day's energy, and the 15 h run


def test_a_gap_a_silent_meter_finding_covers_is_one_finding_and_gaps_stay_low():
    gaps = gap_findings(
        pd.DataFrame(
            {
                "meter_id": ["m1", "m1", "m2"],
                "gap_start": [START, START + pd.Timedelta("1D"), START],
                "gap_end": [
                    START + pd.Timedelta("2h"),
                    START + pd.Timedelta("25h"),
                    START + pd.Timedelta("2h"),
                ],
                "missing_intervals": [8, 4, 8],
            }
        )
    )
    silent = gaps.iloc[[0]].assign(kind="silent_meter", detector="rules")  # m1's first gap
    left = unexplained_gaps(gaps, silent)
    assert left[["target_id", "interval_start"]].values.tolist() == [
        ["m1", START + pd.Timedelta("1D")],
        ["m2", START],
    ]
    assert triage(left)["severity"].tolist() == ["low", "low"]  # 4 and 8 missing: not a score
