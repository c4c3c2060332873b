"""Forecast accuracy on real data it never saw, against OpenSTEF 4.7, and a month's cost.

Runs `energy_assets.forecasts.day_ahead.backtest` (the code behind the ml/forecast_backtest
asset) on every real series in `../shared/data`:
- the three OpenSTEF grid connections (Dutch 15-minute loads, pid 287, 307 and 435) as feeders,
  with the weather their files carry (temperature, radiation, wind speed at 100 m, pressure,
  humidity, cloud cover), Dutch holidays;
- the Low Carbon London households (30 minutes; their labels are GMT all year), one by one and
  their sum, with London's hourly weather (temperature, wind speed, pressure, humidity) and
  English bank holidays, and the sum also bottom-up from the households' forecasts;
at two issue times: `D-1 10:00` (the default, day-ahead: 14-38 h ahead) and `D-1 23:00`
(1-25 h ahead). Beside the platform, on the same rows: the seasonal naive (the same slot a week
earlier), the 4-week same-slot mean, and OpenSTEF 4.7's preset XGBoost workflow with its
defaults (quantiles P10/P50/P90, its horizon set to the longest lead of the issue time, no
MLflow store), retrained on the same days, issued at the same times with the same weather,
run in a Python >= 3.12 environment of its own under benchmarks/results/work (made here with
the first such interpreter found, or "skipped" with the reason). The weather in these files is
what was recorded, standing in for a forecast of it, for every model alike.

Then the cost of a month's backtest of 100 generated 15-minute meters with 2 and with 12 months
of history behind it: training uses all of it, sampled to a bounded number of days.

Prints the tables; writes benchmarks/results/forecast.json.
Usage: .venv/bin/python benchmarks/forecast.py [--parts accuracy timing] [--no-openstef]
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import RESULTS, table, write_results  # noqa: E402
from energy_assets.forecasts.day_ahead import (  # noqa: E402
    ForecastConfig,
    backtest,
    backtest_sample,
    bottom_up,
)
from energy_assets.forecasts.features import observed_weather  # noqa: E402
from energy_assets.forecasts.model import forecast_metrics  # noqa: E402
from energy_assets.forecasts.product import Product  # noqa: E402
from energy_assets.ingest.sample import feeder_meter_frame  # noqa: E402
from energy_assets.months import days_between, next_month  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
OPENSTEF = SHARED / "openstef_example_nl_2020"
LCL = SHARED / "lcl_london_2013_60hh"
WORK = RESULTS / "work"
OPENSTEF_VERSION = "4.7.0"
# column in the file -> (the platform's weather variable, OpenSTEF preset's column)
OPENSTEF_WEATHER = {
    "temp": ("temperature", "temperature"),
    "radiation": ("radiation", "radiation"),
    "windspeed_100m": ("wind_speed", "windspeed"),
    "pressure": ("pressure", "pressure"),
    "humidity": ("humidity", "relative_humidity"),
    "clouds": ("cloud_cover", "clouds"),
}
LCL_WEATHER = {
    "temperature": ("temperature", "temperature"),
    "windSpeed": ("wind_speed", "windspeed"),
    "pressure": ("pressure", "pressure"),
    "humidity": ("humidity", "relative_humidity"),
}
ISSUES = ("D-1 10:00", "D-1 23:00")
LONDON = (51.5, -0.12)
SERIES = ["openstef", "lcl-sum", "lcl-households"]
OPENSTEF_HOUSEHOLDS = 10  # households OpenSTEF forecasts one by one (a fixed sample)


def month_days(months: list[str], last: date | None = None) -> list[date]:
    days = []
    for month in months:
        first = date.fromisoformat(month + "-01")
        days += [d for d in days_between(first, next_month(first)) if last is None or d <= last]
    return days


def openstef_data() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The three connections (long) and the weather each file carries, per pid."""
    frames = []
    for pid in ("287", "307", "435"):
        raw = pd.read_csv(OPENSTEF / f"get_model_input_pid_{pid}.csv.gz")
        frame = pd.DataFrame(
            {
                "target_id": f"pid {pid}",
                "interval_start": pd.to_datetime(raw["index"], utc=True),
                "value": raw["load"],
            }
        )
        for column in OPENSTEF_WEATHER:
            frame[column] = raw[column]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True), frames[0]


