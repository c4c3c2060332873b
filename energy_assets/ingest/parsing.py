"""Turning chunks of a dropped file into validated rows: pure functions, no database, no Dagster.

Readings are checked chunk by chunk with a little state per meter (grid anchor and step, the last
reading of each channel), so memory follows the chunk size, not the file size.

A value a meter can produce loads, negative ones included (a reversed CT, another sign
convention: the marts mark such intervals `suspect`). A value no meter produces refuses the
file: infinity, or a magnitude beyond its quantity's bound in `BOUNDS`, so that no accepted
value, times any accepted multiplier (`MAX_MULTIPLIER`), can overflow a month's rebuild.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from energy_assets.ingest.formats import METER_FIELDS, Match
from energy_assets.ingest.rejections import Rejected

NULL_TOKENS = frozenset({"", "nan", "null", "na", "n/a", "none", "-"})
FUTURE_SLACK = pd.Timedelta(days=1)
_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"


@dataclass(frozen=True)
class Bound:
    """Values of a quantity lie within +-`limit`: no meter measures more (`why`)."""

    quantity: str
    words: frozenset[str]
    """A channel measures this quantity when its name, split on `_`, holds one of these."""
    limit: float
    why: str


BOUNDS = (
    Bound("power factor", frozenset({"pf", "factor"}), 1.0, "real over apparent power"),
    Bound(
        "kW, kWh, kVA, kVAh, kvar, kvarh",
        frozenset({"kw", "kwh", "kva", "kvah", "kvar", "kvarh"}),
        1e7,
        "10 GW, or 10 GWh in one interval: five times the largest single metering points,"
        " generating units and interconnectors of about 2 GW",
    ),
    Bound("volts", frozenset({"voltage", "v"}), 2e6, "the highest AC or DC lines run at 1,100 kV"),
    Bound("amperes", frozenset({"current", "a"}), 1e6, "generator busbars carry tens of kA"),
)
"""Bounds by quantity, the first whose words the channel name holds; `ANY_VALUE` otherwise."""
ANY_VALUE = Bound(
    "any other quantity (W, Wh, weather, ...)",
    frozenset(),
    1e10,
    "10 GW in W; even times the largest multiplier far inside a float8",
)
MAX_MULTIPLIER = 1e6
"""A meter's multiplier is its CT ratio times its VT ratio: 4000:5 x 138 kV:115 V is 960,000."""

LineOf = Callable[[int], int]
"""Record number (0-based, from the chunk index) -> physical line in the file."""
MAX_METER_ID = 200
"""Characters a meter id may have: ids are indexed (an index row holds at most a few KB), and
no meter system issues ids anywhere near this long."""


def meter_from_filename(name: str) -> str:
    """`M1001_2024-01.csv` -> `M1001`: the file name up to the first underscore."""
    return Path(name).stem.split("_", 1)[0].strip()


def _first(mask: pd.Series | np.ndarray) -> int:
    return int(np.flatnonzero(np.asarray(mask))[0])


def reject_first(
    mask: pd.Series | np.ndarray,
    records: np.ndarray | pd.Index,
    line_of: LineOf,
    rule: str,
    describe: Callable[[int], tuple[str, str]],
) -> None:
    """Reject with `rule` at the first row where `mask` holds, if any.

    `describe(i)` gives the message (after "line N: ") and the sample for row position i.
    """
    if np.asarray(mask).any():
        i = _first(mask)
        line = line_of(int(records[i]))
        message, sample = describe(i)
        raise Rejected(rule, f"line {line}: {message}", [line], sample)


def check_meter_ids(meters: pd.Series, line_of: LineOf) -> None:
    """Refuse a meter id longer than `MAX_METER_ID` (a column shifted into the id, a blob)."""
    reject_first(
        meters.str.len() > MAX_METER_ID,
        meters.index,
        line_of,
        "meter_id_too_long",
        lambda i: (
            f"the meter id is {len(meters.iloc[i]):,} characters long; at most {MAX_METER_ID}"
            " are accepted (is a column shifted into the meter column?)",
            meters.iloc[i][:80],
        ),
    )


