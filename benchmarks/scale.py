"""The platform at LCL scale: households x months of half-hourly readings through `energy run`.

    .venv/bin/python benchmarks/scale.py [--households 500] [--months 12] [--max-concurrent N]
        [--keep DIR]

Generates LCL-shaped files (blocks of 50 households, `LCLid,tstp,energy(kWh/hh)`, plus the
household table) in a temporary ENERGY_HOME, runs `energy run` on them (embedded PostgreSQL on
a free port) and reports, from Dagster's event log, seconds and readings per second of each
stage: ingest, the dbt marts of the month range (and each model), and every Python asset step
of the monthly job (segments, plots, forecast backtest, anomalies), the views and the live
forecast; plus peak memory of the
`energy run` process tree and of PostgreSQL. `--max-concurrent` sets ENERGY_MAX_CONCURRENT
(the monthly job's steps in processes of their own, that many at once).

    .venv/bin/python benchmarks/scale.py --extrapolate results/scale_100.json \
        results/scale_500.json [--to 167e6] --output scale_extrapolation

fits a line per stage through runs at several sizes (`--output scale_<n>` names each run's
JSON) and reads it at `--to` readings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (  # noqa: E402
    BIN,
    PeakMemory,
    model_seconds,
    platform_environ,
    step_windows,
    table,
    use_environ,
    write_results,
)
from benchmarks._data import write_lcl  # noqa: E402

FIRST_MONTH = "2013-01"
SIZES = """
select
    (select count(*) from marts.fct_intervals_clean) as clean_rows,
    pg_database_size(current_database()) / 1e6 as database_mb,
    (select sum(pg_total_relation_size(relid)) from pg_partition_tree('raw.readings')) / 1e6
        as raw_readings_mb,
    (select sum(pg_total_relation_size(c.oid)) from pg_class c
     join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'marts' and c.relkind = 'r') / 1e6 as marts_mb
"""
STAGES = {
    "ingest_dropbox": "ingest",
    "monthly_marts_job": "month range",
    "unpartitioned_marts_job": "views",
    "day_ahead_job": "day-ahead forecast",
}


def run_stages(settings, memory: PeakMemory) -> tuple[list[dict], dict[str, float], dict]:
    """Per step of every run `energy run` made: stage, step, seconds and the peak memory of the
    `energy run` tree while it ran; dbt model seconds; rows in marts.fct_intervals_clean and
    sizes on disk."""
    from dagster import DagsterInstance

    from energy_assets.commands.session import platform_session
    from energy_assets.warehouse.database import connect

    with platform_session(settings) as db:
        instance = DagsterInstance.get()
        steps, models = [], {}
        for record in sorted(instance.get_run_records(), key=lambda r: r.create_timestamp):
            run = record.dagster_run
            stage = STAGES.get(run.job_name, run.job_name)
            for step, (start, end) in step_windows(instance, run.run_id).items():
                steps.append(
                    {
                        "job": run.job_name,
                        "stage": stage,
                        "step": step,
                        "seconds": end - start,
                        "peak_rss_mb": round(memory.peak_between(start, end)),
                        "status": run.status.value,
                    }
                )
            if run.job_name == "monthly_marts_job":
                models.update(model_seconds(instance, run.run_id))
        conn = connect(db.warehouse_url)
        with conn, conn.cursor() as cur:
            cur.execute(SIZES)
            sizes = dict(zip([c.name for c in cur.description], cur.fetchone(), strict=True))
        conn.close()
    return steps, models, sizes


def measure(work: Path, households: int, months: int, max_concurrent: int | None) -> dict:
    home = work / "home"
    extra = {"ENERGY_MAX_CONCURRENT": str(max_concurrent)} if max_concurrent else {}
    env = platform_environ(home, **extra)
    start = time.perf_counter()
    readings = write_lcl(home / "dropbox", households, FIRST_MONTH, months)
    generate_s = time.perf_counter() - start
    size_mb = sum(p.stat().st_size for p in (home / "dropbox").iterdir()) / 1e6
    print(
        f"generated {readings:,} readings ({size_mb:,.0f} MB) in {generate_s:.0f} s;"
        " running `energy run` ...",
        flush=True,
    )
    with open(work / "energy-run.log", "w") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [str(BIN / "energy"), "run"], env=env, stdout=subprocess.PIPE, stderr=log, text=True
        )
        with PeakMemory(proc.pid, home / "pgdata") as memory:
            summary, _ = proc.communicate()
        total_s = time.perf_counter() - start
    if proc.returncode:  # a failed step is reported with the others; its stage shows FAILURE
        print(summary + (work / "energy-run.log").read_text()[-3000:], file=sys.stderr)
    from energy_assets.settings import Settings

    with use_environ(env):
        steps, models, sizes = run_stages(Settings.from_env(), memory)
    return {
        "households": households,
        "months": months,
        "readings": readings,
        "files_mb": round(size_mb),
        "generate_s": generate_s,
        "energy_run_s": total_s,
        "max_concurrent": max_concurrent,
        "steps": steps,
        "dbt_models_s": models,
        **{k: float(v) for k, v in sizes.items()},
        "peak_rss_mb": round(memory.peak_mb),
        "postgres_peak_pss_mb": round(memory.postgres_peak_mb),
        "energy_run_summary": summary.strip().splitlines()[-6:],
    }


def stage_rows(result: dict) -> list[list]:
    """Table rows: one per step, readings per second of each, and `energy run` as a whole."""
    readings = result["readings"]
    rows = [
        [
            s["stage"],
            s["step"],
            s["seconds"],
            round(readings / s["seconds"]),
            s.get("peak_rss_mb", "-"),
            "" if s["status"] == "SUCCESS" else s["status"],
        ]
        for s in result["steps"]
    ]
    if not any("forecast" in s["step"] for s in result["steps"]):
        rows.append(["forecast", "(no forecast run)", "-", "-", "-", ""])
    other = result["energy_run_s"] - sum(s["seconds"] for s in result["steps"])
    rows.append(["-", "start-up, manifest, queries between runs", other, "-", "-", ""])
    rows.append(
        [
            "total",
            "energy run",
            result["energy_run_s"],
            round(readings / result["energy_run_s"]),
            result["peak_rss_mb"],
            "",
        ]
    )
    return rows


def fit_line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares intercept and slope through (x, y) points (two points: the line through)."""
    xs, ys = zip(*points, strict=True)
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x in xs)
    return mean_y - slope * mean_x, slope


