"""CSV exports of the marts in the seed toolkit's layouts (`lp/north.csv`, `lp/all.csv`,
`_gaps.csv`), streamed by PostgreSQL's `COPY ... TO STDOUT`: rows never sit in Python memory.
Text cells a spreadsheet would run as a formula are neutralised in the SELECT itself. The
load profiles end with `Estimated`: how many meters' values in the interval were estimated.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import BinaryIO

import psycopg2.errors

from energy_assets.months import next_month
from energy_assets.warehouse.database import connect, copy_out

EXPORTS = ("feeder", "system", "customer", "gaps")
_LISTED = 20  # known names shown in an error message


def _utc(column: str) -> str:
    return f"""to_char({column} at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS"+00"')"""


def _text(column: str) -> str:
    """A text column (an id, a name) as a cell no spreadsheet runs: one that starts with =, +,
    -, @, tab or carriage return gets a leading ' (OWASP's rule against CSV injection).
    Numbers never pass through here, so -3.5 stays a number."""
    return (
        f"case when left({column}, 1) in ('=', '+', '-', '@', chr(9), chr(13))"
        f" then '''' || {column} else {column} end"
    )


_RANGE = "interval_start >= %(start)s and interval_start < %(end)s"
_SELECTS = {  # kind -> SELECT with bound %(name)s, %(start)s, %(end)s
    "feeder": f"""
        select {_utc("interval_start")} as "Start Time", mw_del as "MW_del", mw_rec as "MW_rec",
            mva_del as "MVA_del", mva_rec as "MVA_rec", mw_net as "MW_net",
            mva_net as "MVA_net", pf_net as "PF_net", meters_estimated as "Estimated"
        from marts.fct_feeder_intervals
        where feeder = %(name)s and {_RANGE}
        order by interval_start""",
    "system": f"""
        select {_utc("interval_start")} as "Start Time", mw_total as "MW_total",
            mva_total as "MVA_total", pf_total as "PF_total", mw_total as "MW_net",
            meters_estimated as "Estimated"
        from marts.fct_system_intervals
        where {_RANGE}
        order by interval_start""",
    "customer": f"""
        select {_utc("interval_start")} as "Start Time", sum(demand_kw) as "kW",
            count(*) filter (where quality = 'estimated') as "Estimated"
        from marts.fct_intervals_clean
        where meter_id in (
                select unnest(meter_ids) from marts.dim_customer where customer_id = %(name)s
            ) and {_RANGE}
        group by interval_start
        order by interval_start""",
    "gaps": f"""
        select {_text("meter_id")} as meter_id, {_utc("gap_start")} as gap_start,
            {_utc("gap_end")} as gap_end, missing_intervals
        from marts.fct_gaps
        where (%(name)s is null or meter_id = %(name)s)
          and gap_start < %(end)s and gap_end > %(start)s
        order by fct_gaps.meter_id, fct_gaps.gap_start""",
}
_NAMES = {  # kind -> (what the name is, name required, SQL of the known names)
    "feeder": ("feeder", True, "select feeder from marts.dim_feeder"),
    "customer": ("customer", True, "select customer_id from marts.dim_customer"),
    "gaps": ("meter", False, "select meter_id from marts.dim_meter"),
}


def export_csv(
    warehouse_url: str,
    kind: str,
    out: BinaryIO,
    *,
    name: str | None = None,
    first_month: date,
    last_month: date,
) -> int:
    """Write the `kind` export (one of `EXPORTS`) for the months `first_month`..`last_month`
    (UTC, both included) as CSV with a header to `out`; return the rows written.

    `name` is the feeder (case-insensitive), the customer id (of `marts.dim_customer`: a meter
    on no feeder without a customer is its own customer) or, for `gaps`, an optional meter id.
    Raises `ValueError` for an unknown kind or name, naming the known ones.
    """
    if kind not in _SELECTS:
        raise ValueError(f"unknown export {kind!r}; known exports: {', '.join(EXPORTS)}")
    start = datetime(first_month.year, first_month.month, 1, tzinfo=UTC)
    end_month = next_month(date(last_month.year, last_month.month, 1))
    end = datetime(end_month.year, end_month.month, 1, tzinfo=UTC)
    if end <= start:
        raise ValueError(f"last month {last_month:%Y-%m} is before first month {start:%Y-%m}")
    conn = connect(warehouse_url)
    try:
        conn.set_session(readonly=True)
        with conn, conn.cursor() as cur:
            if kind in _NAMES:
                name = _resolve(cur, kind, name)
            elif name is not None:
                raise ValueError(f"the {kind} export takes no name (got {name!r})")
            copy_out(cur, _SELECTS[kind], {"name": name, "start": start, "end": end}, out)
            return cur.rowcount
    except psycopg2.errors.UndefinedTable as exc:
        raise ValueError(f"the marts are not built yet (run `energy run`): {exc}") from exc
    finally:
        conn.close()


def _resolve(cur, kind: str, name: str | None) -> str | None:
    """The known name that `name` stands for; ValueError listing the known names if none."""
    label, required, known = _NAMES[kind]
    if name is None and not required:
        return None
    if name is not None:
        match = "lower(n) = lower(%(name)s)" if kind == "feeder" else "n = %(name)s"
        cur.execute(
            f"select n from ({known}) as known (n) where {match} order by n = %(name)s desc, n"
            " limit 1",
            {"name": name},
        )
        row = cur.fetchone()
        if row is not None:
            return row[0]
    cur.execute(
        f"select n, count(*) over () from ({known}) as known (n) order by n limit %s", (_LISTED,)
    )
    rows = cur.fetchall()
    listed = ", ".join(str(n) for n, _ in rows) or "none"
    if rows and rows[0][1] > len(rows):
        listed += f", ... ({rows[0][1]} in all)"
    problem = f"unknown {label} {name!r}" if name is not None else f"the {kind} export needs a name"
    raise ValueError(f"{problem}; known {label}s: {listed}")
