"""Day-ahead forecast accuracy on real data and training cost at 100 meters.

Runs `energy_assets.backtest` (the code behind the ml/forecast_backtest asset) on:
- the OpenSTEF grid loads (three Dutch 15-minute connections as feeders, and their sum as the
  system), with the observed temperature, radiation and wind speed standing in for a weather
  forecast;
- the Low Carbon London households (30-minute meters, and their sum), with London temperature,
  English bank holidays and the time-of-use tariff flag;
- 100 generated 15-minute meters, for the training and prediction time alone.

Prints per target kind: model WAPE, seasonal-naive WAPE, MASE, P10-P90 coverage, train and
predict seconds; writes benchmarks/results/forecast.json.
Usage: .venv/bin/python benchmarks/forecast.py [--parts openstef lcl timing] [--lcl-months ...]
"""

import argparse
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import write_results  # noqa: E402
from energy_assets.forecasts.day_ahead import ForecastConfig, backtest  # noqa: E402
from energy_assets.forecasts.model import forecast_metrics, naive_mae  # noqa: E402
from energy_assets.ingest.sample import feeder_meter_frame  # noqa: E402
from energy_assets.months import days_between, next_month  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
OPENSTEF = SHARED / "openstef_example_nl_2020"
LCL = SHARED / "lcl_london_2013_60hh"
OPENSTEF_WEATHER = {"temp": "temperature", "radiation": "radiation", "windspeed_100m": "wind_speed"}


def month_days(month: str) -> list[date]:
    first = date.fromisoformat(month + "-01")
    return days_between(first, next_month(first))


def openstef() -> dict[str, pd.DataFrame]:
    frames = []
    for pid in ("287", "307", "435"):
        raw = pd.read_csv(
            OPENSTEF / f"get_model_input_pid_{pid}.csv.gz",
            usecols=["index", "load", *OPENSTEF_WEATHER],
        )
        frame = pd.DataFrame(
            {
                "target_id": pid,
                "interval_start": pd.to_datetime(raw["index"], utc=True),
                "value": raw["load"],
            }
        )
        for source, variable in OPENSTEF_WEATHER.items():
            frame[f"weather_{variable}"] = raw[source]
        frames.append(frame)
    feeders = pd.concat(frames, ignore_index=True)
    weather = {c: (c, "mean") for c in feeders.columns if c.startswith("weather_")}
    system = feeders.groupby("interval_start", as_index=False).agg(
        value=("value", lambda v: v.sum(min_count=3)), **weather
    )
    return {"feeder": feeders, "system": system.assign(target_id="system")}


def lcl() -> dict[str, pd.DataFrame]:
    raw = pd.read_csv(LCL / "halfhourly_kwh.csv.gz", na_values=["Null"])
    raw.columns = ["target_id", "local", "kwh"]
    local = pd.to_datetime(raw["local"])
    times = local.dt.tz_localize("Europe/London", ambiguous="NaT", nonexistent="NaT")
    meters = pd.DataFrame(
        {
            "target_id": raw["target_id"],
            "interval_start": times.dt.tz_convert("UTC"),
            "value": pd.to_numeric(raw["kwh"], errors="coerce") * 2,  # kWh per half hour -> kW
        }
    )
    meters = meters.dropna(subset=["interval_start"])
    meters = meters.drop_duplicates(["target_id", "interval_start"])
    weather = pd.read_csv(
        LCL / "weather_hourly_darksky_london.csv", usecols=["time", "temperature"]
    )
    hourly = weather.assign(hour=pd.to_datetime(weather["time"]).dt.tz_localize("UTC"))
    hourly = hourly.drop_duplicates("hour").set_index("hour")["temperature"]
    hours = meters["interval_start"].dt.floor("h")
    meters["weather_temperature"] = hourly.reindex(hours).to_numpy()
    tariffs = pd.read_csv(LCL / "households.csv").set_index("LCLid")["stdorToU"]
    meters["tariff_flag"] = (meters["target_id"].map(tariffs) == "ToU").astype(float)
    # The households' sum where every household then on the trial reported (as the platform's
    # meters_total target is built: a meter counts from its first to its last reading).
    known = meters.dropna(subset=["value"])
    spans = known.groupby("target_id")["interval_start"].agg(["min", "max"])
    wide = meters.pivot(index="interval_start", columns="target_id", values="value")
    times = wide.index.to_numpy()[:, None]
    active = (times >= spans["min"].reindex(wide.columns).to_numpy()) & (
        times <= spans["max"].reindex(wide.columns).to_numpy()
    )
    complete = (wide.notna().to_numpy() | ~active).all(axis=1)
    total = pd.DataFrame(
        {
            "target_id": "households",
            "interval_start": wide.index,
            "value": np.where(complete, wide.sum(axis=1), np.nan),
            "weather_temperature": hourly.reindex(wide.index.floor("h")).to_numpy(),
        }
    )
    return {"meter": meters, "meters_total": total}


