"""The dashboard's interactive charts: plain functions from the frames `queries` returns to
Plotly figures, no Streamlit, no database.

Every time axis is UTC like the marts; every chart says what it shows in its title and units on
its axes, and intervals that miss data (or were estimated) are shaded the same way everywhere.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from energy_assets.dashboard import LOAD_BLUE

LOAD = LOAD_BLUE
ACTUAL = "#111111"
MISSING = "#d62728"
ESTIMATED = "#ff7f0e"
FINDING = "#9467bd"
DAY_TYPES = {"weekday": "#1f77b4", "weekend": "#ff7f0e"}
TIME_AXIS = "Time (UTC)"
MISSING_LABEL = "Missing data"
ESTIMATED_LABEL = "Estimated"
BAND_LABEL = "Forecast P10-P90"


def _layout(fig: go.Figure, title: str, y_title: str, x_title: str = TIME_AXIS) -> go.Figure:
    fig.update_layout(
        title=title,
        height=380,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
        hovermode="x unified",
        bargap=0,
    )
    fig.update_xaxes(title=x_title)
    fig.update_yaxes(title=y_title)
    return fig


def interval_step(times: pd.Series) -> pd.Timedelta:
    steps = times.diff().dropna()
    return steps.min() if len(steps) else pd.Timedelta(minutes=15)


def _shade_intervals(fig: go.Figure, frame: pd.DataFrame, low: float, high: float) -> None:
    """A translucent bar over every interval that misses data or was estimated."""
    step = interval_step(frame["interval_start"])
    for flagged, name, colour in (
        (~frame["complete"], MISSING_LABEL, MISSING),
        (frame["estimated"], ESTIMATED_LABEL, ESTIMATED),
    ):
        if not flagged.any():
            continue
        times = frame.loc[flagged, "interval_start"] + step / 2
        fig.add_bar(
            x=times,
            y=np.full(len(times), high - low),
            base=low,
            width=step.total_seconds() * 1000,
            marker={"color": colour, "line": {"width": 0}},
            opacity=0.25,
            name=name,
            hoverinfo="skip",
        )


def _range(*series: pd.Series) -> tuple[float, float]:
    values = pd.concat([s.astype(float) for s in series]).dropna()
    if values.empty:
        return 0.0, 1.0
    low, high = min(values.min(), 0.0), values.max()
    return low, high if high > low else low + 1.0


def load_chart(
    frame: pd.DataFrame, title: str, unit: str, forecast: pd.DataFrame | None = None
) -> go.Figure:
    """Load over time with missing and estimated intervals shaded, and a forecast's P10-P90
    band and median after it when given (columns interval_start, p10, p50, p90)."""
    fig = go.Figure()
    extra = [] if forecast is None or forecast.empty else [forecast["p10"], forecast["p90"]]
    low, high = _range(frame["value"], *extra)
    _shade_intervals(fig, frame, low, high)
    if extra:
        _band(fig, forecast)
    fig.add_scatter(
        x=frame["interval_start"], y=frame["value"], name="Load", line={"color": LOAD, "width": 1.5}
    )
    return _layout(fig, title, f"Load ({unit})")


def _band(fig: go.Figure, forecast: pd.DataFrame, legend: str = BAND_LABEL) -> None:
    fig.add_scatter(
        x=forecast["interval_start"],
        y=forecast["p90"],
        line={"width": 0},
        showlegend=False,
        name="P90",
        legendgroup=legend,
    )
    fig.add_scatter(
        x=forecast["interval_start"],
        y=forecast["p10"],
        fill="tonexty",
        fillcolor="rgba(255, 127, 14, 0.25)",
        line={"width": 0},
        name=legend,
        legendgroup=legend,
    )
    fig.add_scatter(
        x=forecast["interval_start"],
        y=forecast["p50"],
        name="Forecast (P50)",
        line={"color": ESTIMATED, "width": 1.5, "dash": "dash"},
    )


def feeder_chart(frame: pd.DataFrame, title: str) -> go.Figure:
    """A feeder's net load with delivered and received (gross) flows, gaps shaded."""
    fig = go.Figure()
    _shade_intervals(fig, frame, *_range(frame["value"], frame["mw_del"], -frame["mw_rec"]))
    times = frame["interval_start"]
    fig.add_scatter(x=times, y=frame["mw_del"], name="Delivered", line={"color": "#2ca02c"})
    fig.add_scatter(
        x=times, y=-frame["mw_rec"], name="Received (shown below 0)", line={"color": "#8c564b"}
    )
    fig.add_scatter(x=times, y=frame["value"], name="Net", line={"color": LOAD, "width": 2})
    return _layout(fig, title, "MW")


