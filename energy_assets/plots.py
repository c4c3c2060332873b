"""Pictures people look at: load profiles with gaps shaded, heat maps, hourly patterns.

Pure functions from data frames to PNG files. They draw on a bare Agg `Figure` (no pyplot), so
no global backend or figure state is touched in headless, multi-threaded runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

LOAD_COLOUR = "#1f77b4"
GAP_COLOUR = "#d62728"
DAY_TYPE_COLOURS = {"weekday": "#1f77b4", "weekend": "#ff7f0e"}
DPI = 120


def _figure(width: float = 11, height: float = 4.5) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def load_profile(
    load: pd.Series, gaps: list[tuple[pd.Timestamp, pd.Timestamp]], title: str, path: Path,
    unit: str = "MW",
) -> Path:  # fmt: skip
    """Net load over time (UTC) with the intervals that miss data shaded."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(load.index, load.to_numpy(), color=LOAD_COLOUR, linewidth=0.8, label="Net load")
    for start, end in gaps:
        ax.axvspan(start, end, color=GAP_COLOUR, alpha=0.25, linewidth=0)
    if gaps:
        ax.axvspan(gaps[0][0], gaps[0][0], color=GAP_COLOUR, alpha=0.25, label="Missing data")
    ax.set(title=title, xlabel="Time (UTC)", ylabel=f"Net load ({unit})")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    fig.autofmt_xdate()
    return _save(fig, path)


def load_heatmap(load: pd.Series, title: str, path: Path, unit: str = "MW") -> Path:
    """Day (rows) x time of day (columns) heat map of a month's load; gaps stay blank."""
    frame = load.to_frame("load")
    frame["day"] = frame.index.normalize()
    frame["slot"] = frame.index.hour * 60 + frame.index.minute
    grid = frame.pivot_table(index="day", columns="slot", values="load", aggfunc="mean")
    fig = _figure(11, 6)
    ax = fig.add_subplot()
    values = grid.to_numpy(dtype=float)
    low, high = np.nanmin(values), np.nanmax(values)
    norm = TwoSlopeNorm(vcenter=0, vmin=min(low, -1e-9), vmax=max(high, 1e-9)) if low < 0 else None
    image = ax.imshow(
        np.ma.masked_invalid(values), aspect="auto", interpolation="nearest",
        cmap="RdBu_r" if norm else "viridis", norm=norm,
        extent=(0, 24, len(grid), 0),
    )  # fmt: skip
    ax.set_yticks(np.arange(len(grid)) + 0.5, [f"{d:%d %a}" for d in grid.index], fontsize=7)
    ax.set_xticks(range(0, 25, 3))
    ax.set(title=title, xlabel="Time of day (UTC)", ylabel="Day")
    fig.colorbar(image, ax=ax, label=f"Load ({unit})")
    return _save(fig, path)


def hourly_patterns(patterns: Iterable[tuple[pd.DataFrame, str, Path]]) -> list[Path]:
    """Mean demand by hour of day, one line per day type, for each (profile, title, path)
    (profile columns hour, day_type, mean_kw).

    The figure and its layout are built once; only lines, title and y scale change per picture,
    which halves the time per picture.
    """
    fig = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.12, top=0.92)
    ax = fig.add_subplot()
    lines = {
        day_type: ax.plot([], [], marker="o", markersize=3, color=colour,
                          label=day_type.capitalize())[0]
        for day_type, colour in DAY_TYPE_COLOURS.items()
    }  # fmt: skip
    ax.set(xlabel="Hour of day (local)", ylabel="Mean demand (kW)", xlim=(0, 23))
    ax.set_xticks(range(0, 24, 3))
    ax.grid(alpha=0.3)
    ax.legend()
    paths = []
    for profile, title, path in patterns:
        for day_type, line in lines.items():
            rows = profile[profile["day_type"] == day_type].sort_values("hour")
            line.set_data(rows["hour"].to_numpy(), rows["mean_kw"].to_numpy())
        ax.set_title(title)
        top = profile["mean_kw"].max()
        ax.set_ylim(0, top * 1.05 if top > 0 else 1)  # NaN (no data) compares False
        paths.append(_save(fig, path))
    return paths


def largest_customers(profiles: pd.DataFrame, count: int) -> list[str]:
    """The `count` customers with the highest mean demand over the hours of the month's
    profile (columns customer_id, mean_kw), largest first, ties by name."""
    level = profiles.groupby("customer_id")["mean_kw"].mean().fillna(0).reset_index()
    level = level.sort_values(["mean_kw", "customer_id"], ascending=[False, True])
    return level["customer_id"].head(max(count, 0)).tolist()


def customer_overview(profiles: pd.DataFrame, title: str, path: Path) -> Path:
    """Every customer of a month in one picture: a row per customer, weekday and weekend panels
    of mean demand by hour as a share of the customer's own peak, sorted by weekday peak hour.

    Shows the shapes of thousands of households at once, where one picture each would not
    scale (columns customer_id, day_type, hour, mean_kw).
    """
    grid = profiles.pivot_table(index="customer_id", columns=["day_type", "hour"],
                                values="mean_kw", aggfunc="mean")  # fmt: skip
    grid = grid.reindex(columns=pd.MultiIndex.from_product([list(DAY_TYPE_COLOURS), range(24)]))
    peak = grid.max(axis=1)
    share = grid.div(peak.where(peak > 0), axis=0)
    weekday = share["weekday"].fillna(-1).to_numpy()
    order = np.lexsort((share.index.to_numpy(dtype=str), weekday.argmax(axis=1)))
    share = share.iloc[order]
    fig = _figure(11, 6)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, day_type in zip(axes, DAY_TYPE_COLOURS, strict=True):
        image = ax.imshow(np.ma.masked_invalid(share[day_type].to_numpy(dtype=float)),
                          aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=1,
                          extent=(0, 24, len(share), 0))  # fmt: skip
        ax.set(title=day_type.capitalize(), xlabel="Hour of day (local)", xticks=range(0, 25, 3))
    axes[0].set_ylabel(f"{len(share):,} customers, by weekday peak hour")
    if len(share) <= 40:
        axes[0].set_yticks(np.arange(len(share)) + 0.5, share.index, fontsize=7)
    else:
        axes[0].set_yticks([])
    fig.suptitle(title)
    fig.colorbar(image, ax=axes, label="Share of the customer's peak hour")
    return _save(fig, path)


def forecast_band(rows: pd.DataFrame, title: str, path: Path, unit: str) -> Path:
    """Actual load against the P50 forecast and its P10-P90 band (columns interval_start,
    actual, p10, p50, p90; local or UTC times as given)."""
    rows = rows.sort_values("interval_start")
    times = rows["interval_start"]
    fig = _figure()
    ax = fig.add_subplot()
    ax.fill_between(times, rows["p10"], rows["p90"], color=LOAD_COLOUR, alpha=0.2, linewidth=0,
                    label="P10-P90")  # fmt: skip
    ax.plot(times, rows["p50"], color=LOAD_COLOUR, linewidth=1, label="Forecast (P50)")
    ax.plot(times, rows["actual"], color="black", linewidth=0.8, label="Actual")
    ax.set(title=title, xlabel="Time", ylabel=f"Load ({unit})")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    fig.autofmt_xdate()
    return _save(fig, path)