def parse_numbers(text: pd.Series, column: str, line_of: LineOf) -> pd.Series:
    """Numbers from text; blank, NaN, Null and friends are missing values (never zeros)."""
    text = text.str.strip()
    number = pd.to_numeric(text, errors="coerce")
    bad = number.isna() & ~text.str.lower().isin(NULL_TOKENS)
    reject_first(
        bad,
        text.index,
        line_of,
        "non_numeric",
        lambda i: (f"{column} {text.iloc[i]!r} is not a number", text.iloc[i]),
    )
    return number.astype("float64")


def bound_of(channel: str) -> Bound:
    words = set(channel.lower().split("_"))
    return next((bound for bound in BOUNDS if bound.words & words), ANY_VALUE)


def check_values(
    value: np.ndarray,
    channel: np.ndarray,
    channel_names: np.ndarray,
    records: np.ndarray,
    line_of: LineOf,
) -> None:
    """Refuse values no meter produces: infinite ones, and magnitudes beyond their bound.

    `channel` holds codes into `channel_names`; NaN values are gaps and pass.
    """

    def name(i: int) -> str:
        return channel_names[channel[i]]

    reject_first(
        np.isinf(value),
        records,
        line_of,
        "non_finite",
        lambda i: (
            f"{name(i)} is {value[i]}, not a reading; a meter reads finite numbers"
            " (leave the value blank where there is no reading)",
            f"{value[i]}",
        ),
    )
    bounds = [bound_of(c) for c in channel_names]
    limits = np.array([bound.limit for bound in bounds], dtype="float64")[channel]

    def beyond(i: int) -> tuple[str, str]:
        bound = bounds[channel[i]]
        return (
            f"{name(i)} {value[i]:g} is beyond +-{bound.limit:g}, the most a meter can read"
            f" of {bound.quantity} ({bound.why}); check the export's units and scaling",
            f"{value[i]:g}",
        )

    reject_first(np.abs(value) > limits, records, line_of, "implausible_value", beyond)


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
            "mixed_timezones",
            f"line {lines[1]}: timestamps mix explicit UTC offsets and local times",
            lines,
            raw.iloc[i],
        )
    utc = bool(has_offset.all())
    parsed = pd.to_datetime(raw, errors="coerce", format="ISO8601", utc=utc)
    if parsed.isna().any():  # not ISO: the slow, forgiving parser
        parsed = pd.to_datetime(raw, errors="coerce", format="mixed", utc=utc)
    reject_first(
        parsed.isna(),
        raw.index,
        line_of,
        "bad_timestamp",
        lambda i: (f"{raw.iloc[i]!r} is not a timestamp", raw.iloc[i]),
    )
    if utc:
        return parsed.astype("datetime64[ns, UTC]")
    repeated = {} if repeated is None else repeated
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    for meter, rows in parsed.groupby(meters, sort=False):
        tz = timezone_for(str(meter))
        try:
            summer = rows.dt.tz_localize(
                tz, ambiguous=np.ones(len(rows), bool), nonexistent="raise"
            )
        except Exception as exc:  # pytz / zoneinfo / pandas raise several types here
            raise Rejected(
                "bad_local_time",
                f"meter {meter}: a local time that does not exist in {tz}"
                f" (the hour skipped when daylight saving starts): {exc}",
            ) from exc
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
class Long:
    """One chunk's readings as parallel arrays: codes into the name arrays, UTC nanoseconds."""

    meter: np.ndarray
    meter_names: np.ndarray
    ts: np.ndarray
    channel: np.ndarray
    channel_names: np.ndarray
    value: np.ndarray
    record: np.ndarray


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
    earliest: pd.Timestamp
    """Readings before this are refused (the first month partition, `ENERGY_FIRST_MONTH`)."""
    now: pd.Timestamp = field(default_factory=lambda: pd.Timestamp.now(tz="UTC"))
    meters: dict[str, MeterState] = field(default_factory=dict)
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    last_seen: dict[tuple[str, str], tuple[int, float, int]] = field(default_factory=dict)
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
            check_meter_ids(meters, line_of)
        else:
            meter = meter_from_filename(self.file_name)
            if not meter:
                raise Rejected("missing_meter_id", f"cannot name the meter of {self.file_name}")
            if len(meter) > MAX_METER_ID:
                raise Rejected(
                    "meter_id_too_long",
                    f"the meter id the file name gives ({len(meter)} characters) is longer than"
                    f" {MAX_METER_ID}; rename the file to start with the meter id and `_`",
                    sample=meter[:80],
                )
            meters = pd.Series(meter, index=chunk.index)
        self._collect_attributes(chunk, meters)

        times = parse_times(
            chunk[columns["timestamp"]], meters, self.timezone_for, line_of, self.repeated
        )
        reject_first(
            (times < self.earliest) | (times > self.now + FUTURE_SLACK),
            times.index,
            line_of,
            "timestamp_out_of_range",
            lambda i: (
                f"{times.iloc[i]} is before {self.earliest:%Y-%m-%d}"
                " or more than a day in the future",
                str(chunk[columns["timestamp"]].iloc[i]),
            ),
        )
        long = self._long_values(chunk, meters, times, line_of)
        check_values(long.value, long.channel, long.channel_names, long.record, line_of)
        return self._check_sequence(long, line_of)

    def _collect_attributes(self, chunk: pd.DataFrame, meters: pd.Series) -> None:
        for name, column in self.match.attributes.items():
            values = chunk[column].str.strip()
            firsts = values[values != ""].groupby(meters[values != ""]).first()
            for meter, value in firsts.items():
                self.attributes.setdefault(str(meter), {}).setdefault(name, value)

    def _long_values(
        self, chunk: pd.DataFrame, meters: pd.Series, times: pd.Series, line_of: LineOf
    ) -> Long:
        columns = self.match.columns
        fmt = self.match.format
        meter_codes, meter_names = pd.factorize(meters, sort=False)
        ts = times.array.asi8
        record = chunk.index.to_numpy()
        if not fmt.long:
            channels = [c for c in fmt.channels if c in columns]
            values = [
                parse_numbers(chunk[columns[c]], columns[c], line_of).to_numpy() for c in channels
            ]
            n, k = len(chunk), len(channels)
            return Long(
                meter=np.tile(meter_codes, k),
                meter_names=np.asarray(meter_names, dtype=object),
                ts=np.tile(ts, k),
                channel=np.repeat(np.arange(k), n),
                channel_names=np.asarray(channels, dtype=object),
                value=np.concatenate(values),
                record=np.tile(record, k),
            )
        channel = chunk[columns["channel"]].str.strip()
        if fmt.channel_codes:
            named = channel.map(fmt.channel_codes)
            reject_first(
                named.isna(),
                chunk.index,
                line_of,
                "unknown_channel",
                lambda i: (
                    f"channel code {channel.iloc[i]!r} is not one of {sorted(fmt.channel_codes)}",
                    channel.iloc[i],
                ),
            )
            channel = named
        else:
            channel = channel.str.lower().str.replace(r"\W+", "_", regex=True)
        if "unit" in columns:
            unit = (
                chunk[columns["unit"]].str.strip().str.lower().str.replace(r"\W+", "", regex=True)
            )
            channel = channel.where(unit == "", channel + "_" + unit)
        channel_codes, channel_names = pd.factorize(channel, sort=False)
        value = parse_numbers(chunk[columns["value"]], columns["value"], line_of).to_numpy()
        return Long(
            meter=meter_codes,
            meter_names=np.asarray(meter_names, dtype=object),
            ts=ts,
            channel=channel_codes,
            channel_names=np.asarray(channel_names, dtype=object),
            value=value,
            record=record,
        )

    def _check_sequence(self, long: Long, line_of: LineOf) -> pd.DataFrame:
        """Duplicates and the interval grid; returns the rows to load (without identical
        duplicates and missing values) as a frame."""
        order = np.lexsort((long.record, long.ts, long.channel, long.meter))
        m, c, t = long.meter[order], long.channel[order], long.ts[order]
        v, r = long.value[order], long.record[order]
        same = (m[1:] == m[:-1]) & (c[1:] == c[:-1]) & (t[1:] == t[:-1])
        if same.any():
            a, b = v[:-1][same], v[1:][same]
            differ = ~((a == b) | (np.isnan(a) & np.isnan(b)))
            if differ.any():
                i = np.flatnonzero(same)[_first(differ)]
                lines = sorted([line_of(int(r[i])), line_of(int(r[i + 1]))])
                when = pd.Timestamp(int(t[i]), tz="UTC")
                raise Rejected(
                    "conflicting_duplicate",
                    f"meter {long.meter_names[m[i]]}: {when} appears on lines {lines} with"
                    f" different {long.channel_names[c[i]]} values",
                    lines,
                    str(when),
                )
        keep = np.r_[True, ~same]
        m, c, t, v, r = m[keep], c[keep], t[keep], v[keep], r[keep]
        self._check_chunk_boundary(long, m, c, t, v, r, line_of)
        steps = self._check_grid(long.meter_names, m, t, r, line_of)
        present = ~np.isnan(v)
        for code, rows in zip(*np.unique(m[present], return_counts=True), strict=True):
            self.meters[long.meter_names[code]].rows += int(rows)
        m, c, t, v = m[present], c[present], t[present], v[present]
        return pd.DataFrame(
            {
                "meter_id": pd.Categorical.from_codes(m, long.meter_names),
                "interval_start": pd.DatetimeIndex(t.view("datetime64[ns]")).tz_localize("UTC"),
                "interval_seconds": steps[m].astype("int32"),
                "channel": pd.Categorical.from_codes(c, long.channel_names),
                "value": v,
            }
        )

    def _check_grid(self, names, m, t, r, line_of: LineOf) -> np.ndarray:
        """Every timestamp on its meter's grid; returns the interval seconds per meter code."""
        default = pd.Timedelta(minutes=self.match.format.default_interval_minutes)
        if len(m) == 0:
            return np.zeros(len(names), "int64")
        starts = np.r_[0, np.flatnonzero(np.diff(m)) + 1]
        anchors = np.empty(len(names), "int64")
        steps = np.empty(len(names), "int64")
        for start, end in zip(starts, np.r_[starts[1:], len(m)], strict=True):
            meter = names[m[start]]
            distinct = np.unique(t[start:end])
            first, last = (
                pd.Timestamp(int(distinct[0]), tz="UTC"),
                pd.Timestamp(int(distinct[-1]), tz="UTC"),
            )
            state = self.meters.get(meter)
            if state is None:
                state = self.meters[meter] = MeterState(first, None, first, last)
            if state.step is None:
                known = np.unique(np.r_[state.anchor.value, distinct])
                if len(known) > 1:  # the step needs two distinct times to be seen
                    diffs = pd.Series(pd.to_timedelta(np.diff(known)))
                    state.step = detect_step(diffs, default)
                    state.anchor = pd.Timestamp(int(known[0]), tz="UTC")
            state.first, state.last = min(state.first, first), max(state.last, last)
            anchors[m[start]] = state.anchor.value
            steps[m[start]] = (state.step or default).value
        off_grid = (t - anchors[m]) % steps[m] != 0
        if off_grid.any():
            i = _first(off_grid)
            state = self.meters[names[m[i]]]
            line = line_of(int(r[i]))
            at = pd.Timestamp(int(t[i]), tz="UTC")
            raise Rejected(
                "off_interval_grid",
                f"meter {names[m[i]]}: line {line} ({at}) is not on the "
                f"{steps[m[i]] // 60_000_000_000}-minute interval grid that starts at "
                f"{state.anchor}",
                [line],
                str(at),
            )
        return steps // 1_000_000_000

    def _check_chunk_boundary(self, long: Long, m, c, t, v, r, line_of: LineOf) -> None:
        """Compare each meter and channel's first row here with its last row in earlier chunks."""
        group = np.r_[True, (m[1:] != m[:-1]) | (c[1:] != c[:-1])]
        firsts = np.flatnonzero(group)
        lasts = np.r_[firsts[1:] - 1, len(m) - 1]
        for i in firsts:
            key = (long.meter_names[m[i]], long.channel_names[c[i]])
            seen = self.last_seen.get(key)
            if seen is None:
                continue
            when, value, record = seen
            if t[i] == when and not (value == v[i] or (np.isnan(value) and np.isnan(v[i]))):
                lines = [line_of(record), line_of(int(r[i]))]
                stamp = pd.Timestamp(int(when), tz="UTC")
                raise Rejected(
                    "conflicting_duplicate",
                    f"meter {key[0]}: {stamp} appears on lines {lines} with different"
                    f" {key[1]} values",
                    lines,
                    str(stamp),
                )
            if t[i] <= when:
                self.needs_duplicate_check = True
        for i in lasts:
            key = (long.meter_names[m[i]], long.channel_names[c[i]])
            self.last_seen[key] = (int(t[i]), float(v[i]), int(r[i]))

    def summary(self) -> pd.DataFrame:
        """Per meter: interval length, first and last interval, rows loaded."""
        default = pd.Timedelta(minutes=self.match.format.default_interval_minutes)
        return pd.DataFrame(
            [
                (m, int((s.step or default).total_seconds()), s.first, s.last, s.rows)
                for m, s in self.meters.items()
            ],
            columns=["meter_id", "interval_seconds", "first_interval", "last_interval", "rows"],
        ).set_index("meter_id")


