"""The warehouse database: connections, the platform's own DDL, frames in and out.

Plain functions over connections, no Dagster. Bulk writes go through COPY (`copy_frame`);
reads come back as DataFrames (`read_frame`) in a transaction of their own, so a long
computation after a read holds no lock that would block a rebuild.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from typing import BinaryIO

import pandas as pd
import psycopg2
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from energy_assets.settings import SQL_DIR, PlatformError

# Advisory lock keys (one server may hold several platforms' databases; the keys are per database).
SCHEMA_LOCK = 7_310_001
"""Applying `sql/*.sql` and creating month partitions (raw.readings, ml.anomalies)."""
RELATIONS_LOCK = 7_310_002
"""Creating the mart relations before runs may go in parallel."""
DAGSTER_ACL_LOCK = 7_310_003
"""Changing the privileges of Dagster's storage database."""
FINDINGS_LOCK = 7_310_004
"""Replacing one month's anomaly findings (with the month's ordinal as the second key)."""

Params = Sequence | Mapping | None
TIMESTAMP = pa.timestamp("us", tz="UTC")
"""A timestamptz column's Arrow type for `read_arrow`."""


def connect(url: str) -> connection:
    return psycopg2.connect(url, application_name="energy_assets")


SCHEMA_APPLIED = "applied from sql files "  # + their digest: the raw schema's comment
SCHEMA_LOCK_TIMEOUT = "30s"
"""How long an upgrade of the schema waits for a lock before it fails, naming who holds it."""


class SchemaLocked(PlatformError):
    """The platform's DDL changed, and other sessions hold the tables it has to alter."""


def apply_schema(url: str) -> None:
    """Run every `sql/*.sql` file in name order (each is idempotent) when they changed since
    they were last applied here.

    Unchanged files are not run again: `alter table ... add column if not exists` takes an
    exclusive lock even when the column exists, and would wait behind any analyst's open
    transaction on the raw tables, forever, at every start. Changed files wait at most
    SCHEMA_LOCK_TIMEOUT, then fail naming the sessions in the way.
    """
    scripts = [p.read_text(encoding="utf-8") for p in sorted(SQL_DIR.glob("*.sql"))]
    digest = hashlib.sha256("".join(scripts).encode()).hexdigest()[:16]
    conn = connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            cur.execute("select obj_description(to_regnamespace('raw'), 'pg_namespace')")
            if cur.fetchone()[0] == SCHEMA_APPLIED + digest:
                return
            cur.execute("select set_config('lock_timeout', %s, true)", (SCHEMA_LOCK_TIMEOUT,))
            for script in scripts:
                cur.execute(script)
            cur.execute(
                sql.SQL("comment on schema raw is {}").format(sql.Literal(SCHEMA_APPLIED + digest))
            )
    except psycopg2.errors.LockNotAvailable as exc:
        raise SchemaLocked(
            f"the platform's tables could not be upgraded within {SCHEMA_LOCK_TIMEOUT}: other"
            f" sessions hold them ({_lock_holders(conn)}); end those transactions and start"
            " again"
        ) from exc
    finally:
        conn.close()


def _lock_holders(conn: connection) -> str:
    """The sessions that hold locks on tables of the platform's own schemas."""
    with conn, conn.cursor() as cur:
        cur.execute(
            """select string_agg(distinct format('pid %s, %s, %s', a.pid, a.usename, a.state), '; ')
            from pg_locks l join pg_stat_activity a on a.pid = l.pid
            join pg_class c on c.oid = l.relation join pg_namespace n on n.oid = c.relnamespace
            where l.granted and l.pid <> pg_backend_pid() and n.nspname in ('raw', 'ml')"""
        )
        return cur.fetchone()[0] or "none left"


def read_frame(conn: connection, query: str, params: Params = None) -> pd.DataFrame:
    """The rows of `query` as a DataFrame, read in a transaction that ends with the read."""
    with conn, conn.cursor() as cur:
        cur.execute(query, params)
        return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def copy_out(cur: cursor, query: str, params: Params, out: BinaryIO) -> None:
    """The rows of `query` (its parameters bound by psycopg2) as CSV with a header into `out`,
    streamed by `COPY ... TO STDOUT`."""
    select = cur.mogrify(query, params)
    cur.copy_expert(b"copy (" + select + b") to stdout with (format csv, header)", out)


def read_arrow(
    conn: connection, query: str, params: Params, types: Mapping[str, pa.DataType]
) -> pd.DataFrame:
    """The rows of `query` as a DataFrame of the columns' Arrow `types` (times in UTC), streamed
    by COPY as CSV and parsed by Arrow, in a transaction that ends with the read.

    For reads of millions of rows: `read_frame` makes a tuple and Python objects of every row,
    about four times slower on a month of meter intervals, and larger in memory.
    """
    buffer = io.BytesIO()
    with conn, conn.cursor() as cur:
        cur.execute("set local timezone = 'UTC'")
        copy_out(cur, query, params, buffer)
    buffer.seek(0)
    # In PostgreSQL's CSV a null is an unquoted empty field and an empty text is "".
    options = pacsv.ConvertOptions(
        column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False
    )
    return pacsv.read_csv(buffer, convert_options=options).to_pandas()


def meter_timezones(cur: cursor) -> dict[str, str]:
    """Each meter's own timezone, from its metadata (meters without one are left out), read
    through `cur` so a load sees the metadata of its own transaction."""
    cur.execute("select meter_id, timezone from raw.meters where timezone is not null")
    return dict(cur.fetchall())


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """Frame -> CSV for COPY, written by Arrow's C++ writer (pandas `to_csv` is far slower).

    The table is made of one chunk per column first: Arrow-backed columns (pandas' `str`) keep
    the chunks of the frames they were concatenated from, an empty frame first gives an empty
    first record batch, and for that batch Arrow's writer (without a header, up to at least
    pyarrow 26) emits its unfilled 8 KiB buffer, NUL bytes that COPY refuses.
    """
    frame = frame.assign(
        **{
            col: frame[col].astype("datetime64[us, UTC]")
            for col in frame.columns
            if isinstance(frame[col].dtype, pd.DatetimeTZDtype)
        }
    )
    buffer = io.BytesIO()
    pacsv.write_csv(
        pa.Table.from_pandas(frame, preserve_index=False).combine_chunks(),
        buffer,
        write_options=pacsv.WriteOptions(include_header=False),
    )
    return buffer.getvalue()


def copy_frame(cur, table: str, frame: pd.DataFrame) -> None:
    """COPY `frame` into `table` (a schema-qualified name of ours), columns by frame order."""
    schema, name = table.split(".")
    statement = sql.SQL("copy {}.{} ({}) from stdin with (format csv)").format(
        sql.Identifier(schema),
        sql.Identifier(name),
        sql.SQL(", ").join(map(sql.Identifier, frame.columns)),
    )
    cur.copy_expert(statement.as_string(cur), io.BytesIO(csv_bytes(frame)))