def lcl_data() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Households (long, kW), their sum where every household on the trial reported, and
    London's hourly weather (labels in GMT, as the readings')."""
    raw = pd.read_csv(LCL / "halfhourly_kwh.csv.gz", na_values=["Null"])
    raw.columns = ["target_id", "local", "kwh"]
    meters = pd.DataFrame(
        {
            "target_id": raw["target_id"],
            "interval_start": pd.to_datetime(raw["local"]).dt.tz_localize("UTC"),
            "value": pd.to_numeric(raw["kwh"], errors="coerce") * 2,  # kWh per half hour -> kW
        }
    ).drop_duplicates(["target_id", "interval_start"])
    tariffs = pd.read_csv(LCL / "households.csv").set_index("LCLid")["stdorToU"]
    meters["tariff_flag"] = (meters["target_id"].map(tariffs) == "ToU").astype(float)
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
        }
    )
    weather = pd.read_csv(LCL / "weather_hourly_darksky_london.csv")
    weather = weather.assign(interval_start=pd.to_datetime(weather["time"]).dt.tz_localize("UTC"))
    weather = weather.drop_duplicates("interval_start").sort_values("interval_start")
    return meters, total, weather


def platform_rows(series, kind, days, config, weather) -> tuple[pd.DataFrame, float]:
    """The platform's backtest rows and the CPU seconds they took."""
    started = time.process_time()
    result = backtest(series, kind, days, config, weather=weather)
    return result.rows, time.process_time() - started


def openstef_python() -> tuple[Path | None, str]:
    """The interpreter of OpenSTEF's environment (made on first use), or None and why not."""
    venv = WORK / "openstef-venv"
    python = venv / "bin" / "python"
    if python.exists():
        return python, ""
    candidates = [shutil.which(f"python3.{minor}") for minor in (14, 13, 12)]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted(map(str, pyenv.glob("3.1[2-9]*/bin/python")), reverse=True)
    # A pyenv shim is on PATH for versions it does not select, and fails when run: try each.
    base = next(
        (
            c
            for c in candidates
            if c and subprocess.run([c, "-c", ""], capture_output=True).returncode == 0
        ),
        None,
    )
    if base is None:
        return None, "no Python >= 3.12 found (PATH or pyenv) for OpenSTEF 4.7"
    WORK.mkdir(parents=True, exist_ok=True)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"openstef=={OPENSTEF_VERSION}"],
        capture_output=True,
        text=True,
    )
    if install.returncode:
        shutil.rmtree(venv)
        return None, f"pip install openstef=={OPENSTEF_VERSION} failed: {install.stderr[-300:]}"
    return python, ""


