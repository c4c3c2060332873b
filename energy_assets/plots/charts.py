"""Every picture people look at: load profiles with gaps shaded, heat maps, hourly patterns,
segment shapes, forecast bands and the anomalies on the load curve.

Pure functions from data frames to PNG files. They draw on a bare Agg `Figure` (no pyplot), so
no global backend or figure state is touched in headless, multi-threaded runs.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

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
    load: pd.Series,
    gaps: list[tuple[pd.Timestamp, pd.Timestamp]],
    title: str,
    path: Path,
    unit: str = "MW",
) -> Path:
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
        np.ma.masked_invalid(values),
        aspect="auto",
        interpolation="nearest",
        cmap="RdBu_r" if norm else "viridis",
        norm=norm,
        extent=(0, 24, len(grid), 0),
    )
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
        day_type: ax.plot(
            [], [], marker="o", markersize=3, color=colour, label=day_type.capitalize()
        )[0]
        for day_type, colour in DAY_TYPE_COLOURS.items()
    }
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
    grid = profiles.pivot_table(
        index="customer_id", columns=["day_type", "hour"], values="mean_kw", aggfunc="mean"
    )
    grid = grid.reindex(columns=pd.MultiIndex.from_product([list(DAY_TYPE_COLOURS), range(24)]))
    peak = grid.max(axis=1)
    share = grid.div(peak.where(peak > 0), axis=0)
    weekday = share["weekday"].fillna(-1).to_numpy()
    order = np.lexsort((share.index.to_numpy(dtype=str), weekday.argmax(axis=1)))
    share = share.iloc[order]
    fig = _figure(11, 6)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, day_type in zip(axes, DAY_TYPE_COLOURS, strict=True):
        image = ax.imshow(
            np.ma.masked_invalid(share[day_type].to_numpy(dtype=float)),
            aspect="auto",
            interpolation="nearest",
            cmap="viridis",
            vmin=0,
            vmax=1,
            extent=(0, 24, len(share), 0),
        )
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
    ax.fill_between(
        times, rows["p10"], rows["p90"], color=LOAD_COLOUR, alpha=0.2, linewidth=0, label="P10-P90"
    )
    ax.plot(times, rows["p50"], color=LOAD_COLOUR, linewidth=1, label="Forecast (P50)")
    ax.plot(times, rows["actual"], color="black", linewidth=0.8, label="Actual")
    ax.set(title=title, xlabel="Time", ylabel=f"Load ({unit})")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    fig.autofmt_xdate()
    return _save(fig, path)


def plot_last_week(
    rows: pd.DataFrame, title: str, folder: Path, name: str, tz: str, unit: str
) -> list[Path]:
    """Forecast vs actual with the P10-P90 band over the last week of forecasts, per target
    (`rows` as in ml.forecasts, with target_id and issued_at); one picture per target."""
    last_week = rows[rows["issued_at"] > rows["issued_at"].max() - pd.Timedelta(days=7)]
    paths = []
    for target, r in last_week.groupby("target_id"):
        local = r.assign(interval_start=r["interval_start"].dt.tz_convert(tz))
        path = folder / f"{name}-{file_name(str(target))}.png"
        paths.append(forecast_band(local, title.format(target=target), path, unit))
    return paths


def plot_centroids(centroids: pd.DataFrame, sizes: pd.Series, path: Path, title: str) -> Path:
    """Save a PNG of the segment centroid shapes (segment x slot of the day) over the hour of
    day, each labelled with its number of customers (`sizes`, by segment); returns `path`."""
    slots = centroids.shape[1]
    hours = np.arange(slots + 1) * 24 / slots  # slot edges; last value repeated to close at 24h
    colours = colormaps["tab10"]

    fig = _figure(9, 5)
    ax = fig.add_subplot()
    for segment, shape in centroids.iterrows():
        values = np.append(shape.to_numpy(), shape.iloc[-1])
        ax.plot(
            hours,
            values,
            drawstyle="steps-post",
            color=colours(int(segment) % 10),
            linewidth=2,
            label=f"Segment {segment} (n={sizes.get(segment, 0)})",
        )
    ax.set(
        xlim=(0, 24),
        xticks=range(0, 25, 3),
        xlabel="Hour of day",
        ylabel="Share of daily energy",
        title=title,
    )
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=1))
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return _save(fig, Path(path))


def finding_spans(found: pd.DataFrame, tz: str) -> list[tuple[pd.Timestamp, pd.Timestamp, str]]:
    """(start, end, kind) of each finding on the time axis; a day finding spans its local day."""
    spans = []
    for row in found.itertuples(index=False):
        if pd.notna(row.interval_start):
            spans.append((row.interval_start, row.interval_end, row.kind))
        else:
            day = pd.Timestamp(str(row.day)).tz_localize(tz).tz_convert("UTC")
            spans.append((day, day + pd.Timedelta(days=1), row.kind))
    return spans


def plot_anomalies(load: pd.Series, spans: list, title: str, path: Path, unit: str) -> Path:
    """The load curve with each finding shaded in its kind's colour (legend: kind and count)."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(load.index, load.to_numpy(), color=LOAD_COLOUR, linewidth=0.8, label="Net load")
    kinds = sorted({kind for _, _, kind in spans})
    colours = {kind: f"C{i + 1}" for i, kind in enumerate(kinds)}  # C0 is the load curve
    for kind in kinds:
        mine = [(a, b) for a, b, k in spans if k == kind]
        for a, b in mine:
            ax.axvspan(
                a, max(b, a + pd.Timedelta(minutes=30)), color=colours[kind], alpha=0.3, linewidth=0
            )
        ax.axvspan(
            mine[0][0], mine[0][0], color=colours[kind], alpha=0.3, label=f"{kind} ({len(mine)})"
        )
    ax.set(title=title, xlabel="Time (UTC)", ylabel=f"Net load ({unit})")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.autofmt_xdate()
    return _save(fig, path)


