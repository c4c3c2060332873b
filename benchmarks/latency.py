"""File drop to fresh marts: seconds from a file landing in the dropbox of a running platform
until its month is rebuilt.

    .venv/bin/python benchmarks/latency.py [--drops 5] [--meters 20] [--month-run-concurrency 1]
    .venv/bin/python benchmarks/latency.py --backlog [--meters 20] [--backlog-range-months N]

Starts `energy up` in a temporary ENERGY_HOME (embedded PostgreSQL and the UI on free ports,
ENERGY_FILE_STABLE_SECONDS=1), drops meter metadata and a first month as a warm-up, then drops
one file per new month (`--meters` feeder meters at 30 minutes, moved into the dropbox in one
rename) and measures, per drop: when its rows are complete in `marts.fct_intervals_clean`
(polled every 0.5 s), and when its month run finished (from Dagster's run storage), split into
sensor + queue wait, ingest run, wait for the month run, and the month run. A last drop brings
two new months at once, to show whether month runs overlap under the run queue's limit.

With `--backlog`, after the warm-up a year of new months is dropped at once, and once its
ingest run has queued the year's month runs, a corrected file for the year's third month
(its meters' readings again, 1% higher): measured are the seconds from the correction's drop
until a month run that read it has finished (the correction in the marts), until the whole
backlog has drained, and the order in which the month runs started.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pandas as pd
import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (  # noqa: E402
    BIN,
    free_port,
    median,
    platform_environ,
    table,
    write_results,
)
from benchmarks._data import months_ending, write_feeder_months  # noqa: E402

FIRST = "2024-01"
TERMINAL = ("SUCCESS", "FAILURE")
SPANS = """
select r.pipeline_name, coalesce(r.partition, s.value || '..' || e.value), r.status,
       r.start_time, r.end_time
from runs r
left join run_tags s on s.run_id = r.run_id and s.key = 'dagster/asset_partition_range_start'
left join run_tags e on e.run_id = r.run_id and e.key = 'dagster/asset_partition_range_end'
"""
RUNS = SPANS + "where r.start_time >= %s order by r.start_time"
"""Each run started since a time: job, months (`2024-03`, or `2024-01..2024-11` for a
single-run backfill), status, start and end."""


def span_months(span: str) -> list[str]:
    """The months of a run's span: `2024-03`, or each month of `2024-01..2024-03`."""
    first, _, last = span.partition("..")
    return [str(p) for p in pd.period_range(first[:7], (last or first)[:7], freq="M")]


