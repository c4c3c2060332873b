"""Quantile models for day-ahead forecasts, their calibration, and the scores that judge them.

One global XGBoost model serves all targets of a resolution (see `features` for what it sees);
its P10-P90 band is widened or narrowed by split-conformal calibration on rows it never saw.

Pure functions, data frames in and out: no database, no Dagster.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from energy_assets.forecasts.features import (
    BASE_FEATURES,
    DAY_WEATHER,
    OWN_FIT,
    SUN,
    WEEK,
    indexed_values,
    weather_columns,
)

if TYPE_CHECKING:  # imported where a model is trained or used: every process loads this module
    import xgboost as xgb

QUANTILES = (0.1, 0.5, 0.9)
MIN_TARGET_ROWS = 48  # calibration rows a target needs for a band offset of its own
SHRINK = 48  # the pooled offset's weight, in rows, in a target's own
# A target's own offset stays within one band width of the pooled one: a meter near zero all
# week and then busy would otherwise get a band of thousands of its levels.
MAX_OWN = 1.0
MIN_WIDTH = 0.05  # the narrowest raw band (in units of the scale) the widening scales with
PEAK_MARGIN = 1.5
MODEL_PARAMS = {
    "objective": "reg:quantileerror",
    "tree_method": "hist",
    "learning_rate": 0.05,
    "max_depth": 6,
    "min_child_weight": 5,
    "subsample": 0.8,
    # Each tree from half the features: the bag's boosters differ by more than their seeds. On
    # the benchmark's grid connections, better than every feature on 4 of 6 rows and ahead of
    # OpenSTEF on all 6 (every feature: 3 of 6).
    "colsample_bytree": 0.5,
    "nthread": 1,
}


@dataclass(frozen=True)
class QuantileModel:
    """The booster, the feature order and quantiles it was trained with, and the widening of
    the outer quantiles (in widths of the raw P10-P90 band) that calibration found: per target
    where it had rows of that target, else pooled."""

    booster: xgb.Booster
    features: list[str]
    quantiles: tuple[float, ...]
    band_offset: float = 0.0
    target_offsets: dict = field(default_factory=dict)

    def offsets(self, targets: pd.Series) -> np.ndarray:
        return targets.map(self.target_offsets).fillna(self.band_offset).to_numpy(dtype=float)


def model_features(train: pd.DataFrame) -> list[str]:
    """The features a model learns from: the base set, and the tariff flag, the weather, the
    sun and the target's own fit where the training rows carry them."""
    optional = [c for c in ("tariff_flag", *DAY_WEATHER, *SUN, *OWN_FIT) if c in train.columns]
    return BASE_FEATURES + optional + weather_columns(train)


def fit_quantile_model(
    train: pd.DataFrame,
    quantiles: tuple[float, ...] = QUANTILES,
    rounds: int = 300,
    seed: int = 0,
    start: QuantileModel | None = None,
    bag: int = 1,
) -> QuantileModel:
    """One global multi-quantile XGBoost model on the normalised target `y`: the mean of `bag`
    boosters trained with seeds `seed`, `seed + 1`, ..., stored as one booster (`bagged`); or,
    from `start` (its features and trees) when given, `rounds` more on `train` (one seed).

    Each booster sees its own subsample of rows at every round: on the few months a target
    usually has, one booster's forecasts move by about 1% of WAPE from one seed to the next,
    and their mean is steadier (better than seed 0 alone on 7 of 8 real-series rows measured).

    nthread=1: on the shared 2-core machines two OpenMP threads busy-wait and run 4x slower.
    The bag's boosters train side by side instead, one thread each and all at once (XGBoost
    releases the GIL while it trains): three on two cores take 1.5 boosters' time, not the two
    of a pool of two, whose third booster trains alone on one core. The result is the same,
    as each booster has its own seed and thread. Each has its own DMatrix, as training caches
    its histogram index there.
    """
    import xgboost as xgb

    features = start.features if start is not None else model_features(train)
    train = train[train["y"].notna()]
    x, label = train[features].astype(float), train["y"].to_numpy()
    params = {**MODEL_PARAMS, "quantile_alpha": np.array(quantiles)}
    if start is not None:
        booster = xgb.train(
            {**params, "seed": seed},
            xgb.DMatrix(x, label=label),
            num_boost_round=rounds,
            xgb_model=start.booster.copy(),
        )
        return QuantileModel(booster, features, tuple(quantiles))

    def member(k: int) -> xgb.Booster:
        dtrain = xgb.DMatrix(x, label=label)
        return xgb.train({**params, "seed": seed + k}, dtrain, num_boost_round=rounds)

    with ThreadPoolExecutor(max_workers=bag) as pool:
        boosters = list(pool.map(member, range(bag)))
    booster = bagged(boosters) if bag > 1 else boosters[0]
    return QuantileModel(booster, features, tuple(quantiles))