def render_anomaly_plots(
    found: pd.DataFrame,
    loads: dict[str, pd.DataFrame],
    meter_feeders: dict,
    month: date,
    folder: Path,
    tz: str,
) -> list[Path]:
    """Per feeder (its own findings and its meters') and for the system; without feeders, the
    total of all meters. The system picture is last."""
    feeders, meters = loads["feeders"], loads["meters"]
    paths = []
    for feeder, rows in feeders.groupby("target_id"):
        mine = found[
            ((found["target_kind"] == "feeder") & (found["target_id"] == feeder))
            | found["target_id"].map(meter_feeders).eq(feeder)
        ]
        load = pd.Series(rows["value"].to_numpy() / 1000, index=rows["interval_start"])
        paths.append(
            plot_anomalies(
                load,
                finding_spans(mine, tz),
                f"Feeder {feeder}, anomalies, {month:%B %Y}",
                folder / f"{file_name(str(feeder))}.png",
                "MW",
            )
        )
    source, unit, title = (
        (feeders, "MW", "System") if not feeders.empty else (meters, "kW", "All meters")
    )
    total = source.groupby("interval_start")["value"].sum(min_count=1)
    if unit == "MW":
        total = total / 1000
    paths.append(
        plot_anomalies(
            total.sort_index(),
            finding_spans(found, tz),
            f"{title}, anomalies, {month:%B %Y}",
            folder / "all.png",
            unit,
        )
    )
    return paths


def file_name(name: str) -> str:
    """A feeder or customer name made safe as a file name."""
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "unnamed"


def incomplete_runs(times: pd.Series, incomplete: pd.Series) -> list[tuple]:
    """(start, end) of each run of consecutive intervals that miss a meter's reading."""
    if not incomplete.any():
        return []
    step = times.diff().min() if len(times) > 1 else pd.Timedelta(minutes=15)
    flagged = times[incomplete.to_numpy()]
    run = (flagged.diff() != step).cumsum()
    return [(g.iloc[0], g.iloc[-1] + step) for _, g in flagged.groupby(run.to_numpy())]


def render_load_profiles(feeders: pd.DataFrame, month: date, folder: Path) -> list[Path]:
    """One profile per feeder, the system total (all.png) and the system heat map."""
    paths = []
    for feeder, rows in feeders.groupby("feeder"):
        times = rows["interval_start"].reset_index(drop=True)
        gaps = incomplete_runs(times, rows["meters_reporting"] < rows["meters_expected"])
        paths.append(
            load_profile(
                pd.Series(rows["mw_net"].to_numpy(), index=times),
                gaps,
                f"Feeder {feeder}, {month:%B %Y}",
                folder / f"{file_name(str(feeder))}.png",
            )
        )
    feeders = feeders.assign(short=feeders["meters_reporting"] < feeders["meters_expected"])
    system = feeders.groupby("interval_start").agg(mw=("mw_net", "sum"), short=("short", "any"))
    times = system.index.to_series().reset_index(drop=True)
    paths.append(
        load_profile(
            system["mw"],
            incomplete_runs(times, system["short"]),
            f"System total, {month:%B %Y}",
            folder / "all.png",
        )
    )
    paths.append(load_heatmap(system["mw"], f"System load, {month:%B %Y}", folder / "heatmap.png"))
    return paths


def render_meters_total(total: pd.DataFrame, month: date, folder: Path) -> list[Path]:
    """The load profile and heat map of the meters on no feeder added up (columns
    interval_start, kw, incomplete): households get the pictures feeders get."""
    times = total["interval_start"].reset_index(drop=True)
    load = pd.Series(total["kw"].to_numpy(), index=times)
    title = f"Meters on no feeder, added up, {month:%B %Y}"
    return [
        load_profile(
            load,
            incomplete_runs(times, total["incomplete"]),
            title,
            folder / "meters-total.png",
            unit="kW",
        ),
        load_heatmap(load, title, folder / "meters-total-heatmap.png", unit="kW"),
    ]


def customer_folder(home: Path, month: date) -> Path:
    return home / "plots" / "customers" / f"{month:%Y-%m}"


def draw_customers(
    profiles: pd.DataFrame, customers: list[str], month: date, folder: Path
) -> list[Path]:
    """One hourly-pattern picture per named customer of `profiles` (one month's rows)."""
    chosen = profiles[profiles["customer_id"].isin(customers)]
    by_customer = dict(tuple(chosen.groupby("customer_id")))
    return hourly_patterns(
        (
            by_customer[name],
            f"Customer {name}, {month:%B %Y}",
            folder / f"{file_name(str(name))}.png",
        )
        for name in customers
        if name in by_customer
    )


def inline_png(path: Path, alt: str) -> str:
    """A PNG inlined in markdown, so the UI's metadata panel shows the picture itself."""
    data = base64.b64encode(path.read_bytes()).decode()
    return f"![{alt}](data:image/png;base64,{data})"
