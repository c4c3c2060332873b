"""Rolling-origin backtests and live forecasts of the forecast product, for one kind of target.

The engine behind the forecast assets, kept free of the database and Dagster so a benchmark
runs exactly what the assets run. For every issue, the model used was trained at or before the
issue time on windows that ended by then, and the issue's features use rows before it only.
Models are retrained every `retrain_days` on the whole history (older days sampled so a model
costs the same with a year behind it as with two months, every holiday kept); the P10-P90 band
is calibrated on the last `calibration_days`, which a first fit leaves out to measure its error
and the final fit then includes. A target whose history is too short, too incomplete or flat
gets a named verdict and the 4-week same-slot mean instead of the model.
"""

from __future__ import annotations

import hashlib
import math
import time
import zlib
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

import numpy as np
import pandas as pd

from energy_assets.forecasts.features import HISTORY, build_features, public_holidays
from energy_assets.forecasts.model import (
    QuantileModel,
    conformal_offsets,
    fit_quantile_model,
    forecast_metrics,
    naive_mae,
    predict_quantiles,
)
from energy_assets.forecasts.product import Issue, Product
from energy_assets.settings import Settings

DAY = pd.Timedelta(days=1)
LOOKAHEAD = pd.Timedelta(days=3)  # covers the forecast windows' actuals, for scoring only
VERDICTS = {
    "ok": "the model forecasts the target",
    "insufficient_history": "fewer than min_history_days of readings before the issue",
    "completeness": "under half of the last 14 days' intervals have a reading",
    "flatline": "the same value through the whole last day (a stuck or switched-off meter)",
}
"""A target's data verdict at each retrain point; any but `ok` gets the 4-week same-slot mean."""
COMPLETENESS_DAYS, MIN_COMPLETENESS = 14, 0.5
FALLBACK = "same_slot_mean_4w"  # the model_version of fallback forecasts
METRIC_COLUMNS = [
    "intervals",
    "mae",
    "rmse",
    "wape",
    "mase",
    "pinball",
    "coverage_p10_p90",
    "baseline_mae",
    "baseline_wape",
    "same_slot_wape",
    "verdict",
    "weather_source",
    "weather_forecast_share",
]


@dataclass(frozen=True)
class ForecastConfig:
    """How forecasts are issued and models trained (`from_settings` takes the ENERGY_* knobs)."""

    tz: str = "UTC"
    product: Product = Product()
    train_days: int | None = None  # days of history a model may learn from; None: all
    calibration_days: int = 7  # the last training days, left out of a first fit to size the band
    retrain_days: int = 7
    min_history_days: int = 14  # less history before the issue: the 4-week mean instead
    coverage: float = 0.8  # P10-P90 nominally covers 80%
    rounds: int = 300  # at learning rate 0.05 (see model.MODEL_PARAMS)
    bag: int = 3  # boosters of different seeds averaged in each model (see fit_quantile_model)
    max_train_rows: int = 40_000  # rows sampled from a larger training set
    recent_days: int = 56  # the latest training days, all used; older ones are sampled ...
    max_train_days: int = 112  # ... so that a model sees at most this many days, and every holiday
    backtest_meters: int | None = 50  # meters in the per-meter backtest (a fixed sample); None: all
    holiday_country: str | None = None  # ISO code for the `holidays` package, e.g. GB
    holiday_subdiv: str | None = None  # e.g. ENG
    place: tuple[float, float] | None = None  # the weather's latitude and longitude

    @classmethod
    def from_settings(cls, settings: Settings) -> ForecastConfig:
        return cls(
            tz=settings.default_timezone,
            product=Product.parse(settings.forecast_issue, settings.forecast_horizon_hours),
            train_days=settings.forecast_train_days,
            rounds=settings.forecast_rounds,
            bag=settings.forecast_bag,
            min_history_days=settings.forecast_min_history_days,
            backtest_meters=settings.backtest_meters,
            holiday_country=settings.holiday_country,
            holiday_subdiv=settings.holiday_subdiv,
            place=weather_place(settings.weather_sites),
        )

    def first_issue(self, day: date, tz: str | None = None) -> pd.Timestamp:
        """When the first forecast whose window starts on local `day` is issued, in UTC."""
        return self.product.issues_on(day, tz or self.tz)[0].issued_at

    def recent_needed(self, latest: pd.Timestamp) -> pd.Timestamp:
        """The earliest interval a live forecast after `latest` reads of a target it does not
        train on: the features' look-back and the history its verdict counts."""
        days = max(HISTORY, pd.Timedelta(days=max(self.min_history_days, COMPLETENESS_DAYS)))
        return latest - days - 2 * DAY

    def history_needed(self, first_day: date) -> pd.Timestamp:
        """The earliest interval a run whose first forecast day is `first_day` reads."""
        if self.train_days is None:
            return pd.Timestamp("1900-01-01", tz="UTC")
        first = first_day - timedelta(days=self.train_days + 2)
        return self.first_issue(first) - HISTORY - pd.Timedelta(days=1)


