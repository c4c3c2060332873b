"""The forecast assets on a real platform: backtest rows, scores, models, plots and triggers."""

from __future__ import annotations

import zlib
from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    RunsFilter,
    SkipReason,
    build_run_status_sensor_context,
)
from test_plots import assert_png

from energy_assets.commands.run import run_once
from energy_assets.commands.session import platform_session
from energy_assets.ingest.sample import write_sample
from energy_assets.resources import Platform

DEC, JAN, FEB, MAR = date(2023, 12, 1), date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)
# The sample (2 feeders, 3 kW-logging meters at 15 min) and 2 households logging kWh per half
# hour on no feeder, all from 2024-01-01 to 2024-02-29. A target needs 14 days of history at
# a weekly retrain point for the model: the first is 2024-01-22; before it, from 2024-01-08
# (the first day with a week behind it), targets get the 4-week same-slot mean with the verdict
# insufficient_history. So January has 24 forecast days and February 29. The live forecast is
# issued at 2024-03-01 00:00, when the latest reading is complete, for 03-01. The per-meter
# backtest leaves out M2001, alone on its feeder South (the feeder's backtest is its own), and
# takes the other four (ENERGY_BACKTEST_METERS=4); the live forecast covers all five.
EXPECTED_FORECASTS = {
    ("backtest", "feeder", JAN): (2 * 24 * 96, 2),
    ("backtest", "feeder", FEB): (2 * 29 * 96, 2),
    ("backtest", "meter", JAN): (2 * 24 * 96 + 2 * 24 * 48, 4),
    ("backtest", "meter", FEB): (2 * 29 * 96 + 2 * 29 * 48, 4),
    ("backtest", "meters_total", JAN): (24 * 48, 1),
    ("backtest", "meters_total", FEB): (29 * 48, 1),
    ("backtest", "system", JAN): (24 * 96, 1),
    ("backtest", "system", FEB): (29 * 96, 1),
    ("live", "feeder", MAR): (2 * 96, 2),
    ("live", "meter", MAR): (3 * 96 + 2 * 48, 5),
    ("live", "meters_total", MAR): (48, 1),
    ("live", "system", MAR): (96, 1),
}
FORECAST_COUNTS = """
select run_kind, target_kind, month_start, count(*) as n, count(distinct target_id) as targets
from ml.forecasts group by 1, 2, 3
"""


def write_households(path, start: str = "2024-01-01", end: str = "2024-03-01") -> None:
    """Two households in the LCL layout: kWh per half hour, an evening peak, some noise."""
    rng = np.random.default_rng(7)
    times = pd.date_range(start, end, freq="30min", inclusive="left")
    hour = times.hour + times.minute / 60
    frames = [
        pd.DataFrame(
            {
                "LCLid": household,
                "tstp": times.strftime("%Y-%m-%d %H:%M:%S"),
                "energy(kWh/hh)": (
                    level
                    * (0.2 + np.exp(-((hour - 19) ** 2) / 4))
                    * rng.gamma(8, 1 / 8, len(times))
                ).round(3),
            }
        )
        for household, level in (("MAC000001", 0.3), ("MAC000002", 0.6))
    ]
    pd.concat(frames).to_csv(path, index=False)


def forecast_counts(platform) -> dict:
    rows = platform.query(FORECAST_COUNTS)
    return {(r.run_kind, r.target_kind, r.month_start): (r.n, r.targets) for r in rows.itertuples()}


def after_run(platform, instance: DagsterInstance, run):
    """The context of the live-forecast sensor after `run` succeeded."""
    from energy_assets.automation import forecasts_after_marts

    success = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_SUCCESS)[0]
    return build_run_status_sensor_context(
        sensor_name=forecasts_after_marts.name,
        dagster_event=success.dagster_event,
        dagster_instance=instance,
        dagster_run=run,
        resources={
            "platform": Platform(
                home=str(platform.settings.home), warehouse_url=platform.warehouse_url
            )
        },
    )


@pytest.fixture
def forecasted(platform, monkeypatch):
    monkeypatch.setenv("ENERGY_FORECASTS", "on")
    monkeypatch.setenv("ENERGY_BACKTEST_METERS", "4")
    # This test checks storage, and that the model beats the naive: one booster of 60 rounds
    # (a bag of three such is tested in test_forecasting, stored and loaded back).
    monkeypatch.setenv("ENERGY_FORECAST_ROUNDS", "60")
    monkeypatch.setenv("ENERGY_FORECAST_BAG", "1")
    settings = replace(platform.settings, forecasts=True)
    write_sample(settings.dropbox)
    write_households(settings.dropbox / "households.csv")
    report = run_once(settings)
    assert report.ok, report.table()
    assert [name for name, _ in report.steps][1:] == [
        "marts 2024-01..2024-02",
        "day-ahead forecast",
    ]
    return platform


