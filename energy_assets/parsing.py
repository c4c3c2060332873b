"""Turning chunks of a dropped file into validated rows: pure functions, no database, no Dagster.

Readings are checked chunk by chunk with a little state per meter (grid anchor and step, the last
reading of each channel), so memory follows the chunk size, not the file size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from energy_assets.formats import Match
from energy_assets.rejections import Rejected

NULL_TOKENS = frozenset({"", "nan", "null", "na", "n/a", "none", "-"})
EARLIEST = pd.Timestamp("1990-01-01", tz="UTC")
FUTURE_SLACK = pd.Timedelta(days=1)
_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"

LineOf = Callable[[int], int]
"""Record number (0-based, from the chunk index) -> physical line in the file."""


def meter_from_filename(name: str) -> str:
    """`M1001_2024-01.csv` -> `M1001`: the file name up to the first underscore."""
    return Path(name).stem.split("_", 1)[0].strip()


def _first(mask: pd.Series | np.ndarray) -> int:
    return int(np.flatnonzero(np.asarray(mask))[0])


def parse_numbers(text: pd.Series, column: str, line_of: LineOf) -> pd.Series:
    """Numbers from text; blank, NaN, Null and friends are missing values (never zeros)."""
    text = text.str.strip()
    number = pd.to_numeric(text, errors="coerce")
    bad = number.isna() & ~text.str.lower().isin(NULL_TOKENS)
    if bad.any():
        i = _first(bad)
        line = line_of(int(text.index[i]))
        raise Rejected(
            "non_numeric", f"line {line}: {column} {text.iloc[i]!r} is not a number",
            [line], text.iloc[i],
        )  # fmt: skip
    return number.astype("float64")


def parse_times(
    raw: pd.Series,
    meters: pd.Series,
    timezone_for: Callable[[str], str],
    line_of: LineOf,
    repeated: dict[tuple[str, pd.Timestamp], int] | None = None,
) -> pd.Series:
    """Timestamps to UTC: explicit offsets are honoured, naive times read in the meter's zone.

    A local time that occurs twice (the hour repeated when DST ends) is read as summer time the
    first time it appears and as winter time the second; `repeated` remembers the occurrences
    across chunks. A local time that does not exist (the hour skipped when DST starts) rejects
    the file.
    """
    raw = raw.str.strip()
    has_offset = raw.str.contains(_OFFSET, regex=True)
    if has_offset.any() and not has_offset.all():
        i = _first(has_offset != has_offset.iloc[0])
        lines = [line_of(int(raw.index[0])), line_of(int(raw.index[i]))]
        raise Rejected(
            "mixed_timezones", f"line {lines[1]}: timestamps mix explicit UTC offsets and local"
            " times", lines, raw.iloc[i],
        )  # fmt: skip
    utc = bool(has_offset.all())
    parsed = pd.to_datetime(raw, errors="coerce", format="ISO8601", utc=utc)
    if parsed.isna().any():  # not ISO: the slow, forgiving parser
        parsed = pd.to_datetime(raw, errors="coerce", format="mixed", utc=utc)
    if parsed.isna().any():
        i = _first(parsed.isna())
        line = line_of(int(raw.index[i]))
        raise Rejected(
            "bad_timestamp", f"line {line}: {raw.iloc[i]!r} is not a timestamp", [line], raw.iloc[i]
        )
    if utc:
        return parsed.astype("datetime64[ns, UTC]")
    repeated = {} if repeated is None else repeated
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    for meter, rows in parsed.groupby(meters, sort=False):
        tz = timezone_for(str(meter))
        try:
            summer = rows.dt.tz_localize(tz, ambiguous=np.ones(len(rows), bool),
                                         nonexistent="raise")  # fmt: skip
        except Exception as exc:  # pytz / zoneinfo / pandas raise several types here
            raise Rejected(
                "bad_local_time", f"meter {meter}: a local time that does not exist in {tz}"
                f" (the hour skipped when daylight saving starts): {exc}",
            ) from exc  # fmt: skip
        winter = rows.dt.tz_localize(tz, ambiguous=np.zeros(len(rows), bool))
        local = summer.copy()
        for index in rows.index[(summer != winter).to_numpy()]:
            key = (str(meter), rows[index])
            seen = repeated.get(key, 0)
            repeated[key] = seen + 1
            if seen:
                local[index] = winter[index]
        out[rows.index] = local.dt.tz_convert("UTC")
    return out


def detect_step(diffs: pd.Series, default: pd.Timedelta) -> pd.Timedelta:
    """The interval length: the most common difference between consecutive distinct times.

    On a tie (short files) the format's usual interval wins if it is among the candidates,
    else the longest, so one stray timestamp cannot shrink the grid to fit itself.
    """
    if diffs.empty:
        return default
    counts = diffs.value_counts()
    candidates = counts.index[counts == counts.max()]
    return default if default in candidates else max(candidates)


@dataclass
class MeterState:
    anchor: pd.Timestamp
    step: pd.Timedelta | None
    """None while only one distinct timestamp has been seen."""
    first: pd.Timestamp
    last: pd.Timestamp
    rows: int = 0


@dataclass
class ReadingsParser:
    """Validates a readings file chunk by chunk and returns long rows ready for COPY."""

    match: Match
    file_name: str
    timezone_for: Callable[[str], str]
    now: pd.Timestamp = field(default_factory=lambda: pd.Timestamp.now(tz="UTC"))
    meters: dict[str, MeterState] = field(default_factory=dict)
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    last_seen: dict[tuple[str, str], tuple[pd.Timestamp, float, int]] = field(default_factory=dict)
    repeated: dict[tuple[str, pd.Timestamp], int] = field(default_factory=dict)
    needs_duplicate_check: bool = False
    """True when rows of one meter and channel came back in time across chunks: duplicates
    between chunks can then only be found in the database."""

    def feed(self, chunk: pd.DataFrame, line_of: LineOf) -> pd.DataFrame:
        """Validate one chunk; return its long rows (meter_id, interval_start, interval_seconds,
        channel, value), missing values and identical duplicates dropped."""
        columns = self.match.columns
        if "meter" in columns:
            meters = chunk[columns["meter"]].str.strip()
            if (meters == "").any():
                line = line_of(int(meters.index[_first(meters == "")]))
                raise Rejected("missing_meter_id", f"line {line} has no meter id", [line])
        else:
            meter = meter_from_filename(self.file_name)
            if not meter:
                raise Rejected("missing_meter_id", f"cannot name the meter of {self.file_name}")
            meters = pd.Series(meter, index=chunk.index)
        self._collect_attributes(chunk, meters)

        times = parse_times(
            chunk[columns["timestamp"]], meters, self.timezone_for, line_of, self.repeated
        )
        outside = (times < EARLIEST) | (times > self.now + FUTURE_SLACK)
        if outside.any():
            i = _first(outside)
            line = line_of(int(times.index[i]))
            raise Rejected(
                "timestamp_out_of_range",
                f"line {line}: {times.iloc[i]} is before {EARLIEST:%Y-%m-%d} or more than a day"
                " in the future",
                [line], str(chunk[columns["timestamp"]].iloc[i]),
            )  # fmt: skip
        long = self._long_values(chunk, meters, times, line_of)
        self._check_values(long, line_of)
        long = self._check_sequence(long, line_of)
        return long.dropna(subset=["value"]).drop(columns="record")

    def _collect_attributes(self, chunk: pd.DataFrame, meters: pd.Series) -> None:
        for name, column in self.match.attributes.items():
            values = chunk[column].str.strip()
            firsts = values[values != ""].groupby(meters[values != ""]).first()
            for meter, value in firsts.items():
                self.attributes.setdefault(str(meter), {}).setdefault(name, value)

    def _long_values(
        self, chunk: pd.DataFrame, meters: pd.Series, times: pd.Series, line_of: LineOf
    ) -> pd.DataFrame:
        columns = self.match.columns
        fmt = self.match.format
        base = {"meter_id": meters.to_numpy(), "interval_start": times.to_numpy(),
                "record": chunk.index.to_numpy()}  # fmt: skip
        if not fmt.long:
            parts = [
                pd.DataFrame({**base, "channel": channel,
                              "value": parse_numbers(chunk[columns[channel]], columns[channel],
                                                     line_of).to_numpy()})
                for channel in fmt.channels if channel in columns
            ]  # fmt: skip
            return pd.concat(parts, ignore_index=True)
        channel = chunk[columns["channel"]].str.strip()
        if fmt.channel_codes:
            named = channel.map(fmt.channel_codes)
            if named.isna().any():
                i = _first(named.isna())
                line = line_of(int(chunk.index[i]))
                raise Rejected(
                    "unknown_channel", f"line {line}: channel code {channel.iloc[i]!r} is not one"
                    f" of {sorted(fmt.channel_codes)}", [line], channel.iloc[i],
                )  # fmt: skip
            channel = named
        else:
            channel = channel.str.lower().str.replace(r"\W+", "_", regex=True)
        if "unit" in columns:
            unit = (
                chunk[columns["unit"]].str.strip().str.lower().str.replace(r"\W+", "", regex=True)
            )
            channel = channel.where(unit == "", channel + "_" + unit)
        value = parse_numbers(chunk[columns["value"]], columns["value"], line_of)
        return pd.DataFrame({**base, "channel": channel.to_numpy(), "value": value.to_numpy()})

    def _check_values(self, long: pd.DataFrame, line_of: LineOf) -> None:
        fmt = self.match.format
        negative = long["channel"].isin(fmt.non_negative) & (long["value"] < 0)
        if negative.any():
            row = long[negative].iloc[0]
            line = line_of(int(row.record))
            raise Rejected(
                "negative_delivered",
                f"line {line}: {row.channel} is {row.value:g}; delivered energy cannot be negative"
                " (received energy belongs in its own column)",
                [line], f"{row.value:g}",
            )  # fmt: skip
        for channel, (low, high) in fmt.ranges.items():
            outside = (long["channel"] == channel) & ~long["value"].between(low, high)
            outside &= long["value"].notna()
            if outside.any():
                row = long[outside].iloc[0]
                line = line_of(int(row.record))
                raise Rejected(
                    "out_of_range", f"line {line}: {channel} {row.value:g} is outside"
                    f" [{low:g}, {high:g}]", [line], f"{row.value:g}",
                )  # fmt: skip

    def _check_sequence(self, long: pd.DataFrame, line_of: LineOf) -> pd.DataFrame:
        """Duplicates and the interval grid; returns `long` with identical duplicates dropped."""
        long = long.sort_values(["meter_id", "channel", "interval_start", "record"],
                                kind="stable", ignore_index=True)  # fmt: skip
        key = ["meter_id", "channel", "interval_start"]
        repeat = long.duplicated(key, keep="first").to_numpy()
        if repeat.any():
            previous = np.flatnonzero(repeat) - 1
            a = long["value"].to_numpy()[previous]
            b = long["value"].to_numpy()[repeat]
            differ = ~((a == b) | (np.isnan(a) & np.isnan(b)))
            if differ.any():
                i = np.flatnonzero(repeat)[_first(differ)]
                row, other = long.iloc[i], long.iloc[i - 1]
                lines = sorted([line_of(int(other.record)), line_of(int(row.record))])
                raise Rejected(
                    "conflicting_duplicate",
                    f"meter {row.meter_id}: {row.interval_start} appears on lines {lines} with"
                    f" different {row.channel} values", lines, str(row.interval_start),
                )  # fmt: skip
            long = long[~repeat].reset_index(drop=True)
        self._check_chunk_boundary(long, line_of)
        default = pd.Timedelta(minutes=self.match.format.default_interval_minutes)
        steps = {}
        for meter, rows in long.groupby("meter_id", sort=False):
            distinct = rows["interval_start"].drop_duplicates().sort_values()
            state = self.meters.get(meter)
            if state is None:
                state = MeterState(distinct.iloc[0], None, distinct.iloc[0], distinct.iloc[-1])
                self.meters[meter] = state
            if state.step is None:
                known = pd.concat([pd.Series([state.anchor]), distinct]).drop_duplicates()
                if len(known) > 1:  # the step needs two distinct times to be seen
                    state.step = detect_step(known.sort_values().diff().dropna(), default)
                    state.anchor = known.min()
            step = state.step or default
            off_grid = ((distinct - state.anchor) % step) != pd.Timedelta(0)
            if off_grid.any():
                at = distinct[off_grid].iloc[0]
                record = int(rows.loc[rows["interval_start"] == at, "record"].min())
                line = line_of(record)
                raise Rejected(
                    "off_interval_grid",
                    f"meter {meter}: line {line} ({at}) is not on the "
                    f"{int(step.total_seconds() // 60)}-minute interval grid that starts at "
                    f"{state.anchor}",
                    [line], str(at),
                )  # fmt: skip
            state.first = min(state.first, distinct.iloc[0])
            state.last = max(state.last, distinct.iloc[-1])
            state.rows += int(rows["value"].notna().sum())
            steps[meter] = int(step.total_seconds())
        return long.assign(interval_seconds=long["meter_id"].map(steps).astype("int32"))

    def _check_chunk_boundary(self, long: pd.DataFrame, line_of: LineOf) -> None:
        """Compare each meter and channel's first row here with its last row in earlier chunks."""
        ends = long.groupby(["meter_id", "channel"], sort=False)
        firsts, lasts = ends.head(1), ends.tail(1)
        for row in firsts.itertuples(index=False):
            seen = self.last_seen.get((row.meter_id, row.channel))
            if seen is None:
                continue
            when, value, record = seen
            if row.interval_start == when and not (
                value == row.value or (np.isnan(value) and np.isnan(row.value))
            ):
                lines = [line_of(record), line_of(int(row.record))]
                raise Rejected(
                    "conflicting_duplicate",
                    f"meter {row.meter_id}: {when} appears on lines {lines} with different"
                    f" {row.channel} values", lines, str(when),
                )  # fmt: skip
            if row.interval_start <= when:
                self.needs_duplicate_check = True
        for row in lasts.itertuples(index=False):
            self.last_seen[(row.meter_id, row.channel)] = (
                row.interval_start,
                row.value,
                int(row.record),
            )

    def summary(self) -> pd.DataFrame:
        """Per meter: interval length, first and last interval, rows loaded."""
        default = pd.Timedelta(minutes=self.match.format.default_interval_minutes)
        return pd.DataFrame(
            [(m, int((s.step or default).total_seconds()), s.first, s.last, s.rows)
             for m, s in self.meters.items()],
            columns=["meter_id", "interval_seconds", "first_interval", "last_interval", "rows"],
        ).set_index("meter_id")  # fmt: skip


