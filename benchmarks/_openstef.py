"""OpenSTEF 4.7's preset forecasting workflow on the rows `forecast.py` hands it.

Runs in a virtual environment of its own (OpenSTEF needs Python >= 3.12, the platform 3.11):
`forecast.py` writes one series and its issues, calls this script with that environment's
Python and reads the quantiles back. Imports nothing of the platform.

Usage: python _openstef.py INPUT.parquet SPEC.json OUTPUT.parquet

INPUT: a UTC DatetimeIndex, `load`, weather columns named as OpenSTEF's preset expects
(`temperature`, `radiation`, `windspeed`, ...). SPEC: sample interval, horizon, location and the
issues (issued_at, window start and end, whether to retrain there). OUTPUT: one row per issue and
interval of its window: issued_at, interval_start, quantile_P10, quantile_P50, quantile_P90.
"""

from __future__ import annotations

import json
import sys
import warnings
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
from openstef_core.datasets.timeseries_dataset import TimeSeriesDataset
from openstef_core.types import LeadTime, Q
from openstef_models.presets.forecasting_workflow import (
    ForecastingWorkflowConfig,
    LocationConfig,
    create_forecasting_workflow,
)
from pydantic_extra_types.coordinate import Coordinate, Latitude, Longitude
from pydantic_extra_types.country import CountryAlpha2

QUANTILES = ("quantile_P10", "quantile_P50", "quantile_P90")


def workflow(spec: dict):
    """The preset XGBoost workflow; only what the data dictates is set (no MLflow store)."""
    config = ForecastingWorkflowConfig(
        model_id="benchmark",
        model="xgboost",
        quantiles=[Q(0.1), Q(0.5), Q(0.9)],
        sample_interval=timedelta(minutes=spec["interval_minutes"]),
        horizons=[LeadTime.from_string(spec["horizon"])],
        location=LocationConfig(
            coordinate=Coordinate(
                latitude=Latitude(Decimal(str(spec["latitude"]))),
                longitude=Longitude(Decimal(str(spec["longitude"]))),
            ),
            country_code=CountryAlpha2(spec["country"]),
        ),
        mlflow_storage=None,
    )
    return create_forecasting_workflow(config)


def main() -> None:
    source, spec_path, target = sys.argv[1:4]
    warnings.simplefilter("ignore")
    data = pd.read_parquet(source)
    spec = json.loads(Path(spec_path).read_text())
    interval = timedelta(minutes=spec["interval_minutes"])
    history = timedelta(days=15)
    model, frames = None, []
    for issue in spec["issues"]:
        issued, start, end = (pd.Timestamp(issue[k]) for k in ("issued_at", "start", "end"))
        if issue["retrain"] or model is None:
            past = data[data.index < issued].dropna(subset=["load"])
            model = workflow(spec)
            model.fit(TimeSeriesDataset(past, interval))
        window = data[(data.index >= issued - history) & (data.index < end)].copy()
        window.loc[window.index >= issued, "load"] = float("nan")
        try:
            forecast = model.predict(TimeSeriesDataset(window, interval), forecast_start=issued)
        except Exception as exc:  # a check of the preset refused the input: no forecast
            print(f"{issued}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        rows = forecast.data[(forecast.data.index >= start) & (forecast.data.index < end)]
        frames.append(rows[list(QUANTILES)].assign(issued_at=issued).rename_axis("interval_start"))
    out = pd.concat(frames).reset_index() if frames else pd.DataFrame(columns=QUANTILES)
    out.to_parquet(target)


if __name__ == "__main__":
    main()