def openstef_rows(
    python: Path,
    series: pd.DataFrame,
    weather: pd.DataFrame,
    columns: dict,
    days: list[date],
    product: Product,
    tz: str,
    place: dict,
) -> pd.DataFrame:
    """OpenSTEF's forecasts for each target of `series`, issued as the platform's are."""
    issues = product.issues(days, tz)
    lead = max(i.end - i.issued_at for i in issues)
    horizon = f"PT{int(np.ceil(lead / pd.Timedelta(hours=1)))}H"
    frames = []
    for target, rows in series.groupby("target_id"):
        step = rows["interval_start"].sort_values().diff().mode().iloc[0]
        data = rows.set_index("interval_start")[["value"]].rename(columns={"value": "load"})
        data = data.sort_index().asfreq(step)
        for source, (_, name) in columns.items():
            values = weather.set_index("interval_start")[source]
            data[name] = values.reindex(data.index.floor("h")).to_numpy()
        spec = {
            "interval_minutes": step / pd.Timedelta(minutes=1),
            "horizon": horizon,
            **place,
            "issues": [
                {
                    "issued_at": str(i.issued_at),
                    "start": str(i.start),
                    "end": str(i.end),
                    "retrain": k % 7 == 0,
                }
                for k, i in enumerate(issues)
            ],
        }
        frames.append(run_openstef(python, data, spec).assign(target_id=target))
    rows = pd.concat(frames, ignore_index=True)
    rows["interval_start"] = pd.to_datetime(rows["interval_start"], utc=True)
    rows["issued_at"] = pd.to_datetime(rows["issued_at"], utc=True)
    names = {f"quantile_P{q}": f"os_p{q}" for q in (10, 50, 90)}
    return rows.rename(columns=names)