def bagged(boosters: list[xgb.Booster]) -> xgb.Booster:
    """One booster that predicts the mean of `boosters` (trained on the same features with the
    same objective and base score): their trees side by side, every leaf divided by their
    number. One booster keeps ml.models, the store and the dashboard as they are."""
    import xgboost as xgb

    models = [json.loads(bytes(b.save_raw("json"))) for b in boosters]
    merged = models[0]
    trees, info, steps = [], [], []
    for model in models:
        gbtree = model["learner"]["gradient_booster"]["model"]
        for tree in gbtree["trees"]:
            leaf = np.asarray(tree["left_children"]) == -1
            values = np.asarray(tree["split_conditions"], dtype=float)
            values[leaf] /= len(models)
            tree["split_conditions"] = values.tolist()
            tree["base_weights"] = (np.asarray(tree["base_weights"]) / len(models)).tolist()
            tree["id"] = len(trees)
            trees.append(tree)
        info += gbtree["tree_info"]
        steps += np.diff(gbtree["iteration_indptr"]).tolist()
    gbtree = merged["learner"]["gradient_booster"]["model"]
    gbtree["trees"], gbtree["tree_info"] = trees, info
    gbtree["iteration_indptr"] = np.r_[0, np.cumsum(steps)].astype(int).tolist()
    gbtree["gbtree_model_param"]["num_trees"] = str(len(trees))
    out = xgb.Booster()
    out.load_model(bytearray(json.dumps(merged).encode()))
    return out


def _normalised(model: QuantileModel, features: pd.DataFrame) -> np.ndarray:
    """Raw quantile predictions in units of the target's scale, before widening."""
    import xgboost as xgb

    x = features.reindex(columns=model.features).astype(float)
    return model.booster.predict(xgb.DMatrix(x)).reshape(len(x), len(model.quantiles))


def _width(raw: np.ndarray) -> np.ndarray:
    """The raw P10-P90 band's width, at least MIN_WIDTH: the unit of the band's widening."""
    return np.maximum(raw[:, -1] - raw[:, 0], MIN_WIDTH)


def _conformal(scores: np.ndarray, coverage: float) -> float:
    level = min(1.0, coverage * (1 + 1 / len(scores)))
    return float(np.quantile(scores, level))


def conformal_offsets(
    model: QuantileModel, calibration: pd.DataFrame, coverage: float
) -> tuple[float, dict]:
    """Split-conformal widening of the outer quantiles (CQR, Romano et al. 2019), pooled and
    per target.

    The score max(p_lo - y, y - p_hi) on rows the model never saw, in widths of the raw band
    (normalised CQR: where the model expects a wide band, as on a windy day, the widening is
    wider too); its finite-sample corrected `coverage` quantile, added to both ends in the
    row's own widths, makes the band cover about `coverage` of new rows. Negative when the raw
    band is too wide. Targets differ (a steady feeder, a wind-driven one), so each target with
    a day of rows gets its own, drawn towards the pooled one by SHRINK rows' weight and kept
    within MAX_OWN of it.
    """
    rows = calibration[calibration["y"].notna()]
    if rows.empty:
        return 0.0, {}
    raw = _normalised(model, rows)
    y = rows["y"].to_numpy(dtype=float)
    scores = pd.Series(np.maximum(raw[:, 0] - y, y - raw[:, -1]) / _width(raw))
    pooled = _conformal(scores.to_numpy(), coverage)
    own = {}
    for target, s in scores.groupby(rows["target_id"].to_numpy()):
        if len(s) >= MIN_TARGET_ROWS:
            shrunk = (len(s) * _conformal(s.to_numpy(), coverage) + SHRINK * pooled) / (
                len(s) + SHRINK
            )
            own[target] = float(np.clip(shrunk, pooled - MAX_OWN, pooled + MAX_OWN))
    return pooled, own


