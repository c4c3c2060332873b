"""Pictures people look at: load profiles with gaps shaded, heat maps, hourly patterns.

Pure functions from data frames to PNG files. They draw on a bare Agg `Figure` (no pyplot), so
no global backend or figure state is touched in headless, multi-threaded runs.
"""

from __future__ import annotations

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


def hourly_pattern(profile: pd.DataFrame, title: str, path: Path) -> Path:
    """Mean demand by hour of day, one line per day type (columns hour, day_type, mean_kw)."""
    fig = _figure(8, 4.5)
    ax = fig.add_subplot()
    for day_type, rows in profile.sort_values("hour").groupby("day_type"):
        ax.plot(rows["hour"], rows["mean_kw"], marker="o", markersize=3,
                color=DAY_TYPE_COLOURS.get(day_type), label=day_type.capitalize())  # fmt: skip
    ax.set(title=title, xlabel="Hour of day (local)", ylabel="Mean demand (kW)", xlim=(0, 23))
    ax.set_xticks(range(0, 24, 3))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)
