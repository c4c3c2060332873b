"""Cost of rebuilding one month with 1, 6 and 24 months of history loaded.

    .venv/bin/python benchmarks/partition_cost.py [--meters 20] [--histories 1 6 24] [--repeats 2]

For each history size, a platform of its own (temporary ENERGY_HOME, embedded PostgreSQL on a
free port) loads generated feeder-meter files (30-minute intervals, half the meters on feeders,
half seen as customers) ending in 2024-12 and builds their marts, then rebuilds the 2024-12
partition with `monthly_marts_job`, as the sensor does, in `--repeats` rounds that visit every
history in turn. The month rebuilt is the same at every size, so only the history differs.
Reports the median run, its dbt step (the month's marts) and its forecast backtest; the
marts' ratio 24/1 must stay below 1.3 (a run's cost follows the month, not the history), as
must the whole run's 24/6 (the backtest's fixed 5-week look-back is then filled in both).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (  # noqa: E402
    median,
    model_seconds,
    platform_environ,
    step_seconds,
    table,
    use_environ,
    write_results,
)
from benchmarks._data import months_ending, write_feeder_months  # noqa: E402

LAST_MONTH = "2024-12"
DBT_STEP = "monthly_marts"
BACKTEST_STEP = "ml__forecast_backtest"
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def load_history(home: Path, history: int, meters: int) -> dict:
    """Write and load `history` months and build their marts (the plots and segments of past
    months play no part in rebuilding the last one)."""
    from dagster import DagsterInstance

    from energy_assets.commands.run import execute
    from energy_assets.commands.session import platform_session
    from energy_assets.marts.assets import monthly_marts
    from energy_assets.partitions import range_tags
    from energy_assets.settings import Settings

    with use_environ(platform_environ(home)):
        settings = Settings.from_env()
        months = months_ending(LAST_MONTH, history)
        readings = write_feeder_months(settings.dropbox, meters, months, meters // 2)
        with platform_session(settings), contextlib.redirect_stdout(sys.stderr):
            instance = DagsterInstance.get()
            start = time.perf_counter()
            files = [p.name for p in sorted(settings.dropbox.iterdir())]
            loaded = execute(
                "ingest_dropbox",
                instance,
                settings,
                run_config={**QUIET, "ops": {"ingest_files": {"config": {"files": files}}}},
            )
            built = execute(
                "monthly_marts_job",
                instance,
                settings,
                run_config=QUIET,
                tags=range_tags(months[0].date(), months[-1].date()),
                asset_selection=list(monthly_marts.keys),
            )
            if not (loaded and built):
                raise RuntimeError("loading the history failed")
    return {
        "history_months": history,
        "meters": meters,
        "raw_readings": readings,
        "initial_load_seconds": time.perf_counter() - start,
        "runs": [],
    }


def rebuild_in(home: Path) -> dict:
    """Bring the home's platform up and time one rebuild of the last month."""
    from dagster import DagsterInstance

    from energy_assets.commands.session import platform_session
    from energy_assets.settings import Settings

    with (
        use_environ(platform_environ(home)),
        platform_session(Settings.from_env()),
        contextlib.redirect_stdout(sys.stderr),
    ):
        from energy_assets.definitions import defs

        return rebuild_month(defs, DagsterInstance.get())


def rebuild_month(defs, instance) -> dict:
    """One run of the whole monthly job for the last month, as the sensor requests it."""
    start = time.perf_counter()
    result = defs.resolve_job_def("monthly_marts_job").execute_in_process(
        partition_key=LAST_MONTH,
        run_config=QUIET,
        instance=instance,
        raise_on_error=False,
    )
    return {
        "seconds": time.perf_counter() - start,
        "success": result.success,
        "steps": step_seconds(instance, result.run_id),
        "models": model_seconds(instance, result.run_id),
    }