def test_forecasts_are_stored_scored_traceable_plotted_and_triggered(forecasted, tmp_path):
    """One sample run with forecasts on (it costs a minute), checked from every side."""
    platform = forecasted
    assert forecast_counts(platform) == EXPECTED_FORECASTS

    # The meters_total target is the households' mart: their kW added up, from the file alone.
    write_households(tmp_path / "households.csv")
    households = pd.read_csv(tmp_path / "households.csv")
    households["interval_start"] = pd.to_datetime(households["tstp"]).dt.tz_localize("UTC")
    expected = households.groupby("interval_start")["energy(kWh/hh)"].sum() * 2  # kWh per 30 min
    total = platform.query(
        "select interval_start, kw_total, meters_reporting, meters_expected, meters_estimated"
        " from marts.fct_meters_total_intervals order by interval_start"
    )
    assert total["interval_start"].tolist() == expected.index.tolist()  # 2 months, 2,880 rows
    np.testing.assert_allclose(total["kw_total"].astype(float), expected.to_numpy(), rtol=1e-12)
    counts = total[["meters_reporting", "meters_expected", "meters_estimated"]]
    assert set(counts.itertuples(index=False, name=None)) == {(2, 2, 0)}
    actuals = platform.query(
        "select distinct interval_start, actual from ml.forecasts"
        " where target_kind = 'meters_total' and run_kind = 'backtest' order by 1"
    )
    assert len(actuals) == (24 + 29) * 48
    np.testing.assert_allclose(
        actuals["actual"].astype(float),
        expected[actuals["interval_start"]].to_numpy(),
        rtol=1e-12,
    )
    assert (
        platform.scalar("select count(*) from ml.forecasts where not (p10 <= p50 and p50 <= p90)")
        == 0
    )
    assert (
        platform.scalar(  # the live forecast covers the day after the latest reading
            "select count(*) from ml.forecasts where run_kind = 'live' "
            "and horizon not between interval '0 hours' and interval '24 hours'"
        )
        == 0
    )

    # Every forecast comes from a model trained on data that ended before it was issued.
    assert (
        platform.scalar(
            "select count(*) from ml.forecasts f join ml.models m using (model_version) "
            "where m.train_end >= f.issued_at or m.trained_at > f.issued_at"
        )
        == 0
    )
    # Weekly retraining: 2 models in January (the 22nd and the 29th), 5 in February, 1 live,
    # for each kind and resolution (feeder, system, meter total; meters at 15 and at 30
    # minutes), and the fallback's row.
    assert platform.scalar("select count(*) from ml.models") == 5 * (2 + 5 + 1) + 1
    verdicts = platform.query(
        "select month_start, verdict, count(*) as n from ml.forecasts where run_kind = 'backtest'"
        " group by 1, 2 order by 1, 2"
    )
    assert verdicts.to_dict("list") == {
        "month_start": [JAN, JAN, FEB],
        "verdict": ["insufficient_history", "ok", "ok"],
        "n": [14 * 96 * 5 + 14 * 48 * 3, 10 * 96 * 5 + 10 * 48 * 3, 29 * 96 * 5 + 29 * 48 * 3],
    }
    # Seed 000's customer_model: the meter model's scores on each household, from its forecasts.
    customers = platform.query(
        "select c.customer_ref, c.mse, c.wape, c.intervals, "
        "avg((f.actual - f.p50) ^ 2) as recomputed_mse, count(*) as n "
        "from ml.customer_model c join ml.forecasts f on f.model_version = c.model_version "
        "and f.target_id = c.meter_id and f.actual is not null "
        "where c.customer_ref like 'MAC%%' group by 1, 2, 3, 4"
    )
    assert set(customers["customer_ref"]) == {"MAC000001", "MAC000002"}
    assert (customers["intervals"] == customers["n"]).all()
    assert customers["mse"].tolist() == pytest.approx(customers["recomputed_mse"].tolist())
    model = platform.query(
        "select features, booster from ml.models where target_kind = 'feeder' limit 1"
    ).iloc[0]
    booster = xgb.Booster()
    booster.load_model(bytearray(zlib.decompress(bytes(model["booster"]))))
    assert booster.num_features() == len(model["features"])

    # Scores per target and month, recomputed here from the stored forecasts.
    metrics = platform.query(
        "select * from ml.backtest_metrics order by month_start, target_kind, target_id"
    )
    assert len(metrics) == 2 * (2 + 1 + 1 + 4)  # feeders, system, total, sampled meters
    recomputed = platform.query(
        "select month_start, target_kind, target_id, count(*) as intervals, "
        "sum(abs(actual - p50)) / sum(abs(actual)) as wape, "
        "sum(abs(actual - baseline)) / sum(abs(actual)) as baseline_wape, "
        "avg((actual between p10 and p90)::int) as coverage "
        "from ml.forecasts where run_kind = 'backtest' and actual is not null "
        "and baseline is not null group by 1, 2, 3 order by 1, 2, 3"
    )
    assert metrics["intervals"].tolist() == recomputed["intervals"].tolist()
    assert metrics["wape"].astype(float).tolist() == pytest.approx(
        recomputed["wape"].astype(float).tolist()
    )
    assert metrics["coverage_p10_p90"].astype(float).tolist() == pytest.approx(
        recomputed["coverage"].astype(float).tolist()
    )
    february = metrics[metrics["month_start"] == FEB]
    assert (february["wape"] < february["baseline_wape"]).all()  # noise a week ago is no help

    # The last backtest week, plotted per feeder and for the system, attached to the month.
    plots = platform.settings.home / "plots" / "forecasts" / "2024-02"
    for name in (
        "feeder-North.png",
        "feeder-South.png",
        "system-system.png",
        "meters_total-meters_without_feeder.png",
    ):
        assert_png(plots / name)

    with platform_session(platform.settings):
        instance = DagsterInstance.get()
        record = instance.fetch_materializations(
            AssetRecordsFilter(
                asset_key=AssetKey(["ml", "forecast_backtest"]), asset_partitions=["2024-02"]
            ),
            limit=1,
        ).records[0]
        metadata = record.asset_materialization.metadata
        assert metadata["plot feeder-North"].value.startswith("![feeder-North](data:image/png;")
        scores = metadata["scores"].value["2024-02 feeder"]
        assert scores["targets"] == 2 and scores["wape"] < scores["baseline_wape"]

        # The month run itself backtested the month; once it finished, the live forecast is
        # refreshed.
        from energy_assets.automation import forecasts_after_marts
        from energy_assets.definitions import defs

        run = instance.get_runs(RunsFilter(job_name="monthly_marts_job"), limit=1)[0]
        context = after_run(platform, instance, run)
        steps = {
            e.step_key for e in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_SUCCESS)
        }
        assert {"ml__forecast_backtest", "ml__anomalies"} <= steps
        assert run.tags["dagster/asset_partition_range_end"] == "2024-02"
        # The data verdicts as the asset check's metadata: in January every target had too
        # little history before the 22nd.
        evaluations = instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
        checks = {
            e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data
            for e in evaluations
        }
        sufficiency = checks["forecast_data_sufficient"]
        assert not sufficiency.passed
        january = sufficiency.metadata["2024-01 insufficient_history, ok"].value
        assert january.startswith("8: feeder North, feeder South, meter M1001")
        assert sufficiency.metadata["2024-02 ok"].value.startswith("8: ")
        request = forecasts_after_marts(context)
        assert request.job_name in (None, "day_ahead_job")
        assert request.run_key == f"live-{run.run_id}"

        # Re-issuing the live forecast replaces it rather than adding a copy.
        assert defs.resolve_job_def("day_ahead_job").execute_in_process(instance=instance).success
    assert forecast_counts(platform) == EXPECTED_FORECASTS

    # History that arrives after the month it precedes: the households' December, dropped now,
    # is built, then January is backtested again with December's weeks behind it. The
    # households' January forecasts start on the 1st instead of the 8th; nothing else changes.
    settings = replace(platform.settings, forecasts=True)
    write_households(settings.dropbox / "households-2023-12.csv", "2023-12-01", "2024-01-01")
    report = run_once(settings)
    assert report.ok, report.table()
    assert [name for name, _ in report.steps][1:] == [
        "marts 2023-12..2023-12",
        "backtest 2024-01 with 2023-12 before it",
        "day-ahead forecast",
    ]
    counts = forecast_counts(platform)
    assert counts[("backtest", "meter", JAN)] == (2 * 24 * 96 + 2 * 31 * 48, 4)
    assert {k: v for k, v in counts.items() if k[2] != DEC and k[1] == "feeder"} == {
        k: v for k, v in EXPECTED_FORECASTS.items() if k[1] == "feeder"
    }
    # That backtest-only run rebuilt no marts: the live forecast is not refreshed after it.
    from energy_assets.automation import forecasts_after_marts

    with platform_session(platform.settings), DagsterInstance.get() as instance:
        again = instance.get_runs(RunsFilter(job_name="monthly_marts_job"), limit=1)[0]
        assert again.asset_selection == {
            AssetKey(["ml", "forecast_backtest"]),
            AssetKey(["ml", "anomalies"]),
        }
        assert isinstance(forecasts_after_marts(after_run(platform, instance, again)), SkipReason)
