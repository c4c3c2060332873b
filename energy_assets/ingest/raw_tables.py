"""The raw tables ingest writes: month partitions, bulk loads of readings, meter metadata.

Plain functions over a cursor or connection, no Dagster; the DDL itself is `sql/001_raw.sql`.
"""

from __future__ import annotations

import io
import re
import struct
import time
from collections.abc import Iterable
from datetime import date, datetime

import numpy as np
import pandas as pd
import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection
from psycopg2.extras import Json, execute_values

from energy_assets.ingest.formats import METER_FIELDS
from energy_assets.ingest.rejections import Rejected
from energy_assets.months import next_month
from energy_assets.warehouse.database import SCHEMA_LOCK, copy_frame

LOCK_RETRY_SECONDS = 1


def ensure_month_partitions(conn: connection, months: Iterable[date]) -> None:
    """Create the `raw.readings` partitions of `months` that are missing.

    Creating a partition locks raw.readings exclusively: it waits for every open load and
    queues every reader behind it. So the loader creates partitions before a file's transaction
    starts, never inside one (the lock would wait on that very transaction forever), and asks
    for the lock a second at a time, letting readers through between attempts, while another
    process's load holds it.
    """
    while missing := sorted(set(months) - partition_months(conn)):
        try:
            with conn, conn.cursor() as cur:
                cur.execute("set local lock_timeout = %s", (f"{LOCK_RETRY_SECONDS}s",))
                cur.execute("select pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                for month in missing:
                    cur.execute(
                        sql.SQL(
                            "create table if not exists raw.{} partition of raw.readings "
                            "for values from (%s) to (%s)"
                        ).format(sql.Identifier(f"readings_{month:%Y_%m}")),
                        (f"{month} 00:00+00", f"{next_month(month)} 00:00+00"),
                    )
        except psycopg2.errors.LockNotAvailable:
            time.sleep(LOCK_RETRY_SECONDS)


def partition_months(conn: connection) -> set[date]:
    """The months that have a partition of `raw.readings` (named `readings_YYYY_MM`)."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid"
            " where i.inhparent = 'raw.readings'::regclass"
        )
        names = [_PARTITION_NAME.fullmatch(row[0]) for row in cur.fetchall()]
    return {date(int(m[1]), int(m[2]), 1) for m in names if m}


_PARTITION_NAME = re.compile(r"readings_(\d{4})_(\d{2})")


READING_COLUMNS = ["meter_id", "interval_start", "interval_seconds", "channel", "value"]
_PG_EPOCH_NS = 946_684_800 * 10**9  # 2000-01-01 UTC, the origin of binary timestamps
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_BINARY_TRAILER = struct.pack("!h", -1)


def readings_copy_binary(readings: pd.DataFrame, file_id: int) -> bytes:
    """Long-form readings in PostgreSQL's binary COPY format, built with numpy.

    Rows are laid out per (meter, channel) group, where every field has a fixed width, so each
    group is one numpy record array: no per-row Python, no text formatting or parsing.
    """
    meter = pd.Categorical(readings["meter_id"])
    channel = pd.Categorical(readings["channel"])
    micros = (readings["interval_start"].array.asi8 - _PG_EPOCH_NS) // 1000
    seconds = readings["interval_seconds"].to_numpy()
    values = readings["value"].to_numpy(dtype="float64")
    group = meter.codes.astype("int64") * len(channel.categories) + channel.codes
    order = np.argsort(group, kind="stable")
    bounds = np.r_[0, np.flatnonzero(np.diff(group[order])) + 1, len(order)]
    parts = [_BINARY_HEADER]
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        rows = order[start:end]
        meter_id = str(meter.categories[meter.codes[rows[0]]]).encode()
        channel_name = str(channel.categories[channel.codes[rows[0]]]).encode()
        record = np.empty(
            len(rows),
            dtype=[
                ("fields", ">i2"),
                ("meter_len", ">i4"),
                ("meter", f"S{len(meter_id)}"),
                ("ts_len", ">i4"),
                ("ts", ">i8"),
                ("seconds_len", ">i4"),
                ("seconds", ">i4"),
                ("channel_len", ">i4"),
                ("channel", f"S{len(channel_name)}"),
                ("value_len", ">i4"),
                ("value", ">f8"),
                ("file_len", ">i4"),
                ("file_id", ">i8"),
            ],
        )
        record["fields"] = 6
        record["meter_len"], record["meter"] = len(meter_id), meter_id
        record["ts_len"], record["ts"] = 8, micros[rows]
        record["seconds_len"], record["seconds"] = 4, seconds[rows]
        record["channel_len"], record["channel"] = len(channel_name), channel_name
        record["value_len"], record["value"] = 8, values[rows]
        record["file_len"], record["file_id"] = 8, file_id
        parts.append(record.tobytes())
    parts.append(_BINARY_TRAILER)
    return b"".join(parts)


def copy_readings(cur, readings: pd.DataFrame, file_id: int) -> None:
    """Bulk-load long-form readings with a binary COPY."""
    cur.copy_expert(
        "copy raw.readings (meter_id, interval_start, interval_seconds, channel, value, file_id)"
        " from stdin with (format binary)",
        io.BytesIO(readings_copy_binary(readings, file_id)),
    )


def meter_spans(cur, meter_ids: list[str]) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    """First and last interval already loaded per meter."""
    cur.execute(
        "select meter_id, min(first_interval), max(last_interval) from raw.file_meters"
        " where meter_id = any(%s) group by meter_id",
        (meter_ids,),
    )
    return {m: (pd.Timestamp(a), pd.Timestamp(b)) for m, a, b in cur.fetchall()}


def _rows(cur) -> list[dict]:
    return [dict(zip([c.name for c in cur.description], row, strict=True)) for row in cur]


_FILE_COLUMNS = "file_id, name, status, format, rows, months, rule, reason, stored_as"


def pending_file(cur, sha: str, name: str) -> dict | None:
    """The committed row of these bytes under this name whose move was never done, if any."""
    cur.execute(
        f"select {_FILE_COLUMNS} from raw.files where sha256 = %s and name = %s and pending_move"
        " order by file_id desc limit 1",
        (sha, name),
    )
    rows = _rows(cur)
    return rows[0] if rows else None


def pending_files(cur) -> list[dict]:
    """Every row whose move has not been marked done."""
    cur.execute(
        "select file_id, name, sha256, status, stored_as, archive_id from raw.files"
        " where pending_move order by file_id"
    )
    return _rows(cur)


def loaded_copy(cur, sha: str, name_meter: str | None) -> tuple[int, str] | None:
    """(file_id, name) of a loaded file with these bytes that makes a new copy a duplicate.

    A file whose meter comes from its name (`name_meter`) is a duplicate only of one naming
    the same meter: the same bytes under another meter's name are that meter's readings.
    """
    cur.execute(
        "select file_id, name from raw.files where sha256 = %s and status = 'loaded'"
        " and (name_meter is null or name_meter = %s) order by file_id limit 1",
        (sha, name_meter),
    )
    return cur.fetchone()


def names_stored(cur, stored_as: str) -> bool:
    """Whether a row names this path as where its file is (or is to be) stored."""
    cur.execute("select exists (select from raw.files where stored_as = %s)", (stored_as,))
    return cur.fetchone()[0]


def stored_members(cur, archive_id: int) -> set[str]:
    """Names of the members of an archive that already have their row and are stored."""
    cur.execute(
        "select member from raw.files where archive_id = %s and not pending_move", (archive_id,)
    )
    return {row[0] for row in cur.fetchall()}


def reason_details(cur, file_id: int) -> dict:
    """What a quarantined file's `.reason.json` says, from its row."""
    cur.execute(
        "select name as file, file_id, sha256, rule, reason as message, lines, sample"
        " from raw.files where file_id = %s",
        (file_id,),
    )
    return _rows(cur)[0]


def misread_local_times(cur, meters: list[str], default_timezone: str) -> list[dict]:
    """Per file and meter of `meters`: local times read in a zone that is not the meter's now.

    With the file's name, hash and stored copy (a member's archive and its format), and the
    span of the meter's readings in it.
    """
    cur.execute(
        "select f.file_id, f.name, f.sha256, f.stored_as, f.member, a.format as archive_format,"
        " fm.meter_id, fm.local_timezone, fm.first_interval, fm.last_interval"
        " from raw.file_meters fm join raw.files f using (file_id)"
        " left join raw.files a on a.file_id = f.archive_id"
        " left join raw.meters m on m.meter_id = fm.meter_id"
        " where fm.meter_id = any(%s) and fm.local_timezone is not null"
        " and fm.local_timezone <> coalesce(m.timezone, %s)"
        " order by f.file_id, fm.meter_id",
        (meters, default_timezone),
    )
    return _rows(cur)


def delete_readings(cur, file_id: int, spans: list[dict]) -> None:
    """Delete a file's readings of some meters (each within its span, so the index serves)."""
    for span in spans:
        cur.execute(
            "delete from raw.readings where file_id = %s and meter_id = %s"
            " and interval_start between %s and %s",
            (file_id, span["meter_id"], span["first_interval"], span["last_interval"]),
        )


def update_file_meters(cur, file_id: int, summary: pd.DataFrame, zones: dict[str, str]) -> None:
    """A file's meters read again: their span, interval, rows and zone, and the file's span."""
    for meter, r in summary.iterrows():
        cur.execute(
            "update raw.file_meters set (interval_seconds, first_interval, last_interval, rows,"
            " local_timezone) = (%s, %s, %s, %s, %s) where file_id = %s and meter_id = %s",
            (
                int(r.interval_seconds),
                r.first_interval,
                r.last_interval,
                int(r.rows),
                zones.get(meter),
                file_id,
                meter,
            ),
        )
    cur.execute(
        "update raw.files f set (first_interval, last_interval) = (select min(first_interval),"
        " max(last_interval) from raw.file_meters where file_id = f.file_id) where file_id = %s",
        (file_id,),
    )


WEATHER_COLUMNS = [
    "site_id",
    "observed_at",
    "variable",
    "value",
    "file_id",
    "kind",
    "issued_at",
    "source",
]


def upsert_weather(cur, frames: Iterable[pd.DataFrame]) -> None:
    """Weather rows (raw.weather's columns; kind, issued_at and source optional), frame by frame
    through COPY into a temporary table, then into raw.weather: a later value for the same site,
    variable, hour, kind and issue time replaces the earlier one."""
    cur.execute(
        "create temporary table weather_load (like raw.weather including defaults) on commit drop"
    )
    for frame in frames:
        copy_frame(cur, "pg_temp.weather_load", frame[[c for c in WEATHER_COLUMNS if c in frame]])
    columns = ", ".join(WEATHER_COLUMNS)
    cur.execute(
        f"insert into raw.weather ({columns}) select distinct on (site_id, variable, observed_at,"
        f" kind, issued_at) {columns} from weather_load"
        " order by site_id, variable, observed_at, kind, issued_at"
        " on conflict (site_id, variable, observed_at, kind,"
        " coalesce(issued_at, '-infinity'::timestamptz))"
        " do update set value = excluded.value, file_id = excluded.file_id,"
        " source = excluded.source"
    )
    cur.execute("drop table weather_load")


def check_file_duplicates(cur, file_id: int) -> None:
    """Conflicting duplicates inside one file, found in the database (unsorted large files)."""
    cur.execute(
        "select meter_id, channel, interval_start from raw.readings where file_id = %s"
        " group by 1, 2, 3 having count(distinct value) > 1 limit 1",
        (file_id,),
    )
    clash = cur.fetchone()
    if clash is not None:
        meter, channel, when = clash
        raise Rejected(
            "conflicting_duplicate",
            f"meter {meter}: {when} appears more than once with different {channel} values",
            sample=str(when),
        )


def upsert_meters(cur, meters: pd.DataFrame, file_id: int) -> list[str]:
    """Insert or update meter metadata; return the meters that are new or changed."""
    fields = [f for f in METER_FIELDS if f in meters]
    has_attributes = "attributes" in meters
    columns = [*fields, *(["attributes"] if has_attributes else []), "file_id"]
    join = sql.SQL(", ").join
    excluded = [sql.SQL("excluded.{}").format(sql.Identifier(c)) for c in columns]
    if has_attributes:  # attributes accumulate across files
        excluded[len(fields)] = sql.SQL("raw.meters.attributes || excluded.attributes")
    statement = sql.SQL(
        "insert into raw.meters (meter_id, {cols}) values %s on conflict (meter_id)"
        " do update set ({cols}) = row({new}), updated_at = now()"
        " where ({old_fields}) is distinct from ({new_fields}) returning meter_id"
    ).format(
        cols=join(map(sql.Identifier, columns)),
        new=join(excluded),
        old_fields=join(sql.SQL("raw.meters.{}").format(sql.Identifier(f)) for f in columns[:-1]),
        new_fields=join(excluded[:-1]),
    )
    rows = [
        (*(_sql_value(v) for v in row), file_id)
        for row in meters[["meter_id", *columns[:-1]]].itertuples(index=False)
    ]
    changed = execute_values(cur, statement.as_string(cur), rows, fetch=True)
    return [row[0] for row in changed]


def upsert_meter_attributes(cur, attributes: dict[str, dict[str, str]], file_id: int) -> None:
    """Fields a readings file carries about its meters (customer, tariff) fill in metadata
    without overwriting what a metadata file said."""
    rows = []
    for meter, values in attributes.items():
        known = {k: v for k, v in values.items() if k in METER_FIELDS}
        extra = {k: v for k, v in values.items() if k not in METER_FIELDS}
        rows.append((meter, known.get("customer_id"), known.get("tariff"), Json(extra), file_id))
    if rows:
        execute_values(
            cur,
            "insert into raw.meters (meter_id, customer_id, tariff, attributes, file_id)"
            " values %s on conflict (meter_id) do update set"
            " customer_id = coalesce(raw.meters.customer_id, excluded.customer_id),"
            " tariff = coalesce(raw.meters.tariff, excluded.tariff),"
            " attributes = excluded.attributes || raw.meters.attributes",
            rows,
        )


def _sql_value(value):
    if isinstance(value, dict):
        return Json(value)
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def loaded_months(
    conn: connection, after_file_id: int, also: list[int]
) -> tuple[list[date], int, list[int]]:
    """Months touched by the loaded files among those after `after_file_id` and those of `also`;
    the newest file id seen, and the ids found."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "select coalesce(max(file_id), %s), coalesce(array_agg(distinct file_id), '{}'),"
            " coalesce(array_agg(distinct m order by m)"
            "   filter (where status = 'loaded' and m is not null), '{}')"
            " from raw.files left join lateral unnest(months) m on true"
            " where file_id > %s or file_id = any(%s::bigint[])",
            (after_file_id, after_file_id, also),
        )
        last, found, months = cur.fetchone()
    return months, last, found


def corrected_months(conn: connection, file_ids: list[int]) -> set[date]:
    """The months in which the loaded files among `file_ids` carry readings of a meter over
    intervals an earlier loaded file already covered: corrections, not new history."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "select distinct m from raw.file_meters f"
            " join raw.files ff on ff.file_id = f.file_id and ff.status = 'loaded'"
            " join raw.file_meters e on e.meter_id = f.meter_id and e.file_id < f.file_id"
            "  and e.first_interval <= f.last_interval and f.first_interval <= e.last_interval"
            " join raw.files ef on ef.file_id = e.file_id and ef.status = 'loaded'"
            " cross join lateral unnest(ff.months) m"
            " where f.file_id = any(%s::bigint[])"
            "  and m >= date_trunc('month',"
            "   greatest(f.first_interval, e.first_interval) at time zone 'UTC')::date"
            "  and m <= date_trunc('month',"
            "   least(f.last_interval, e.last_interval) at time zone 'UTC')::date",
            (file_ids,),
        )
        return {row[0] for row in cur.fetchall()}


def month_load_times(conn: connection) -> dict[date, datetime]:
    """When the newest file touching each month loaded (readings, or metadata of its meters)."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "select m, max(processed_at) from raw.files cross join unnest(months) m"
            " where status = 'loaded' group by m"
        )
        return dict(cur.fetchall())