def parse_meters(table: pd.DataFrame, match: Match, line_of: LineOf) -> pd.DataFrame:
    """Meter metadata rows: meter_id, the known fields present, and an `attributes` dict."""
    fields = {
        key: col for key, col in match.columns.items() if key == "meter_id" or key in METER_FIELDS
    }
    meters = pd.DataFrame({key: table[col].str.strip() for key, col in fields.items()})
    meters = meters.replace("", None)
    if meters["meter_id"].isna().any():
        line = line_of(int(table.index[_first(meters["meter_id"].isna())]))
        raise Rejected("missing_meter_id", f"line {line} has no meter id", [line])
    check_meter_ids(meters["meter_id"], line_of)
    if "multiplier" in meters:
        text = meters["multiplier"].fillna("")
        multiplier = parse_numbers(text, match.columns["multiplier"], line_of).fillna(1.0)
        reject_first(
            ~((multiplier > 0) & (multiplier <= MAX_MULTIPLIER)),
            table.index,
            line_of,
            "bad_multiplier",
            lambda i: (
                f"meter {meters['meter_id'].iloc[i]}: multiplier {text.iloc[i]!r} is not a"
                f" number in (0, {MAX_MULTIPLIER:g}]; a multiplier is the CT ratio times the VT"
                " ratio (1, or blank, when the meter reads primary values)",
                text.iloc[i],
            ),
        )
        meters["multiplier"] = multiplier
    if "timezone" in meters:
        zone = meters["timezone"]
        reject_first(
            zone.notna() & ~zone.isin(list(timezones())),
            table.index,
            line_of,
            "bad_timezone",
            lambda i: (
                f"meter {meters['meter_id'].iloc[i]}: {zone.iloc[i]!r} is not a time zone;"
                " name one as the tz database does, e.g. 'Europe/London' or 'UTC'",
                zone.iloc[i],
            ),
        )
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


