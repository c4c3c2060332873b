"""The `energy` command: run the platform, load the dropbox once, print connection strings."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from energy_assets.settings import REPO_ROOT, Settings

BIN = Path(sys.executable).parent


def _reset_signals() -> None:
    # Children of a non-interactive shell inherit SIGINT/SIGTERM as ignored; undo that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        args,
        cwd=REPO_ROOT,
        env=os.environ.copy(),
        preexec_fn=_reset_signals,
        start_new_session=True,
    )


def _stop(procs: list[subprocess.Popen], grace: float = 30.0) -> None:
    """SIGTERM each process group, wait for every descendant, SIGKILL what outlives `grace`.

    Descendants are collected first: Dagster's code servers keep running for a while after
    their parent exits unless they are waited for.
    """
    import psutil

    tree = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(proc.pid)
            tree += [parent, *parent.children(recursive=True)]
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for member in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.terminate()
    _, alive = psutil.wait_procs(tree, timeout=grace)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    for proc in procs:
        proc.wait()


def cmd_up(args: argparse.Namespace) -> int:
    """Database, Dagster webserver and daemon (with the sensors) until Ctrl-C or SIGTERM."""
    from energy_assets.commands.session import platform_session

    settings = Settings.from_env()
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(True))
    with platform_session(settings) as db:
        workspace = str(REPO_ROOT / "workspace.yaml")
        procs = [
            _start(
                [
                    str(BIN / "dagster-webserver"),
                    "-h",
                    args.host,
                    "-p",
                    str(args.port),
                    "-w",
                    workspace,
                ]
            ),
            _start([str(BIN / "dagster-daemon"), "run", "-w", workspace]),
        ]
        print(
            f"Dagster UI    http://{args.host}:{args.port}\n"
            f"Dropbox       {settings.dropbox}\n"
            f"Warehouse     {db.warehouse_url}\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        code = 0
        try:
            while not stop:
                if any(p.poll() is not None for p in procs):
                    print("a platform process exited; stopping", file=sys.stderr)
                    code = 1
                    break
                time.sleep(0.5)
        finally:
            _stop(procs)
    print("stopped")
    return code


def cmd_run(args: argparse.Namespace) -> int:
    from energy_assets.commands.run import run_once

    report = run_once(Settings.from_env())
    print(report.table())
    return 0 if report.ok else 1


def cmd_db_url(args: argparse.Namespace) -> int:
    from energy_assets.warehouse.postgres import WAREHOUSE_DB, EmbeddedPostgres
    from energy_assets.warehouse.roles import analyst_url

    settings = Settings.from_env()
    if settings.database_url:
        url = settings.database_url
    else:
        port = EmbeddedPostgres(settings.pgdata, settings.pg_port).running_port()
        if port is None:
            print(
                "the embedded PostgreSQL is not running (start it with `energy up`)",
                file=sys.stderr,
            )
            port = settings.pg_port
        url = f"postgresql://postgres@127.0.0.1:{port}/{WAREHOUSE_DB}"
    print(analyst_url(url) if args.analyst else url)
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    """Prepare the database (schema, roles, mart relations) and exit: a deployment's init step."""
    from energy_assets.commands.session import platform_session

    with platform_session(Settings.from_env()) as db:
        print(f"ready: {db.warehouse_url.rpartition('@')[2]}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Latest month per asset, failing checks and runs, runs waiting or under way, months to
    rebuild, quarantined files, the dropbox backlog; 1 when failing."""
    from dagster import DagsterInstance

    from energy_assets.commands.session import platform_session
    from energy_assets.commands.status import collect_status
    from energy_assets.warehouse.database import connect

    settings = Settings.from_env()
    with (
        platform_session(settings) as db,
        DagsterInstance.get() as instance,
        contextlib.closing(connect(db.warehouse_url)) as conn,
    ):
        status = collect_status(instance, conn, settings.dropbox)
    print(status.report())
    return 1 if status.failing else 0


def cmd_export(args: argparse.Namespace) -> int:
    """Stream a load profile or the gap list as CSV, to stdout or `--output`."""
    from energy_assets.commands.session import platform_session
    from energy_assets.marts.exports import export_csv

    settings = Settings.from_env()
    with platform_session(settings) as db, contextlib.ExitStack() as stack:
        out = stack.enter_context(open(args.output, "wb")) if args.output else sys.stdout.buffer
        try:
            rows = export_csv(
                db.warehouse_url,
                args.kind,
                out,
                name=args.name,
                first_month=args.first_month,
                last_month=args.last_month or args.first_month,
            )
        except ValueError as exc:
            print(f"energy export: {exc}", file=sys.stderr)
            return 2
    print(f"{rows} rows", file=sys.stderr)
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    """Generate the dbt documentation site for the marts into `$ENERGY_HOME/dbt-docs`."""
    from energy_assets.commands.session import platform_session
    from energy_assets.marts.dbt_project import DBT_EXECUTABLE
    from energy_assets.settings import DBT_PROJECT_DIR

    settings = Settings.from_env()
    target = settings.home / "dbt-docs"
    with platform_session(settings):
        result = subprocess.run(
            [
                DBT_EXECUTABLE,
                "docs",
                "generate",
                "--quiet",
                "--project-dir",
                str(DBT_PROJECT_DIR),
                "--profiles-dir",
                str(DBT_PROJECT_DIR),
                "--target-path",
                str(target),
            ],
            check=False,
        )
    if result.returncode == 0:
        print(
            f"dbt docs: {target / 'index.html'}  (serve with: python3 -m http.server -d {target})"
        )
    return result.returncode


def cmd_plot(args: argparse.Namespace) -> int:
    """Draw one customer's hourly pattern for a month, beside the asset's pictures."""
    from energy_assets.commands.session import platform_session
    from energy_assets.plots.charts import customer_folder, draw_customers
    from energy_assets.plots.store import month_profiles
    from energy_assets.warehouse.database import connect

    settings = Settings.from_env()
    with platform_session(settings) as db:
        conn = connect(db.warehouse_url)
        try:
            profiles = month_profiles(conn, args.month, args.customer)
        finally:
            conn.close()
    if profiles.empty:
        print(
            f"energy plot: no profile for customer {args.customer!r} in {args.month:%Y-%m}"
            " (marts.customer_hourly_profile)",
            file=sys.stderr,
        )
        return 2
    [path] = draw_customers(
        profiles, [args.customer], args.month, customer_folder(settings.home, args.month)
    )
    print(path)
    return 0


def _month(text: str) -> date:
    return date.fromisoformat(text + "-01" if len(text) == 7 else text)


def cmd_sample(args: argparse.Namespace) -> int:
    from energy_assets.ingest.sample import write_sample

    settings = Settings.from_env()
    if settings.archive.exists() and any(settings.archive.iterdir()) and not args.force:
        print("the platform has loaded files before; not adding sample data (use --force)")
        return 0
    for path in write_sample(settings.dropbox):
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    defaults = Settings.from_env()
    parser = argparse.ArgumentParser(prog="energy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the platform: database, Dagster UI, daemon and sensors")
    up.add_argument("--host", default=defaults.ui_host)
    up.add_argument("--port", type=int, default=defaults.ui_port)
    up.set_defaults(func=cmd_up)
    run = sub.add_parser("run", help="load everything in the dropbox now and build its months")
    run.set_defaults(func=cmd_run)
    db_url = sub.add_parser("db-url", help="print the warehouse connection string")
    db_url.add_argument(
        "--analyst", action="store_true", help="as the read-only energy_analyst role"
    )
    db_url.set_defaults(func=cmd_db_url)
    setup = sub.add_parser("setup", help="prepare the database (schema, roles, marts) and exit")
    setup.set_defaults(func=cmd_setup)
    status = sub.add_parser(
        "status", help="latest months, failing checks and runs, work waiting, quarantined files"
    )
    status.set_defaults(func=cmd_status)
    export = sub.add_parser("export", help="write a load profile or the gap list as CSV")
    export.add_argument("kind", choices=("feeder", "system", "customer", "gaps"))
    export.add_argument("name", nargs="?", help="feeder, customer or meter (gaps) name")
    export.add_argument(
        "--from", dest="first_month", type=_month, required=True, help="first month, YYYY-MM"
    )
    export.add_argument("--to", dest="last_month", type=_month, help="last month (default: --from)")
    export.add_argument("--output", "-o", help="file to write (default: stdout)")
    export.set_defaults(func=cmd_export)
    plot = sub.add_parser("plot", help="draw a customer's hourly pattern for a month")
    plot.add_argument("customer")
    plot.add_argument("--month", type=_month, required=True, help="YYYY-MM")
    plot.set_defaults(func=cmd_plot)
    docs = sub.add_parser("docs", help="generate the dbt documentation of the marts")
    docs.set_defaults(func=cmd_docs)
    sample = sub.add_parser("sample", help="drop generated sample meter files in the dropbox")
    sample.add_argument("--force", action="store_true", help="even if files were loaded before")
    sample.set_defaults(func=cmd_sample)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
