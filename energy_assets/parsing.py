"""Turning one dropped file into validated rows: pure functions, no database, no Dagster."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from energy_assets.formats import Format, Match, detect_format
from energy_assets.rejections import Rejected

HEADER_LINE = 1  # data row i sits on file line i + 2


@dataclass
class ParsedFile:
    format: Format
    readings: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Long form: meter_id, interval_start (UTC), interval_seconds, channel, value."""
    meters: pd.DataFrame = field(default_factory=pd.DataFrame)


def read_table(path: Path) -> pd.DataFrame:
    """Every cell as text, header as given; the caller maps and converts."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise Rejected("empty_file", f"{path.name} is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as exc:
        raise Rejected("unreadable", f"{path.name} is not a readable CSV file: {exc}") from exc


def meter_from_filename(name: str) -> str:
    """`M1001_2024-01.csv` -> `M1001`: the file name up to the first underscore."""
    return Path(name).stem.split("_", 1)[0].strip()


def parse_file(
    path: Path,
    formats: list[Format],
    timezone_for: Callable[[str], str],
) -> ParsedFile:
    """Detect the format of `path` and return its validated rows, or raise `Rejected`."""
    table = read_table(path)
    match = detect_format(list(table.columns), formats)
    if match is None:
        raise Rejected(
            "unknown_header",
            f"no known format matches the header of {path.name}: {list(table.columns)}; "
            "add a mapping file to $ENERGY_HOME/formats/ if this is a new vendor layout",
            lines=[HEADER_LINE],
            sample=",".join(table.columns),
        )
    if table.empty:
        raise Rejected("header_only", f"{path.name} has a header but no data rows")
    if match.format.kind == "meters":
        return ParsedFile(match.format, meters=parse_meters(table, match))
    return ParsedFile(match.format, readings=parse_readings(table, match, path.name, timezone_for))


def parse_meters(table: pd.DataFrame, match: Match) -> pd.DataFrame:
    meters = pd.DataFrame({key: table[col].str.strip() for key, col in match.columns.items()})
    meters = meters.replace("", None)
    if meters["meter_id"].isna().any():
        line = int(np.flatnonzero(meters["meter_id"].isna())[0]) + 2
        raise Rejected("missing_meter_id", f"line {line} has no meter id", [line])
    if "multiplier" in meters:
        multiplier = pd.to_numeric(meters["multiplier"], errors="coerce")
        bad = multiplier.isna() & meters["multiplier"].notna()
        if bad.any():
            line = int(np.flatnonzero(bad)[0]) + 2
            raise Rejected(
                "non_numeric", f"line {line}: multiplier {meters['multiplier'].iloc[line - 2]!r}"
                " is not a number", [line], str(meters["multiplier"].iloc[line - 2]),
            )  # fmt: skip
        meters["multiplier"] = multiplier.fillna(1.0)
    duplicated = meters["meter_id"].duplicated(keep=False)
    if duplicated.any():
        lines = [int(i) + 2 for i in np.flatnonzero(duplicated)[:2]]
        raise Rejected("duplicate_meter", f"meter listed twice, lines {lines}", lines)
    return meters


_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"


def _first_bad(mask: pd.Series) -> int:
    """Position of the first True in `mask`."""
    return int(np.flatnonzero(mask.to_numpy())[0])


def _parse_times(
    raw: pd.Series, meters: pd.Series, timezone_for: Callable[[str], str]
) -> pd.Series:
    """Timestamps to UTC: explicit offsets are honoured, naive times read in the meter's zone."""
    has_offset = raw.str.contains(_OFFSET, regex=True)
    if has_offset.any() and not has_offset.all():
        first = _first_bad(has_offset != has_offset.iloc[0])
        raise Rejected(
            "mixed_timezones",
            f"line {first + 2}: timestamps mix explicit UTC offsets and local times",
            [2, first + 2],
            raw.iloc[first],
        )
    parsed = pd.to_datetime(raw, errors="coerce", format="mixed", utc=bool(has_offset.all()))
    if parsed.isna().any():
        first = _first_bad(parsed.isna())
        raise Rejected(
            "bad_timestamp",
            f"line {first + 2}: {raw.iloc[first]!r} is not a timestamp",
            [first + 2],
            raw.iloc[first],
        )
    if has_offset.all():
        return parsed
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    for meter, rows in parsed.groupby(meters, sort=False):
        tz = timezone_for(str(meter))
        try:
            local = rows.dt.tz_localize(tz, ambiguous="infer", nonexistent="raise")
        except Exception as exc:  # pytz / zoneinfo / pandas raise several types here
            raise Rejected("bad_local_time", f"meter {meter}: local time in {tz}: {exc}") from exc
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