@cache
def timezones() -> frozenset[str]:
    """The tz database's zone names, which PostgreSQL knows too; `localtime` is the machine's
    own zone file, not a name, and PostgreSQL refuses it."""
    return frozenset(zoneinfo.available_timezones()) - {"localtime"}


def parse_weather(
    chunk: pd.DataFrame, match: Match, line_of: LineOf, timezone: str
) -> pd.DataFrame:
    """Weather observations in long form: site_id, observed_at (UTC), variable, value. Times
    without an offset are read in `timezone` (the platform's ENERGY_TIMEZONE)."""
    columns, fmt = match.columns, match.format
    if "site" in columns:
        sites = chunk[columns["site"]].str.strip()
    else:
        sites = pd.Series(fmt.default_site or "default", index=chunk.index)
    times = parse_times(chunk[columns["timestamp"]], sites, lambda _: timezone, line_of)
    variables = [v for v in fmt.channels if v in columns]
    values = [parse_numbers(chunk[columns[v]], columns[v], line_of).to_numpy() for v in variables]
    n = len(chunk)
    check_values(
        np.concatenate(values),
        np.repeat(np.arange(len(variables)), n),
        np.asarray(variables, dtype=object),
        np.tile(chunk.index.to_numpy(), len(variables)),
        line_of,
    )
    parts = [
        pd.DataFrame(
            {
                "site_id": sites.to_numpy(),
                "observed_at": times.to_numpy(),
                "variable": variable,
                "value": value,
            }
        )
        for variable, value in zip(variables, values, strict=True)
    ]
    weather = pd.concat(parts, ignore_index=True).dropna(subset=["value"])
    return weather.drop_duplicates(["site_id", "variable", "observed_at"], keep="last")