def run_openstef(python: Path, data: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """OpenSTEF's forecasts for one series, kept under WORK by the hash of its input and spec
    (a rerun of the benchmark does not pay for them again)."""
    text = json.dumps(spec, sort_keys=True)
    key = hashlib.sha256(pd.util.hash_pandas_object(data).to_numpy().tobytes() + text.encode())
    cached = WORK / "openstef-cache" / f"{key.hexdigest()[:20]}.parquet"
    if cached.exists():
        return pd.read_parquet(cached)
    cached.parent.mkdir(parents=True, exist_ok=True)
    source = cached.with_suffix(".in.parquet")
    spec_path = cached.with_suffix(".spec.json")
    data.to_parquet(source)
    spec_path.write_text(text)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    script = Path(__file__).with_name("_openstef.py")
    run = subprocess.run(
        [str(python), str(script), str(source), str(spec_path), str(cached)],
        capture_output=True,
        text=True,
        env=env,
    )
    if run.returncode:
        raise RuntimeError(f"OpenSTEF failed: {run.stderr[-2000:]}")
    return pd.read_parquet(cached)


def show(rows: list[dict]) -> str:
    """A table of result rows, figures to 4 decimals (the forecasters are often closer than
    0.001 apart), "skipped" where OpenSTEF did not run."""

    def cell(value):
        return "skipped" if value is None else f"{value:.4f}" if isinstance(value, float) else value

    return table(list(rows[0]), [[cell(v) for v in r.values()] for r in rows])


def wape(actual, predicted) -> float:
    return float(np.abs(actual - predicted).sum() / np.abs(actual).sum())


def compare(label: str, issue: str, platform: pd.DataFrame, openstef: pd.DataFrame | None) -> dict:
    """WAPE of every forecaster on the rows all of them have, the bands' coverage."""
    keys = ["target_id", "issued_at", "interval_start"]
    rows = platform.dropna(subset=["actual", "p50", "baseline", "same_slot"])
    if openstef is not None:
        rows = rows.merge(openstef, on=keys).dropna(subset=["os_p50"])
    m = forecast_metrics(
        rows["actual"], rows["p10"], rows["p50"], rows["p90"], rows["baseline"], 1.0
    )
    out = {
        "series": label,
        "issue": issue,
        "targets": int(rows["target_id"].nunique()),
        "intervals": int(m["n"]),
        "platform": m["wape"],
        "naive": m["baseline_wape"],
        "mean_4w": wape(rows["actual"], rows["same_slot"]),
        "openstef": wape(rows["actual"], rows["os_p50"]) if openstef is not None else None,
        "coverage": m["coverage_p10_p90"],
        "openstef_coverage": float(
            ((rows["actual"] >= rows["os_p10"]) & (rows["actual"] <= rows["os_p90"])).mean()
        )
        if openstef is not None
        else None,
    }
    return out


def openstef_series(python, issues) -> list[dict]:
    """The three grid connections, Dec 2020 and Jan 2021 (their loads end on Jan 28)."""
    connections, weather_of = openstef_data()
    weather = observed_weather(weather_of, {c: v for c, (v, _) in OPENSTEF_WEATHER.items()})
    days = month_days(["2020-12", "2021-01"], last=date(2021, 1, 27))
    series = connections[["target_id", "interval_start", "value"]]
    place = {"latitude": 52.0, "longitude": 5.0, "country": "NL"}
    results = []
    for issue in issues:
        config = ForecastConfig(
            tz="Europe/Amsterdam",
            product=Product.parse(issue),
            holiday_country="NL",
            place=(place["latitude"], place["longitude"]),
        )
        rows, cpu = platform_rows(series, "feeder", days, config, weather)
        print(
            show(
                [
                    compare(f"{t} (platform alone)", issue, r, None)
                    for t, r in rows.groupby("target_id")
                ]
            ),
            flush=True,
        )
        theirs = None
        if python:
            theirs = openstef_rows(
                python, series, weather_of, OPENSTEF_WEATHER, days, config.product, config.tz, place
            )
        for target, mine in rows.groupby("target_id"):
            other = theirs[theirs["target_id"] == target] if theirs is not None else None
            results.append({**compare(f"OpenSTEF {target}", issue, mine, other), "cpu_s": cpu})
        print(show(results[-3:]), flush=True)
    return results


def lcl_series(python, issues, households: bool) -> list[dict]:
    """The sum of the 60 London households over March, July and November 2013; or the
    households one by one over March (OpenSTEF on a fixed sample of 10, each its own model),
    and their sum bottom-up beside the direct forecast of it."""
    meters, total, lcl_weather = lcl_data()
    weather = observed_weather(lcl_weather, {c: v for c, (v, _) in LCL_WEATHER.items()})
    place = {"latitude": LONDON[0], "longitude": LONDON[1], "country": "GB"}
    results = []
    for issue in issues:
        config = ForecastConfig(
            tz="Europe/London",
            product=Product.parse(issue),
            holiday_country="GB",
            holiday_subdiv="ENG",
            backtest_meters=None,
            place=(place["latitude"], place["longitude"]),
        )
        months = ["2013-03"] if households else ["2013-03", "2013-07", "2013-11"]
        days = month_days(months)
        direct, cpu = platform_rows(total, "meters_total", days, config, weather)
        if not households:
            theirs = None
            if python:
                theirs = openstef_rows(
                    python, total, lcl_weather, LCL_WEATHER, days, config.product, config.tz, place
                )
            results.append(
                {**compare("LCL sum of households", issue, direct, theirs), "cpu_s": cpu}
            )
            print(show(results[-1:]), flush=True)
            continue
        rows, cpu = platform_rows(meters, "meter", days, config, weather)
        print(show([compare("LCL households (platform alone, 60)", issue, rows, None)]), flush=True)
        theirs = None
        if python:
            sample = backtest_sample(sorted(meters["target_id"].unique()), OPENSTEF_HOUSEHOLDS)
            chosen = meters[meters["target_id"].isin(sample)]
            theirs = openstef_rows(
                python,
                chosen[["target_id", "interval_start", "value"]],
                lcl_weather,
                LCL_WEATHER,
                days,
                config.product,
                config.tz,
                place,
            )
        label = f"LCL single households ({OPENSTEF_HOUSEHOLDS} of 60)"
        results.append({**compare(label, issue, rows, theirs), "cpu_s": cpu})
        summed = bottom_up(rows, "households")
        results.append({**compare("LCL sum, Mar, direct", issue, direct, None), "cpu_s": 0.0})
        results.append({**compare("LCL sum, Mar, bottom-up", issue, summed, None), "cpu_s": 0.0})
        print(show(results[-3:]), flush=True)
    return results


def accuracy(use_openstef: bool, series: list[str], issues: list[str]) -> tuple[list[dict], str]:
    python, why = openstef_python() if use_openstef else (None, "--no-openstef")
    results = []
    if OPENSTEF.exists() and "openstef" in series:
        results += openstef_series(python, issues)
    if LCL.exists() and "lcl-sum" in series:
        results += lcl_series(python, issues, households=False)
    if LCL.exists() and "lcl-households" in series:
        results += lcl_series(python, issues, households=True)
    return results, why


def history_choice() -> list[dict]:
    """How much history helps: the London sum over July and November 2013, issued D-1 10:00,
    by models that learn from the last 28 or 91 days or from all of it (the default)."""
    _, total, lcl_weather = lcl_data()
    weather = observed_weather(lcl_weather, {c: v for c, (v, _) in LCL_WEATHER.items()})
    days = month_days(["2013-07", "2013-11"])
    out = []
    for train_days in (28, 91, None):
        config = ForecastConfig(
            tz="Europe/London",
            holiday_country="GB",
            holiday_subdiv="ENG",
            train_days=train_days,
            place=LONDON,
        )
        rows, cpu = platform_rows(total, "meters_total", days, config, weather)
        label = f"last {train_days} days" if train_days else "all (default)"
        out.append(
            {**compare(f"LCL sum, Jul + Nov, {label}", "D-1 10:00", rows, None), "cpu_s": cpu}
        )
        print(show(out[-1:]), flush=True)
    return out


def generated_meters(first: str, last: str, n: int = 100) -> pd.DataFrame:
    """`n` meters of 15-minute data (the sample generator's shape) over [first, last)."""
    frames = []
    for i in range(n):
        f = feeder_meter_frame(f"M{i}", first, last, 5 + i % 40, seed=i)
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


def timing() -> list[dict]:
    """A month (Feb 2025) of backtest for 100 meters, with 2 and with 12 months before it."""
    config = ForecastConfig(backtest_meters=None)
    days = month_days(["2025-02"])
    series = generated_meters("2024-02-01", "2025-03-01")
    out = []
    for months, first in ((2, "2024-12-01"), (12, "2024-02-01")):
        rows = series[series["interval_start"] >= pd.Timestamp(first, tz="UTC")]
        started, cpu = time.perf_counter(), time.process_time()
        result = backtest(rows, "meter", days, config)
        train = sum(m.calibration["train_seconds"] for m in result.models)
        out.append(
            {
                "history_months": months,
                "meters": 100,
                "forecasts": len(result.rows),
                "models": len(result.models),
                "train_days_per_model": max(m.calibration["train_days"] for m in result.models),
                "train_s": train,
                "wall_s": time.perf_counter() - started,
                "cpu_s": time.process_time() - cpu,
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["accuracy", "history", "timing"],
        choices=["accuracy", "history", "timing"],
    )
    parser.add_argument("--no-openstef", action="store_true", help="leave OpenSTEF out")
    parser.add_argument("--series", nargs="+", default=SERIES, choices=SERIES)
    parser.add_argument("--issues", nargs="+", default=list(ISSUES))
    args = parser.parse_args()
    result = {}
    if "accuracy" in args.parts:
        rows, why = accuracy(not args.no_openstef, args.series, args.issues)
        if not rows:
            print(f"no real data under {SHARED}")
        else:
            print("\nWAPE on the same rows (lower is better); coverage of the P10-P90 band")
            print(show(rows))
        if why:
            print(f"OpenSTEF {OPENSTEF_VERSION}: skipped ({why})")
        result["accuracy"] = rows
    if "history" in args.parts and LCL.exists():
        result["history"] = history_choice()
        print("\nHow much history the model learns from")
        print(show(result["history"]))
    if "timing" in args.parts:
        cost = timing()
        print("\nA month's backtest, 100 generated 15-minute meters")
        print(show(cost))
        result["timing"] = cost
    write_results("forecast", result)


if __name__ == "__main__":
    main()