def predict_quantiles(model: QuantileModel, features: pd.DataFrame) -> pd.DataFrame:
    """Quantiles in original units (x scale), the outer ones widened by the model's calibrated
    offset (in widths of the row's raw band), sorted per row so they never cross."""
    raw = _normalised(model, features)
    offsets = model.offsets(features["target_id"]) * _width(raw)
    raw[:, 0] -= offsets
    raw[:, -1] += offsets
    # Never beyond PEAK_MARGIN times the largest |value| of the last four weeks: a meter near
    # zero for a week and then busy has huge lags in units of its level, and trees extrapolate.
    bound = PEAK_MARGIN * features["peak"].to_numpy()[:, None]
    raw = np.where(np.isnan(bound), raw, np.clip(raw, -bound, bound))
    values = np.sort(raw, axis=1) * features["scale"].to_numpy()[:, None]
    out = features[["target_id", "interval_start"]].reset_index(drop=True)
    for q, column in zip(model.quantiles, values.T, strict=True):
        out[f"p{round(q * 100)}"] = column
    return out


def naive_mae(series: pd.DataFrame, before: pd.Timestamp) -> pd.Series:
    """Per-target in-sample MAE of the seasonal-naive forecast before `before`: the MASE scale."""
    past = indexed_values(series[series["interval_start"] < before])
    shifted = past.copy()
    shifted.index = shifted.index.set_levels(shifted.index.levels[1] + WEEK, level=1)
    return (past - shifted).abs().groupby(level="target_id").mean()


def forecast_metrics(actual, p10, p50, p90, baseline, mase_scale) -> dict[str, float]:
    """Point and probabilistic scores of the model and of the baseline on the same rows.

    `mase_scale` is a scalar or per-row array (e.g. naive_mae mapped to each row's target), so
    MASE averages scale-free errors across targets of very different size. Rows with any
    missing input are dropped so model and baseline are judged on exactly the same intervals.
    """
    cols = [actual, p10, p50, p90, baseline, np.broadcast_to(mase_scale, np.shape(actual))]
    y, lo, mid, hi, base, scale = (np.asarray(c, dtype=float) for c in cols)
    keep = ~np.isnan(np.vstack([y, lo, mid, hi, base, scale])).any(axis=0)
    y, lo, mid, hi, base, scale = (a[keep] for a in (y, lo, mid, hi, base, scale))

    def pinball(pred: np.ndarray, q: float) -> float:
        diff = y - pred
        return float(np.mean(np.maximum(q * diff, (q - 1) * diff)))

    out: dict[str, float] = {"n": float(len(y))}
    for prefix, point in (("", mid), ("baseline_", base)):
        err = y - point
        out[f"{prefix}mae"] = float(np.mean(np.abs(err)))
        out[f"{prefix}rmse"] = float(np.sqrt(np.mean(err**2)))
        out[f"{prefix}wape"] = float(np.sum(np.abs(err)) / np.sum(np.abs(y)))
        out[f"{prefix}mase"] = float(np.mean(np.abs(err) / scale))
    out["pinball"] = float(np.mean([pinball(p, q) for p, q in ((lo, 0.1), (mid, 0.5), (hi, 0.9))]))
    out["baseline_pinball"] = pinball(base, 0.5)
    out["coverage_p10_p90"] = float(np.mean((y >= lo) & (y <= hi)))
    return out


def target_scores(rows: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """Per model version and target, the model's scores on that target's forecasts with an
    actual: intervals, MSE, R² (1 - SSE / the actual's own variance) and WAPE."""
    known = rows.dropna(subset=["actual", "p50"])
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for (version, target), r in known.groupby(["model_version", "target_id"]):
        err = r["actual"] - r["p50"]
        spread = ((r["actual"] - r["actual"].mean()) ** 2).sum()
        total = r["actual"].abs().sum()
        scores.setdefault(version, {})[str(target)] = {
            "intervals": int(len(r)),
            "mse": float((err**2).mean()),
            "r2": float(1 - (err**2).sum() / spread) if spread > 0 else None,
            "wape": float(err.abs().sum() / total) if total > 0 else None,
        }
    return scores