def weather_place(sites: tuple[tuple[str, float, float], ...]) -> tuple[float, float] | None:
    """Where the weather is, as the forecasts average it: the middle of the weather sites."""
    if not sites:
        return None
    return float(np.mean([s[1] for s in sites])), float(np.mean([s[2] for s in sites]))


def backtest_sample(targets: list[str], limit: int | None) -> list[str] | None:
    """A fixed sample of `limit` of `targets`, or None (all of them) when they are not more.

    The sample is the same every month and every run (the smallest CRC32 of the id), so monthly
    scores compare like with like: the per-meter backtest judges the model on a sample, as its
    cost grows with every meter while its scores do not need them all.
    """
    if limit is None or len(targets) <= limit:
        return None
    return sorted(targets, key=lambda t: (zlib.crc32(t.encode()), t))[:limit]


@dataclass(frozen=True)
class TrainedModel:
    """A calibrated booster and what it was trained on: one row of ml.models."""

    model: QuantileModel
    name: str
    target_kind: str
    resolution: pd.Timedelta
    trained_at: pd.Timestamp  # the issue time it was trained at: no data at or after it was used
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    calibration: dict[str, float]

    @property
    def booster_bytes(self) -> bytes:
        """The booster as zlib-compressed UBJSON (a third of the raw size):
        `xgb.Booster().load_model(bytearray(zlib.decompress(data)))` restores it."""
        return zlib.compress(bytes(self.model.booster.save_raw("ubj")))

    @property
    def version(self) -> str:
        """A hash of the model's name and booster: the same booster serving two target kinds
        (a system of one feeder) is two models."""
        content = self.name.encode() + bytes(self.model.booster.save_raw("ubj"))
        return hashlib.sha256(content).hexdigest()[:16]

    def for_kind(self, kind: str) -> TrainedModel:
        return replace(self, target_kind=kind, name=self.name.replace(self.target_kind, kind, 1))


@dataclass
class Forecasts:
    """Forecast rows (target_id, issued_at, interval_start, p10, p50, p90, actual, baseline,
    same_slot, model_version, verdict, forecast_weather_share), the models behind them and
    per-target scores (backtests only)."""

    rows: pd.DataFrame
    models: list[TrainedModel] = field(default_factory=list)
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)

    def relabelled(self, kind: str, target_id: str) -> Forecasts:
        """The same forecasts of one target as another kind's target (a system of one feeder
        is that feeder), with models of their own in ml.models."""
        models = [m.for_kind(kind) for m in self.models]
        versions = {old.version: new.version for old, new in zip(self.models, models, strict=True)}
        rows = self.rows.assign(
            target_id=target_id, model_version=self.rows["model_version"].replace(versions)
        )
        return Forecasts(rows, models, self.metrics.assign(target_id=target_id))


def resolution_of(series: pd.DataFrame) -> pd.Series:
    """Each target's interval length: its most common step."""

    def step(times: pd.Series) -> pd.Timedelta:
        return times.sort_values().diff().mode().iloc[0]

    return series.groupby("target_id")["interval_start"].agg(step)