def extrapolate(results: list[dict], readings: float) -> list[list]:
    """Per measured quantity: its value at each size, and at `readings` on a line fitted to them."""

    def quantities(result: dict) -> dict[str, float]:
        values = {}
        for step in result["steps"]:
            key = f"{step['stage']}: {step['step']} (s)"
            values[key] = values.get(key, 0.0) + step["seconds"]
        values["energy run total (s)"] = result["energy_run_s"]
        values["peak RSS, energy run tree (MB)"] = result["peak_rss_mb"]
        values["peak PSS, PostgreSQL (MB)"] = result["postgres_peak_pss_mb"]
        values["database on disk (MB)"] = result["database_mb"]
        return values

    measured = [quantities(r) for r in results]
    rows = []
    for key in measured[0]:
        if not all(key in m for m in measured):
            continue
        points = [(r["readings"], m[key]) for r, m in zip(results, measured, strict=True)]
        intercept, slope = fit_line(points)
        rows.append(
            [key, *[round(m[key], 1) for m in measured], round(intercept + slope * readings, 1)]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--households", type=int, default=500)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="ENERGY_MAX_CONCURRENT for the run (default: in-process)",
    )
    parser.add_argument("--output", default="scale", help="results/<output>.json")
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="work in DIR (must not exist) and keep it: ENERGY_HOME is DIR/home, to profile after",
    )
    parser.add_argument(
        "--extrapolate",
        nargs="+",
        metavar="JSON",
        help="instead of measuring: fit the results of runs at several sizes",
    )
    parser.add_argument("--to", type=float, default=167e6, help="readings to extrapolate to")
    args = parser.parse_args()
    if args.extrapolate:
        results = sorted(
            (json.loads(Path(p).read_text()) for p in args.extrapolate), key=lambda r: r["readings"]
        )
        rows = extrapolate(results, args.to)
        print(
            table(
                [
                    "quantity",
                    *[f"{r['readings'] / 1e6:.1f} M" for r in results],
                    f"{args.to / 1e6:.0f} M (fit)",
                ],
                rows,
            )
        )
        write_results(args.output, {"sources": args.extrapolate, "readings": args.to, "rows": rows})
        return
    if args.keep:
        args.keep.mkdir(parents=True)
        result = measure(args.keep, args.households, args.months, args.max_concurrent)
    else:
        with tempfile.TemporaryDirectory(prefix="energy-scale-") as tmp:
            result = measure(Path(tmp), args.households, args.months, args.max_concurrent)
    print()
    print(
        table(
            ["stage", "step", "seconds", "readings/s", "peak MB", "run status"], stage_rows(result)
        )
    )
    slowest = sorted(result["dbt_models_s"].items(), key=lambda kv: -kv[1])[:4]
    print("\nslowest dbt models: " + ", ".join(f"{m} {s:.0f} s" for m, s in slowest))
    print(
        f"{result['households']} households x {result['months']} months ="
        f" {result['readings']:,} readings ({result['files_mb']} MB of CSV),"
        f" {result['clean_rows']:,.0f} rows in marts.fct_intervals_clean; database"
        f" {result['database_mb']:,.0f} MB (raw.readings {result['raw_readings_mb']:,.0f} MB,"
        f" marts {result['marts_mb']:,.0f} MB); peak memory:"
        f" energy run tree {result['peak_rss_mb']:,} MB RSS, PostgreSQL"
        f" {result['postgres_peak_pss_mb']:,} MB PSS;"
        f" executor: {args.max_concurrent or 'in-process'}"
    )
    write_results(args.output, result)


if __name__ == "__main__":
    main()