METER_FIELDS = ("name", "feeder", "customer_id", "multiplier", "site_id", "timezone", "tariff")


def parse_meters(table: pd.DataFrame, match: Match, line_of: LineOf) -> pd.DataFrame:
    """Meter metadata rows: meter_id, the known fields present, and an `attributes` dict."""
    fields = {key: col for key, col in match.columns.items()
              if key == "meter_id" or key in METER_FIELDS}  # fmt: skip
    meters = pd.DataFrame({key: table[col].str.strip() for key, col in fields.items()})
    meters = meters.replace("", None)
    if meters["meter_id"].isna().any():
        line = line_of(int(table.index[_first(meters["meter_id"].isna())]))
        raise Rejected("missing_meter_id", f"line {line} has no meter id", [line])
    if "multiplier" in meters:
        text = meters["multiplier"].fillna("")
        meters["multiplier"] = parse_numbers(text, match.columns["multiplier"], line_of).fillna(1.0)
    duplicated = meters["meter_id"].duplicated(keep=False)
    if duplicated.any():
        lines = [line_of(int(i)) for i in table.index[duplicated.to_numpy()][:2]]
        raise Rejected("duplicate_meter", f"meter listed twice, lines {lines}", lines)
    if match.attributes:
        attrs = pd.DataFrame({k: table[c].str.strip() for k, c in match.attributes.items()})
        meters["attributes"] = [
            {k: v for k, v in row.items() if v} for row in attrs.to_dict("records")
        ]
    return meters


def parse_weather(chunk: pd.DataFrame, match: Match, line_of: LineOf) -> pd.DataFrame:
    """Weather observations in long form: site_id, observed_at (UTC), variable, value."""
    columns, fmt = match.columns, match.format
    if "site" in columns:
        sites = chunk[columns["site"]].str.strip()
    else:
        sites = pd.Series(fmt.default_site or "default", index=chunk.index)
    times = parse_times(chunk[columns["timestamp"]], sites, lambda _: "UTC", line_of)
    parts = [
        pd.DataFrame({"site_id": sites.to_numpy(), "observed_at": times.to_numpy(),
                      "variable": variable,
                      "value": parse_numbers(chunk[columns[variable]], columns[variable],
                                             line_of).to_numpy()})
        for variable in fmt.channels if variable in columns
    ]  # fmt: skip
    weather = pd.concat(parts, ignore_index=True).dropna(subset=["value"])
    return weather.drop_duplicates(["site_id", "variable", "observed_at"], keep="last")
