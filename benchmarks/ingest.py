"""Ingest throughput: the platform's file ingest vs a bare COPY vs pandas `to_sql`, in one run.

    .venv/bin/python benchmarks/ingest.py [--meters 100] [--intervals 5000]

Generates one feeder-meter file (a `Meter` column, 15-minute rows, 4 channels), then on a fresh
database of the embedded server (or of `ENERGY_DATABASE_URL`'s server):
- ingest: the whole path a dropped file takes (read, detect, validate, COPY, commit, archive);
- bare COPY: the same long rows, already formatted in memory, COPYed into `raw.readings`;
- to_sql: pandas `to_sql` (method="multi") of a slice of the same rows into a plain table.
Rows are long rows (meter x interval x channel). Prints a table and writes benchmarks/results/.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
from sqlalchemy import create_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import free_port, write_results  # noqa: E402
from energy_assets.ingest.loader import CHUNK_ROWS, Ingest  # noqa: E402
from energy_assets.ingest.raw_tables import READING_COLUMNS, ensure_month_partitions  # noqa: E402
from energy_assets.months import months_of  # noqa: E402
from energy_assets.settings import Settings  # noqa: E402
from energy_assets.warehouse.database import apply_schema, csv_bytes  # noqa: E402
from energy_assets.warehouse.postgres import (  # noqa: E402
    EmbeddedPostgres,
    ensure_database,
    sqlalchemy_url,
    with_database,
)


def generate(path: Path, meters: int, intervals: int) -> int:
    rng = np.random.default_rng(0)
    times = pd.date_range("2024-01-01", periods=intervals, freq="15min")
    frame = pd.DataFrame(
        {
            "Meter": np.repeat([f"M{i:04d}" for i in range(meters)], intervals),
            "Start Time": np.tile(times.strftime("%Y-%m-%d %H:%M:%S"), meters),
            "kW del": rng.uniform(0, 500, meters * intervals).round(3),
            "kW rec": rng.uniform(0, 50, meters * intervals).round(3),
            "kVA del": rng.uniform(0, 520, meters * intervals).round(3),
            "kVA rec": rng.uniform(0, 55, meters * intervals).round(3),
        }
    )
    frame.to_csv(path, index=False)
    return len(frame) * 4


def long_rows(path: Path) -> pd.DataFrame:
    wide = pd.read_csv(path)
    long = wide.melt(id_vars=["Meter", "Start Time"], var_name="channel", value_name="value")
    return pd.DataFrame(
        {
            "meter_id": long["Meter"],
            "interval_start": pd.to_datetime(long["Start Time"]).dt.tz_localize("UTC"),
            "interval_seconds": np.int32(900),
            "channel": long["channel"].str.lower().str.replace(" ", "_"),
            "value": long["value"],
        }
    )


def fresh_database(server_url: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    ensure_database(server_url, name)
    warehouse_url = with_database(server_url, name)
    apply_schema(warehouse_url)
    return warehouse_url


def measure(server_url: str, work: Path, meters: int, intervals: int, to_sql_rows: int) -> dict:
    source = work / "M_bench.csv"
    rows = generate(source, meters, intervals)
    print(f"generated {source.stat().st_size / 1e6:.0f} MB, {rows:,} long rows", flush=True)
    results = {}

    url = fresh_database(server_url)
    home = work / "home"
    # A fresh interpreter, so its peak memory is the ingest's own, not the generator's.
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        seconds, ingest_rss_mb, loaded, archived = pool.submit(
            timed_ingest, str(home), url, str(source)
        ).result()
    assert loaded == rows, (loaded, rows)
    results["ingest"] = seconds

    long = long_rows(archived)
    url = fresh_database(server_url)
    payload = csv_bytes(long[READING_COLUMNS].assign(file_id=1))
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        ensure_month_partitions(psycopg2.connect(url), months_of(long["interval_start"]))
        start = time.perf_counter()
        cur.copy_expert(
            "copy raw.readings (meter_id, interval_start, interval_seconds, channel, value,"
            " file_id) from stdin with (format csv)",
            io.BytesIO(payload),
        )
    results["bare_copy"] = time.perf_counter() - start
    conn.close()

    engine = create_engine(sqlalchemy_url(url))
    part = long.head(to_sql_rows)
    start = time.perf_counter()
    part.to_sql(
        "to_sql_bench", engine, schema="public", index=False, method="multi", chunksize=10_000
    )
    results["to_sql"] = time.perf_counter() - start
    engine.dispose()

    rates = {
        "ingest": rows / results["ingest"],
        "bare_copy": rows / results["bare_copy"],
        "to_sql": len(part) / results["to_sql"],
    }
    return {
        "rows": rows,
        "to_sql_rows": len(part),
        "seconds": results,
        "rows_per_s": rates,
        "file_mb": round(archived.stat().st_size / 1e6),
        "ingest_peak_rss_mb": ingest_rss_mb,
    }


def timed_ingest(home: str, url: str, source: str) -> tuple[float, int, int, Path]:
    settings = Settings.from_env().with_home(Path(home))
    settings.ensure_dirs()
    dropped = settings.dropbox / Path(source).name
    Path(source).rename(dropped)
    with Ingest(settings, url) as ingest:
        start = time.perf_counter()
        outcome = ingest.ingest_file(dropped)
        seconds = time.perf_counter() - start
    assert outcome is not None and outcome.status == "loaded", outcome
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return seconds, peak, outcome.rows, outcome.stored_as


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=100)
    parser.add_argument("--intervals", type=int, default=5000)
    parser.add_argument("--to-sql-rows", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="energy-bench-") as tmp:
        work = Path(tmp)
        server_url = os.environ.get("ENERGY_DATABASE_URL")
        server = None
        if server_url:
            server_url = with_database(server_url, "postgres")
        else:
            server = EmbeddedPostgres(work / "pgdata", free_port())
            server_url = server.url("postgres", port=server.start())
        try:
            result = measure(server_url, work, args.meters, args.intervals, args.to_sql_rows)
        finally:
            if server:
                server.stop()
    rates = result["rows_per_s"]
    print(f"\n{'path':<12}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'vs COPY':>9}")
    for path in ("ingest", "bare_copy", "to_sql"):
        rows = result["to_sql_rows"] if path == "to_sql" else result["rows"]
        print(
            f"{path:<12}{rows:>12,}{result['seconds'][path]:>10.2f}{rates[path]:>12,.0f}"
            f"{rates[path] / rates['bare_copy']:>9.0%}"
        )
    print(
        f"ingest peak RSS: {result['ingest_peak_rss_mb']} MB for a {result['file_mb']} MB file"
        f" (chunks of {CHUNK_ROWS:,} rows)"
    )
    write_results("ingest", {**result, "ingest_vs_copy": rates["ingest"] / rates["bare_copy"]})


if __name__ == "__main__":
    main()