def power_factor_chart(frame: pd.DataFrame, title: str) -> go.Figure:
    fig = go.Figure()
    fig.add_scatter(x=frame["interval_start"], y=frame["pf_net"], name="Power factor")
    fig = _layout(fig, title, "Power factor")
    fig.update_layout(height=260, showlegend=False)
    return fig


def heatmap(frame: pd.DataFrame, title: str, unit: str) -> go.Figure:
    """Day (rows) x time of day (columns) of a month's load; missing intervals stay blank."""
    times = frame["interval_start"]
    grid = frame.assign(day=times.dt.strftime("%a %d"), slot=times.dt.strftime("%H:%M"))
    grid = grid.pivot_table(index="day", columns="slot", values="value", sort=False, dropna=False)
    fig = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(),
            x=grid.columns,
            y=grid.index,
            colorscale="Viridis",
            colorbar={"title": unit},
            hovertemplate="%{y} %{x}: %{z:.3f} " + unit + "<extra></extra>",
        )
    )
    fig = _layout(fig, title, "Day", "Time of day (UTC)")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=560, hovermode="closest")
    return fig


def forecast_chart(frame: pd.DataFrame, title: str, unit: str) -> go.Figure:
    """Actual load against the P50 forecast and its P10-P90 band; the seasonal-naive baseline
    (a week earlier) can be switched on from the legend."""
    fig = go.Figure()
    _band(fig, frame)
    fig.add_scatter(
        x=frame["interval_start"],
        y=frame["baseline"],
        name="Seasonal naive (a week ago)",
        line={"color": "#7f7f7f", "width": 1, "dash": "dot"},
        visible="legendonly",
    )
    fig.add_scatter(
        x=frame["interval_start"],
        y=frame["actual"],
        name="Actual",
        line={"color": ACTUAL, "width": 1.2},
    )
    return _layout(fig, title, f"Load ({unit})")


def scores_chart(scores: pd.DataFrame) -> go.Figure:
    """WAPE per month: the model beside the seasonal-naive baseline (lower is better)."""
    months = pd.to_datetime(scores["month_start"]).dt.strftime("%Y-%m")
    fig = go.Figure()
    fig.add_bar(x=months, y=scores["wape"], name="Model", marker_color=LOAD)
    fig.add_bar(x=months, y=scores["baseline_wape"], name="Seasonal naive", marker_color="#7f7f7f")
    fig = _layout(fig, "Backtest error per month (WAPE, lower is better)", "WAPE", "Month")
    fig.update_layout(height=300, bargap=0.3, hovermode="x")
    fig.update_xaxes(type="category", autorange="reversed")
    fig.update_yaxes(tickformat=".0%")
    return fig


def finding_chart(frame: pd.DataFrame, start, end, title: str, unit: str) -> go.Figure:
    """A target's load around a finding, the finding's span shaded."""
    fig = load_chart(frame, title, unit)
    fig.add_vrect(
        x0=start,
        x1=end,
        fillcolor=FINDING,
        opacity=0.3,
        line_width=0,
        annotation_text="finding",
        annotation_position="top left",
    )
    return fig


def behaviour_chart(rows: pd.DataFrame, window: str) -> go.Figure:
    """Peak, mean and base load per day / week / month window."""
    fig = go.Figure()
    starts = rows["window_start_local"]
    for column, name, colour in (
        ("max_kw", "Peak", MISSING),
        ("mean_kw", "Mean", LOAD),
        ("base_load_kw", "Base load (5th percentile)", "#2ca02c"),
    ):
        fig.add_scatter(
            x=starts, y=rows[column], name=name, mode="lines+markers", line={"color": colour}
        )
    fig = _layout(fig, f"Demand per {window}", "kW", f"{window.capitalize()} starting (local)")
    fig.update_layout(height=320)
    return fig