class _Group:
    """The targets of one resolution and timezone: their series, weather, holidays, and the
    feature frames per issue, each built once per run (training sets overlap from one retrain
    to the next)."""

    def __init__(self, series, config, resolution, tz, weather, train_targets=None):
        self.series = series.sort_values("interval_start", ignore_index=True)
        self.config, self.resolution, self.tz, self.weather = config, resolution, tz, weather
        times = self.series["interval_start"]
        self.first_day = (times.min() + HISTORY / 2).tz_convert(tz).date()
        years = range(times.min().year - 1, times.max().year + 2)
        self.holidays = public_holidays(config.holiday_country, years, config.holiday_subdiv)
        self.frames: dict[pd.Timestamp, pd.DataFrame] = {}
        self.train_targets, self.training = None, self
        mine = self.series["target_id"].isin(train_targets or ())
        if mine.any():  # features of the targets trained on, built apart; a group with none of
            # them trains on all of its own
            self.train_targets = train_targets
            self.training = _Group(self.series[mine], config, resolution, tz, weather)
            self.training.first_day = self.first_day

    def features(self, issue: Issue) -> pd.DataFrame:
        if issue.issued_at not in self.frames:
            times = self.series["interval_start"]
            lo, hi = times.searchsorted([issue.issued_at - HISTORY, issue.end])
            self.frames[issue.issued_at] = build_features(
                self.series.iloc[lo:hi],
                issue,
                tz=self.tz,
                holiday_dates=self.holidays,
                resolution=self.resolution,
                weather=self.weather,
                place=self.config.place,
            )
        return self.frames[issue.issued_at]

    def issues(self, days: list[date]) -> list[Issue]:
        return self.config.product.issues(days, self.tz)

    def training_issues(self, days: list[date]) -> list[Issue]:
        """One issue per training day: an intraday product's issues of the day in turn, so a
        model learns every issue hour at the cost of a daily one."""
        out = []
        for day in days:
            issues = self.config.product.issues_on(day, self.tz)
            out.append(issues[day.toordinal() % len(issues)])
        return out

    def training_days(self, before: pd.Timestamp) -> list[date]:
        """The days whose windows all ended by `before`: the latest `recent_days` of them, and
        older ones thinned evenly (a stride that is no multiple of a week, so every weekday
        comes round) to `max_train_days` in all, plus every public holiday."""
        config = self.config
        last = before.tz_convert(self.tz).date()
        while last >= self.first_day and self.issues([last])[-1].end > before:
            last -= timedelta(days=1)
        first = self.first_day
        if config.train_days is not None:
            first = max(first, last - timedelta(days=config.train_days - 1))
        days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
        recent, older = days[-config.recent_days :], days[: -config.recent_days]
        room = max(config.max_train_days - len(recent), 1)
        stride = math.ceil(len(older) / room) if older else 1
        stride += stride > 1 and stride % 7 == 0
        kept = [d for d in older if d.toordinal() % stride == 0 or d in self.holidays]
        return kept + recent


def data_verdicts(
    series: pd.DataFrame, before: pd.Timestamp, config: ForecastConfig, step: pd.Timedelta
) -> pd.Series:
    """Each target's verdict (see VERDICTS) on its readings before `before`."""
    targets = pd.Index(series["target_id"].unique())
    past = series[series["interval_start"] < before]
    known = past.dropna(subset=["value"])
    days = known.groupby("target_id").size().reindex(targets, fill_value=0) * (step / DAY)
    window = pd.Timedelta(days=COMPLETENESS_DAYS)
    recent = past[past["interval_start"] >= before - window].groupby("target_id")["value"]
    complete = recent.count().reindex(targets, fill_value=0) / (window / step)
    last_day = known[known["interval_start"] >= before - DAY].groupby("target_id")["value"]
    flat = (last_day.max() - last_day.min()).eq(0) & last_day.size().ge(2)
    verdict = pd.Series("ok", index=targets)
    verdict[flat.reindex(targets, fill_value=False).to_numpy()] = "flatline"
    verdict[(complete < MIN_COMPLETENESS).to_numpy()] = "completeness"
    verdict[(days < config.min_history_days).to_numpy()] = "insufficient_history"
    return verdict