def summarise(result: dict) -> dict:
    runs = result["runs"]  # failed runs count too: failed_runs says how many
    steps = sorted({s for r in runs for s in r["steps"]})
    return {
        "run_s": median([r["seconds"] for r in runs]),
        "steps_s": {s: median([r["steps"].get(s, 0.0) for r in runs]) for s in steps},
        "models_s": {
            m: median([r["models"].get(m, 0.0) for r in runs])
            for m in sorted({m for r in runs for m in r["models"]})
        },
        "failed_runs": sum(not r["success"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=20)
    parser.add_argument("--histories", type=int, nargs="+", default=[1, 6, 24])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--child", nargs=3, metavar=("ACTION", "HISTORY", "WORK"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:  # a fresh interpreter per action, so no platform state leaks between homes
        action, history, work = args.child[0], int(args.child[1]), Path(args.child[2])
        result_file = work / "result.json"
        if action == "load":
            result = load_history(work / "home", history, args.meters)
        else:
            result = json.loads(result_file.read_text())
            result["runs"].append(rebuild_in(work / "home"))
        result_file.write_text(json.dumps(result))
        return

    def child(action: str, history: int, work: Path) -> None:
        with open(work / "log.txt", "a") as log:
            code = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--meters",
                    str(args.meters),
                    "--child",
                    action,
                    str(history),
                    str(work),
                ],
                stdout=log,
                stderr=log,
                check=False,
            ).returncode
        if code:
            print((work / "log.txt").read_text()[-4000:], file=sys.stderr)
            raise SystemExit(f"history {history}: {action} failed")

    with tempfile.TemporaryDirectory(prefix="energy-bench-") as tmp:
        works = {h: Path(tmp) / f"h{h}" for h in args.histories}
        for history, work in works.items():
            print(f"history {history} months: loading ...", flush=True)
            work.mkdir()
            child("load", history, work)
        # Rounds that visit every history in turn: on a shared machine the load drifts, and
        # interleaving gives every size the same drift.
        for round_ in range(1, args.repeats + 1):
            print(
                f"round {round_}/{args.repeats}: rebuilding {LAST_MONTH} in each history",
                flush=True,
            )
            for history, work in works.items():
                child("rebuild", history, work)
        results = []
        for work in works.values():
            result = json.loads((work / "result.json").read_text())
            results.append({**result, **summarise(result)})

    base = results[0]
    # The backtest looks back a fixed 5 weeks: with one month loaded it has nothing to learn
    # from and does less, so the whole run compares fairly only among histories of 2+ months.
    full = next((r for r in results if r["history_months"] >= 2), base)
    rows = []
    for r in results:
        dbt, backtest = (r["steps_s"].get(s, 0.0) for s in (DBT_STEP, BACKTEST_STEP))
        rows.append(
            [
                r["history_months"],
                r["raw_readings"],
                r["initial_load_seconds"],
                r["run_s"],
                dbt,
                backtest,
                r["run_s"] - dbt - backtest,
                dbt / base["steps_s"].get(DBT_STEP, 1.0),
                r["run_s"] / full["run_s"],
            ]
        )
    print()
    print(
        table(
            [
                "history (months)",
                "raw readings",
                "initial load s",
                "rebuild run s",
                "dbt step s",
                "backtest s",
                "rest of run s",
                "dbt vs 1",
                f"run vs {full['history_months']}",
            ],
            rows,
        )
    )
    last = results[-1]
    dbt_ratio = last["steps_s"].get(DBT_STEP, 0.0) / base["steps_s"].get(DBT_STEP, 1.0)
    run_ratio = last["run_s"] / full["run_s"]
    failed = sum(r["failed_runs"] for r in results)
    if failed:
        print(f"\n{failed} rebuild runs had a failed step (see the JSON's steps)")

    def verdict(ratio: float) -> str:
        return "ok, below 1.3" if ratio < 1.3 else "ABOVE 1.3"

    print(
        f"\nthe month's marts (dbt step), {last['history_months']}/{base['history_months']}"
        f" months of history: {dbt_ratio:.2f} ({verdict(dbt_ratio)})\n"
        f"the whole month run (marts, segments, plots, backtest, anomalies),"
        f" {last['history_months']}/{full['history_months']}: {run_ratio:.2f}"
        f" ({verdict(run_ratio)}); {last['history_months']}/{base['history_months']}:"
        f" {last['run_s'] / base['run_s']:.2f}, as a month without earlier weeks has"
        f" little to backtest\n(medians of {args.repeats} rebuilds of {LAST_MONTH},"
        f" {args.meters} meters at 30 min)"
    )
    path = write_results(
        "partition_cost",
        {
            "month_rebuilt": LAST_MONTH,
            "repeats": args.repeats,
            "histories": results,
            "ratio_dbt_step": dbt_ratio,
            "ratio_run_vs_full_lookback": run_ratio,
        },
    )
    print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


if __name__ == "__main__":
    main()