def generated_meters(n: int = 100) -> pd.DataFrame:
    """100 meters of 15-minute data (the sample generator's shape), two months."""
    frames = []
    for i in range(n):
        f = feeder_meter_frame(f"M{i}", "2024-01-01", "2024-03-01", 5 + i % 40, seed=i)
        frames.append(
            pd.DataFrame(
                {
                    "target_id": f"M{i}",
                    "interval_start": pd.to_datetime(f["Start Time"], utc=True),
                    "value": f["kW del"] - f["kW rec"],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def score(kind: str, series: pd.DataFrame, months: list[str], config: ForecastConfig) -> dict:
    started, cpu = time.perf_counter(), time.process_time()
    results, frames = [], []
    for month in months:
        days = month_days(month)
        results.append(backtest(series, kind, days, config))
        scale = naive_mae(series, config.issue_time(days[-1]))  # as target_metrics scales MASE
        frames.append(results[-1].rows.assign(mase_scale=lambda r, s=scale: r["target_id"].map(s)))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    rows = pd.concat(frames, ignore_index=True)
    m = forecast_metrics(
        rows["actual"], rows["p10"], rows["p50"], rows["p90"], rows["baseline"], rows["mase_scale"]
    )
    models = [model for r in results for model in r.models]
    train = sum(model.calibration.get("train_seconds", 0.0) for model in models)
    return {
        "kind": kind,
        "months": months,
        "targets": int(rows["target_id"].nunique()),
        "intervals": int(m["n"]),
        "wape": m["wape"],
        "baseline_wape": m["baseline_wape"],
        "improvement": 1 - m["wape"] / m["baseline_wape"],
        "mase": m["mase"],
        "baseline_mase": m["baseline_mase"],
        "coverage": m["coverage_p10_p90"],
        "pinball": m["pinball"],
        "models": len(models),
        "train_s": train,
        "total_s": seconds,
        "predict_s": seconds - train,
        "cpu_s": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lcl-months", nargs="+", default=["2013-03", "2013-07", "2013-11"])
    parser.add_argument(
        "--meter-months",
        nargs="+",
        default=["2013-03"],
        help="LCL months for the 60 single households (the slow part)",
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["openstef", "lcl", "timing"],
        choices=["openstef", "lcl", "timing"],
    )
    parser.add_argument("--openstef-months", nargs="+", default=["2020-12", "2021-01"])
    args = parser.parse_args()
    rows = []
    if "openstef" in args.parts and OPENSTEF.exists():
        config = ForecastConfig(tz="Europe/Amsterdam", holiday_country="NL")
        for kind, series in openstef().items():
            rows.append({"data": "OpenSTEF", **score(kind, series, args.openstef_months, config)})
    if "lcl" in args.parts and LCL.exists():
        config = ForecastConfig(tz="Europe/London", holiday_country="GB", holiday_subdiv="ENG")
        series = lcl()
        rows.append(
            {
                "data": "LCL",
                **score("meters_total", series["meters_total"], args.lcl_months, config),
            }
        )
        rows.append({"data": "LCL", **score("meter", series["meter"], args.meter_months, config)})
    if not rows and {"openstef", "lcl"} & set(args.parts):
        print(f"no real data under {SHARED}: only the timing run follows")
    if "timing" in args.parts:
        timing = score("meter", generated_meters(), ["2024-02"], ForecastConfig())
        rows.append({"data": "generated 100 x 15 min", **timing})

    table = pd.DataFrame(rows)[
        [
            "data",
            "kind",
            "targets",
            "intervals",
            "wape",
            "baseline_wape",
            "improvement",
            "mase",
            "coverage",
            "train_s",
            "predict_s",
            "cpu_s",
        ]
    ]
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    write_results("forecast", {"rows": rows})


if __name__ == "__main__":
    main()