def hourly_chart(profile: pd.DataFrame, title: str) -> go.Figure:
    """Mean demand by local hour of day, weekdays beside weekends."""
    fig = go.Figure()
    for day_type, colour in DAY_TYPES.items():
        rows = profile[profile["day_type"] == day_type]
        fig.add_scatter(
            x=rows["hour"],
            y=rows["mean_kw"],
            name=day_type.capitalize() + "s",
            mode="lines+markers",
            line={"color": colour},
        )
    fig = _layout(fig, title, "Mean demand (kW)", "Hour of day (local)")
    fig.update_xaxes(dtick=3, range=[0, 23])
    fig.update_layout(height=320)
    return fig


SEGMENT_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
NIGHT_HOURS = 6  # the share of energy before 06:00, as customer_behavior's night_share


def segment_colour(segment: int) -> str:
    """The same colour for a segment in every chart; grey for the near-empty (-1)."""
    return "#7f7f7f" if segment < 0 else SEGMENT_COLOURS[segment % len(SEGMENT_COLOURS)]


def segment_label(segment: int, shape: pd.Series, customers: int) -> str:
    """'Segment 0: peak 18:00, 12% at night, 23 customers' (shape: share by hour)."""
    night = shape[shape.index < NIGHT_HOURS].sum()
    return (
        f"Segment {segment}: peak {int(shape.idxmax()):02d}:00, {night:.0%} at night,"
        f" {customers} customers"
    )


def centroids_chart(centroids: pd.DataFrame, title: str) -> go.Figure:
    """Each segment's daily shape: share of its daily energy per hour of day."""
    fig = go.Figure()
    for segment, rows in centroids.groupby("segment"):
        shape = rows.set_index("hour")["share"]
        fig.add_scatter(
            x=shape.index,
            y=shape.to_numpy(),
            name=segment_label(int(segment), shape, int(rows["customers"].iat[0])),
            mode="lines",
            line={"shape": "hv", "width": 2.5, "color": segment_colour(int(segment))},
        )
    fig = _layout(fig, title, "Share of daily energy", "Hour of day (local)")
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    fig.update_xaxes(dtick=3, range=[0, 23])
    fig.update_layout(height=420, legend={"orientation": "h", "y": -0.25, "yanchor": "top"})
    return fig


def sizes_chart(sizes: pd.DataFrame, names: dict[int, str]) -> go.Figure:
    """Customers per segment, month by month (stacked)."""
    fig = go.Figure()
    months = pd.to_datetime(sizes["month_start"]).dt.strftime("%Y-%m")
    for segment, rows in sizes.groupby("segment"):
        fig.add_bar(
            x=months[rows.index],
            y=rows["customers"],
            name=names.get(int(segment), f"Segment {segment}"),
            marker_color=segment_colour(int(segment)),
        )
    fig = _layout(fig, "Customers per segment and month", "Customers", "Month")
    fig.update_layout(barmode="stack", bargap=0.3, height=320, hovermode="x")
    fig.update_xaxes(type="category")
    return fig


def tariff_chart(usage: pd.DataFrame) -> go.Figure:
    """Mean monthly energy per customer, by tariff group."""
    fig = go.Figure()
    months = pd.to_datetime(usage["month"]).dt.strftime("%Y-%m")
    for tariff, rows in usage.groupby("tariff"):
        fig.add_bar(x=months[rows.index], y=rows["mean_kwh_per_customer"], name=str(tariff))
    fig = _layout(
        fig, "Energy per customer and month, by tariff", "kWh per customer", "Month (local)"
    )
    fig.update_layout(bargap=0.3, height=320, hovermode="x")
    return fig


def completeness_chart(frame: pd.DataFrame, title: str) -> go.Figure:
    """Meter (rows) x month (columns) of the share of intervals with a reading."""
    grid = frame.assign(month=pd.to_datetime(frame["month"]).dt.strftime("%Y-%m")).pivot_table(
        index="meter_id", columns="month", values="completeness", sort=False
    )
    fig = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(),
            x=grid.columns,
            y=grid.index,
            zmin=0,
            zmax=1,
            colorscale="RdYlGn",
            colorbar={"title": "complete", "tickformat": ".0%"},
            texttemplate="%{z:.1%}",
            hovertemplate="%{y} %{x}: %{z:.1%}<extra></extra>",
        )
    )
    fig = _layout(fig, title, "Meter", "Month")
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
    fig.update_layout(height=max(260, 22 * len(grid) + 120), hovermode="closest")
    return fig