def check_sequence(
    times: pd.Series, meters: pd.Series, values: pd.DataFrame, default_step: pd.Timedelta
) -> pd.Series:
    """Sequential integrity per meter; return the interval length per row.

    Every timestamp must sit on the meter's interval grid (step = the most common difference
    between consecutive distinct timestamps, anchored on the first). Identical duplicate rows are
    fine (the caller keeps one); duplicates with different values reject the file.
    """
    step_per_row = pd.Series(0, index=times.index, dtype="int64")
    for meter, index in times.groupby(meters, sort=False).groups.items():
        t = times.loc[index].sort_values(kind="stable")
        lines = t.index.to_numpy() + 2
        same = t.duplicated(keep=False)
        if same.any():
            dupes = values.loc[t.index[same]]
            conflicting = dupes.groupby(t[same].to_numpy()).nunique(dropna=False).gt(1).any(axis=1)
            if conflicting.any():
                when = conflicting.index[conflicting.to_numpy()][0]
                clash = sorted(int(i) + 2 for i in t.index[t.to_numpy() == when])
                raise Rejected(
                    "conflicting_duplicate",
                    f"meter {meter}: {when} appears on lines {clash} with different values",
                    clash,
                    str(when),
                )
        distinct = t.drop_duplicates()
        step = detect_step(distinct.diff().dropna(), default_step)
        offset = (t - t.iloc[0]) % step
        off_grid = offset != pd.Timedelta(0)
        if off_grid.any():
            first = int(np.flatnonzero(off_grid.to_numpy())[0])
            line = int(lines[first])
            raise Rejected(
                "off_interval_grid",
                f"meter {meter}: line {line} ({t.iloc[first]}) is not on the "
                f"{int(step.total_seconds() // 60)}-minute interval grid that starts at "
                f"{t.iloc[0]}",
                [line],
                str(t.iloc[first]),
            )
        step_per_row.loc[index] = int(step.total_seconds())
    return step_per_row


def parse_readings(
    table: pd.DataFrame, match: Match, file_name: str, timezone_for: Callable[[str], str]
) -> pd.DataFrame:
    fmt = match.format
    if "meter" in match.columns:
        meters = table[match.columns["meter"]].str.strip()
        if (meters == "").any():
            line = int(np.flatnonzero(meters == "")[0]) + 2
            raise Rejected("missing_meter_id", f"line {line} has no meter id", [line])
    else:
        meter = meter_from_filename(file_name)
        if not meter:
            raise Rejected("missing_meter_id", f"cannot name the meter of {file_name}")
        meters = pd.Series(meter, index=table.index)

    channels = [c for c in fmt.channels if c in match.columns]
    values = pd.DataFrame(index=table.index)
    for channel in channels:
        text = table[match.columns[channel]].str.strip()
        number = pd.to_numeric(text, errors="coerce")
        bad = number.isna() & ~text.str.lower().isin(["", "nan", "null", "na", "n/a"])
        if bad.any():
            line = int(np.flatnonzero(bad)[0]) + 2
            raise Rejected(
                "non_numeric",
                f"line {line}: {match.columns[channel]} {text.iloc[line - 2]!r} is not a number",
                [line],
                text.iloc[line - 2],
            )
        values[channel] = number

    times = _parse_times(table[match.columns["timestamp"]].str.strip(), meters, timezone_for)
    steps = check_sequence(
        times, meters, values, pd.Timedelta(minutes=fmt.default_interval_minutes)
    )
    wide = values.assign(meter_id=meters, interval_start=times, interval_seconds=steps)
    wide = wide.drop_duplicates(subset=["meter_id", "interval_start"])
    long = wide.melt(
        id_vars=["meter_id", "interval_start", "interval_seconds"],
        value_vars=channels,
        var_name="channel",
        value_name="value",
    )
    long = long.dropna(subset=["value"])  # blank / NaN / Null is a gap, never a zero
    return long.sort_values(["meter_id", "interval_start", "channel"], ignore_index=True)