def wait_for(condition, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            value = condition()
            if value:
                return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def ui_answers(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as answer:
        return answer.status == 200


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    conn = psycopg2.connect(url, connect_timeout=2)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def clean_rows(url: str, month: str) -> int:
    return query(
        url,
        "select count(*) from marts.fct_intervals_clean where interval_start >= %s::date"
        " and interval_start < %s::date + interval '1 month'",
        (month + "-01", month + "-01"),
    )[0][0]


def drop(home: Path, meters: int, months: list[str], metadata: bool = False) -> float:
    """Write the months' files beside the dropbox, then rename them in; returns the drop time."""
    staging = home / "staging"
    write_feeder_months(staging, meters, [months_ending(m, 1)[0] for m in months], meters)
    if not metadata:
        (staging / "meter-data.csv").unlink()
    dropped = time.time()
    for path in sorted(staging.iterdir()):
        os.rename(path, home / "dropbox" / path.name)
    return dropped


def month_runs_done(dagster_url: str, since: float, months: list[str]) -> list[tuple] | None:
    """The runs started since `since`, once a month run for every month has finished.

    A month run that fails in a step after the marts (an ML or plot asset) still finished the
    marts; its status is reported beside the timings.
    """
    runs = query(dagster_url, RUNS, (since - 1,))
    month_runs = [r for r in runs if r[0] == "monthly_marts_job" and r[2] in TERMINAL]
    done = {m for r in month_runs for m in span_months(r[1])}
    return runs if done >= set(months) else None


def idle(dagster_url: str) -> bool:
    """No run queued or in progress (the views run follows the first month run)."""
    finished = (*TERMINAL, "CANCELED")
    return not query(dagster_url, "select 1 from runs where status not in %s", (finished,))


def measure_drop(
    urls: tuple[str, str],
    home: Path,
    meters: int,
    months: list[str],
    expected: dict[str, int],
    metadata: bool = False,
) -> dict:
    warehouse_url, dagster_url = urls
    dropped = drop(home, meters, months, metadata)
    rows_at = wait_for(
        lambda: all(clean_rows(warehouse_url, m) >= expected[m] for m in months) and time.time(),
        600,
        f"rows of {months}",
    )
    runs = wait_for(lambda: month_runs_done(dagster_url, dropped, months), 600, f"runs {months}")
    ingest = next(r for r in runs if r[0] == "ingest_dropbox")
    month = [
        r
        for r in runs
        if r[0] == "monthly_marts_job" and set(span_months(r[1])) & set(months)
        if r[2] in TERMINAL
    ]
    first_month_start = min(r[3] for r in month)
    overlap = len(month) > 1 and month[1][3] < month[0][4]
    return {
        "months": months,
        "rows_visible_s": rows_at - dropped,
        "run_done_s": max(r[4] for r in month) - dropped,
        "to_ingest_start_s": ingest[3] - dropped,
        "ingest_run_s": ingest[4] - ingest[3],
        "to_month_run_start_s": first_month_start - ingest[4],
        "month_run_s": max(r[4] for r in month) - first_month_start,
        "month_runs_overlapped": overlap,
        "month_run_status": [r[2] for r in month],
    }


def corrected(path: Path, factor: float = 1.01) -> Path:
    """A corrected copy of a feeder-month file: the same meters and intervals, values scaled."""
    frame = pd.read_csv(path)
    values = [c for c in frame.columns if c not in ("Start Time", "Meter")]
    frame[values] = frame[values] * factor
    target = path.with_name(path.stem + "-corrected.csv")
    frame.to_csv(target, index=False)
    return target


def ingest_done(dagster_url: str, since: float) -> float | None:
    """When the first ingest run started after `since` finished."""
    runs = [r for r in query(dagster_url, RUNS, (since - 1,)) if r[0] == "ingest_dropbox"]
    return runs[0][4] if runs and runs[0][2] in TERMINAL else None


def measure_backlog(urls: tuple[str, str], home: Path, meters: int, year: list[str]) -> dict:
    """A year dropped at once, then a correction of its third month once the year's month runs
    wait in the queue."""
    _, dagster_url = urls
    dropped = drop(home, meters, year)
    wait_for(lambda: ingest_done(dagster_url, dropped), 600, "the backlog's ingest run")
    wait_for(lambda: month_runs_queued(dagster_url, dropped, year), 120, "the year's month runs")
    month = year[2]
    staging = home / "staging"
    write_feeder_months(staging, meters, months_ending(month, 1), meters)
    (staging / "meter-data.csv").unlink()
    fix = corrected(staging / f"feeders_{month}.csv")
    (staging / f"feeders_{month}.csv").unlink()
    fixed = time.time()
    os.rename(fix, home / "dropbox" / fix.name)
    loaded = wait_for(lambda: ingest_done(dagster_url, fixed), 600, "the correction's ingest")

    def correction_built() -> float | None:
        runs = query(dagster_url, RUNS, (loaded,))
        done = [r[4] for r in runs if r[0] == "monthly_marts_job" and month in span_months(r[1])]
        return min(done) if done and all(done) else None

    built = wait_for(correction_built, 3600, f"{month}'s month run after the correction")
    wait_for(lambda: idle(dagster_url), 3600, "the backlog to drain")
    runs = [r for r in query(dagster_url, RUNS, (dropped,)) if r[0] == "monthly_marts_job"]
    return {
        "months": year,
        "corrected_month": month,
        "correction_to_marts_s": built - fixed,
        "correction_ingest_s": loaded - fixed,
        "backlog_drained_s": max(r[4] for r in runs) - dropped,
        "correction_drop_after_backlog_drop_s": fixed - dropped,
        "month_run_order": [r[1] for r in runs],
        "month_run_status": [r[2] for r in runs],
    }


def month_runs_queued(dagster_url: str, since: float, months: list[str]) -> bool:
    """A month run of each of `months` waiting, or started since `since`."""
    created = query(
        dagster_url,
        SPANS + "where r.pipeline_name = 'monthly_marts_job'"
        " and (r.start_time is null or r.start_time >= %s)",
        (since - 1,),
    )
    return {m for row in created for m in span_months(row[1])} >= set(months)


def report_backlog(args: argparse.Namespace, warm: dict, backlog: dict) -> None:
    print(
        table(
            ["case", "s"],
            [
                [
                    "correction dropped after the year",
                    backlog["correction_drop_after_backlog_drop_s"],
                ],
                ["correction's ingest run done", backlog["correction_ingest_s"]],
                ["correction in the marts", backlog["correction_to_marts_s"]],
                ["year dropped to backlog drained", backlog["backlog_drained_s"]],
            ],
        )
    )
    print(
        f"\n{args.meters} meters x 12 months at 30 min; ENERGY_MONTH_RUN_CONCURRENCY="
        f"{args.month_run_concurrency}; ENERGY_BACKLOG_RANGE_MONTHS "
        f"{'default' if args.backlog_range_months is None else args.backlog_range_months}; "
        f"{backlog['corrected_month']} corrected. Month runs in the"
        f" order they started: {', '.join(backlog['month_run_order'])}"
    )
    write_results(
        "latency_backlog",
        {
            "meters": args.meters,
            "month_run_concurrency": args.month_run_concurrency,
            "backlog_range_months": args.backlog_range_months,
            "warm_up": warm,
            "backlog": backlog,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drops", type=int, default=5)
    parser.add_argument("--meters", type=int, default=20)
    parser.add_argument("--month-run-concurrency", type=int, default=1)
    parser.add_argument(
        "--backlog", action="store_true", help="a year dropped at once, then a correction"
    )
    parser.add_argument(
        "--backlog-range-months",
        type=int,
        default=None,
        help="ENERGY_BACKLOG_RANGE_MONTHS (default: the platform's; 0: a run per month)",
    )
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="energy-latency-"))
    ui_port = free_port()
    env = platform_environ(
        home,
        ENERGY_FILE_STABLE_SECONDS="1",
        ENERGY_MONTH_RUN_CONCURRENCY=str(args.month_run_concurrency),
    )
    if args.backlog_range_months is not None:
        env["ENERGY_BACKLOG_RANGE_MONTHS"] = str(args.backlog_range_months)
    pg_port = env["ENERGY_PG_PORT"]
    passfile = home / "secrets" / "postgres.pgpass"  # written by the platform at initdb
    urls = (
        f"postgresql://postgres@127.0.0.1:{pg_port}/energy?passfile={passfile}",
        f"postgresql://postgres@127.0.0.1:{pg_port}/dagster?passfile={passfile}",
    )
    count = 13 if args.backlog else args.drops + 3
    months = [f"{m:%Y-%m}" for m in pd.date_range(FIRST + "-01", periods=count, freq="MS")]
    expected = {m: args.meters * 48 * months_ending(m, 1)[0].days_in_month for m in months}
    log = open(home / "up.log", "w")  # noqa: SIM115 (open for the life of the platform)
    up = subprocess.Popen(
        [str(BIN / "energy"), "up", "--port", str(ui_port)],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    drops, backlog = [], {}
    try:
        start = time.monotonic()
        wait_for(lambda: ui_answers(ui_port), 180, "the Dagster UI")
        print(f"platform up in {time.monotonic() - start:.0f} s; warm-up drop", flush=True)
        warm = measure_drop(urls, home, args.meters, months[:1], expected, metadata=True)
        wait_for(lambda: idle(urls[1]), 600, "the warm-up's runs (views) to finish")
        if args.backlog:
            backlog = measure_backlog(urls, home, args.meters, months[1:])
        else:
            for i, month in enumerate(months[1 : args.drops + 1], 1):
                drops.append(measure_drop(urls, home, args.meters, [month], expected))
                print(f"drop {i} ({month}): {drops[-1]['run_done_s']:.1f} s", flush=True)
            pair = measure_drop(urls, home, args.meters, months[args.drops + 1 :], expected)
    except BaseException:
        print((home / "up.log").read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        os.killpg(up.pid, signal.SIGINT)
        try:
            up.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(home, ignore_errors=True)

    if args.backlog:
        report_backlog(args, warm, backlog)
        return
    keys = [
        "rows_visible_s",
        "to_ingest_start_s",
        "ingest_run_s",
        "to_month_run_start_s",
        "month_run_s",
        "run_done_s",
    ]

    def row(name: str, d: dict) -> list:
        return [name, *[d[k] for k in keys], "/".join(s.lower() for s in d["month_run_status"])]

    rows = [row(f"drop {i} ({d['months'][0]})", d) for i, d in enumerate(drops, 1)]
    rows.append(["median", *[median([d[k] for d in drops]) for k in keys], ""])
    rows.append(row(f"2 months at once ({', '.join(pair['months'])})", pair))
    print()
    print(
        table(
            [
                "drop",
                "rows in fct_intervals_clean s",
                "sensor+queue s",
                "ingest run s",
                "to month run s",
                "month run s",
                "drop to run done s",
                "month run",
            ],
            rows,
        )
    )
    print(
        f"\n{args.meters} meters x 1 month at 30 min per drop; ENERGY_MONTH_RUN_CONCURRENCY="
        f"{args.month_run_concurrency}: the two month runs "
        f"{'overlapped' if pair['month_runs_overlapped'] else 'ran one after the other'}"
    )
    write_results(
        "latency",
        {
            "meters": args.meters,
            "month_run_concurrency": args.month_run_concurrency,
            "backlog_range_months": args.backlog_range_months,
            "warm_up": warm,
            "drops": drops,
            "two_months": pair,
            "median": {k: median([d[k] for d in drops]) for k in keys},
        },
    )


if __name__ == "__main__":
    main()