def _sample(rows: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    """At most `limit` rows, drawn evenly, holidays all kept (they are few and unlike the rest)."""
    if len(rows) <= limit:
        return rows
    holiday = rows[rows["holiday"] == 1]
    rest = rows[rows["holiday"] != 1]
    return pd.concat([holiday, rest.sample(max(limit - len(holiday), 0), random_state=seed)])


def _train(group: _Group, issue: Issue, kind: str, targets: list, previous=None, seed: int = 0):
    """A model for the forecasts issued from `issue` on, fit on every training day before it.

    The band is calibrated on the last `calibration_days` of them, with the forecasts of a model
    that never saw those days: the previous model where it was trained before them (in a
    backtest, the one that forecast them), else a first fit on the days before them.
    """
    config = group.config
    days = group.training_days(issue.issued_at)
    if not days:
        return None
    training = group.training
    rows = pd.concat([training.features(i) for i in group.training_issues(days)], ignore_index=True)
    rows = rows[rows["target_id"].isin(targets) & rows["y"].notna()]
    if rows.empty:
        return None
    started = time.perf_counter()
    split = group.training_issues(days[-config.calibration_days :])[0].start
    calibration = rows[rows["interval_start"] >= split]
    earlier = rows[rows["interval_start"] < split]
    calibrator = previous.model if previous is not None and previous.train_end < split else None
    train, model = _sample(rows, config.max_train_rows, seed), None
    if calibrator is None and len(earlier):
        # No model has forecast the calibration days yet: fit one without them, and then boost
        # it a sixth more on every day, those included (cheaper than a second full fit).
        first = _sample(earlier, config.max_train_rows, seed)
        calibrator = fit_quantile_model(first, rounds=config.rounds, seed=seed, bag=config.bag)
        model = fit_quantile_model(train, rounds=config.rounds // 6, seed=seed, start=calibrator)
    offset, own, scores = 0.0, {}, {}
    if calibrator is not None and len(calibration):
        offset, own = conformal_offsets(calibrator, calibration, config.coverage)
        calibrated = replace(calibrator, band_offset=offset, target_offsets=own)
        s = _score(predict_quantiles(calibrated, calibration), calibration)
        scores = forecast_metrics(s["actual"], s["p10"], s["p50"], s["p90"], s["baseline"], 1.0)
    if model is None:
        model = fit_quantile_model(train, rounds=config.rounds, seed=seed, bag=config.bag)
    return TrainedModel(
        model=replace(model, band_offset=offset, target_offsets=own),
        name=f"{kind}/{pd.Timedelta(group.resolution).isoformat()}",
        target_kind=kind,
        resolution=group.resolution,
        trained_at=issue.issued_at,
        train_start=train["interval_start"].min(),
        train_end=rows["interval_start"].max(),
        calibration={
            **scores,
            "band_offset": offset,
            "train_days": float(len(days)),
            "train_rows": float(len(train)),
            "train_seconds": time.perf_counter() - started,
        },
    )


def _score(predicted: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """Predictions with the actual, the seasonal-naive baseline (value a week earlier) and the
    4-week same-slot mean, which build_features already holds."""
    scale = features["scale"].to_numpy()
    return predicted.assign(
        actual=features["y"].to_numpy() * scale,
        baseline=features["lag_7d"].to_numpy() * scale,
        same_slot=features["same_slot_p50"].to_numpy(),
        forecast_weather_share=features["forecast_weather_share"].to_numpy(),
    )


def _fallback(features: pd.DataFrame) -> pd.DataFrame:
    """The 4-week same-slot forecast, in the shape of the model's."""
    predicted = features[["target_id", "interval_start"]].reset_index(drop=True)
    for q in ("p10", "p50", "p90"):
        predicted[q] = features[f"same_slot_{q}"].to_numpy()
    return _score(predicted, features.reset_index(drop=True))


def _forecast_group(
    group: _Group, kind: str, issues: list[Issue], scored_only: bool, out: Forecasts
) -> list[pd.DataFrame]:
    """Forecasts for each issue, retrained every `retrain_days` (counted in issue days)."""
    frames, model, previous, verdicts, retrain_at = [], None, None, None, None
    for issue in issues:
        issue_day = issue.start.tz_convert(group.tz).date()
        if retrain_at is None or issue_day >= retrain_at:
            retrain_at = issue_day + timedelta(days=group.config.retrain_days)
            verdicts = data_verdicts(group.series, issue.issued_at, group.config, group.resolution)
            ok = list(verdicts.index[verdicts == "ok"])
            if group.train_targets is not None:
                ok = [t for t in ok if t in group.train_targets]
            model = _train(group, issue, kind, ok, previous) if ok else None
            if model:
                out.models.append(model)
                previous = model
            else:
                verdicts[:] = verdicts.where(verdicts != "ok", "insufficient_history")
        features = group.features(issue)
        verdict = features["target_id"].map(verdicts).fillna("insufficient_history")
        parts = []
        if model is not None and (verdict == "ok").any():
            modelled = features[(verdict == "ok").to_numpy()]
            predicted = _score(predict_quantiles(model.model, modelled), modelled)
            parts.append(predicted.assign(model_version=model.version, verdict="ok"))
        fallback = features[(verdict != "ok").to_numpy()]
        if len(fallback):
            named = verdict[verdict != "ok"].to_numpy()
            parts.append(_fallback(fallback).assign(model_version=FALLBACK, verdict=named))
        if not parts:
            continue  # no target has rows at this issue (history of a month before its data)
        scored = pd.concat(parts, ignore_index=True).dropna(subset=["p50"])
        if scored.empty or (scored_only and scored["actual"].isna().all()):
            continue  # nothing to forecast from, or past the end of the data: nothing to judge
        frames.append(scored.assign(issued_at=issue.issued_at))
    return frames


def _groups(series, config, timezones, weather, train_targets=None):
    """The targets grouped by resolution and timezone (a meter's own, else the platform's)."""
    known = series[series["value"].notna()]
    steps = resolution_of(known)
    zones = pd.Series({t: (timezones or {}).get(t) or config.tz for t in steps.index}, dtype=object)
    if weather is not None:
        weather = weather.sort_values("valid_at", ignore_index=True)
    for (step, tz), members in steps.groupby([steps, zones]):
        group_series = series[series["target_id"].isin(members.index)]
        yield _Group(group_series, config, step, tz, weather, train_targets)


def _forecast(series, kind, days, config, scored_only, timezones, weather) -> Forecasts:
    out = Forecasts(pd.DataFrame())
    if not days or series["value"].notna().sum() == 0:
        return out
    frames = []
    for group in _groups(series, config, timezones, weather):
        frames += _forecast_group(group, kind, group.issues(days), scored_only, out)
    if frames:
        out.rows = pd.concat(frames, ignore_index=True)
    return out


def backtest(
    series: pd.DataFrame,
    kind: str,
    days: list[date],
    config: ForecastConfig,
    weather: pd.DataFrame | None = None,
    timezones: dict[str, str] | None = None,
) -> Forecasts:
    """The product's forecasts for the windows starting on each of `days` (local dates,
    ascending), as if issued live, with per-target scores.

    `series` is long (target_id, interval_start UTC, value, optional tariff_flag) and should
    reach back to `config.history_needed(days[0])`; `weather` is long (see features);
    `timezones` gives a target's own zone (default `config.tz`). Targets are grouped by
    resolution and timezone, one global model per group, retrained every `retrain_days`.
    """
    out = _forecast(series, kind, days, config, True, timezones, weather)
    if not out.rows.empty:
        out.metrics = target_metrics(out.rows, series, out.rows["issued_at"].max())
    return out


def _weather_source(share: pd.Series) -> tuple[str, float | None]:
    """Where a target's weather came from: `forecast`, `observed`, `mixed` or `none`."""
    share = share.dropna()
    if share.empty:
        return "none", None
    mean = float(share.mean())
    return ("forecast" if mean == 1 else "observed" if mean == 0 else "mixed"), mean


def _wape(actual: pd.Series, predicted: pd.Series) -> float:
    total = float(np.abs(actual).sum())
    return float(np.abs(actual - predicted).sum()) / total if total else np.nan


def target_metrics(rows: pd.DataFrame, series: pd.DataFrame, before: pd.Timestamp) -> pd.DataFrame:
    """Scores per target. MASE is scaled by the target's seasonal-naive MAE over the data before
    `before` (the last issue): a yardstick for the score, never a forecast input."""
    scale = naive_mae(series, before)
    records = []
    for target, r in rows.groupby("target_id"):
        m = forecast_metrics(
            r["actual"], r["p10"], r["p50"], r["p90"], r["baseline"], scale.get(target, np.nan)
        )
        same = r.dropna(subset=["actual", "same_slot"])
        source, share = _weather_source(r["forecast_weather_share"])
        verdicts = r["verdict"].value_counts()
        records.append(
            {
                "target_id": target,
                "intervals": int(m.pop("n")),
                **m,
                "same_slot_wape": _wape(same["actual"], same["same_slot"]),
                "verdict": ", ".join(sorted(verdicts.index)),
                "weather_source": source,
                "weather_forecast_share": share,
            }
        )
    return pd.DataFrame.from_records(records).reindex(columns=["target_id", *METRIC_COLUMNS])


def live_forecast(
    series: pd.DataFrame,
    kind: str,
    config: ForecastConfig,
    weather: pd.DataFrame | None = None,
    timezones: dict[str, str] | None = None,
    train_targets: set[str] | None = None,
) -> Forecasts:
    """Each group's forecast for the product's next window after its latest reading, by a
    model trained on everything before the issue: of `train_targets` only, when given (the
    others' series need reach back only to `config.recent_needed`)."""
    out = Forecasts(pd.DataFrame())
    known = series[series["value"].notna()]
    if known.empty:
        return out
    frames = []
    for group in _groups(series, config, timezones, weather, train_targets):
        latest = group.series.dropna(subset=["value"])["interval_start"].max()
        issue = config.product.next_after(latest, group.resolution, group.tz)
        frames += _forecast_group(group, kind, [issue], False, out)
    if frames:
        out.rows = pd.concat(frames, ignore_index=True)
    return out


def bottom_up(rows: pd.DataFrame, target_id: str) -> pd.DataFrame:
    """The sum of many targets' forecasts (rows of one kind and issue, as `Forecasts.rows`),
    reconciled so the P50 keeps the mean: each member's mean is estimated from its quantiles
    (0.3 P10 + 0.4 P50 + 0.3 P90, Swanson's rule), since member P50s of skewed loads such as
    households sum to well below the total's mean; the band spreads each member's P10-P90 width
    as if independent, so it is a lower bound of the total's."""
    z = 2 * 1.2816  # P10-P90 of a normal distribution, in standard deviations
    members = rows.assign(
        mean=0.3 * rows["p10"] + 0.4 * rows["p50"] + 0.3 * rows["p90"],
        var=((rows["p90"] - rows["p10"]) / z) ** 2,
    )
    total = members.groupby(["issued_at", "interval_start"], as_index=False).agg(
        p50=("mean", "sum"),
        var=("var", "sum"),
        actual=("actual", lambda a: a.sum(min_count=len(a))),
        baseline=("baseline", "sum"),
        same_slot=("same_slot", "sum"),
    )
    spread = 1.2816 * np.sqrt(total.pop("var"))
    return total.assign(target_id=target_id, p10=total["p50"] - spread, p90=total["p50"] + spread)


def kind_summary(result: Forecasts) -> dict:
    """Pooled scores of one kind: WAPE of model, baseline and 4-week mean, coverage, verdicts."""
    if result.rows.empty:
        return {}
    rows = result.rows.dropna(subset=["actual", "p10", "p50", "p90", "baseline"])
    if rows.empty:
        return {}
    m = forecast_metrics(
        rows["actual"], rows["p10"], rows["p50"], rows["p90"], rows["baseline"], 1.0
    )
    counts = result.metrics["verdict"].value_counts() if len(result.metrics) else pd.Series()
    verdicts = {str(k): int(v) for k, v in counts.items()}
    return {
        "targets": int(rows["target_id"].nunique()),
        **{k: round(m[k], 4) for k in ("wape", "baseline_wape", "coverage_p10_p90")},
        "verdicts": verdicts,
    }
