"""The `energy` command: run the platform, load the dropbox once, query and check it."""

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

from energy_assets.scaleout import DBT, ML
from energy_assets.settings import REPO_ROOT, PlatformError, Settings

BIN = Path(sys.executable).parent
LOST_DATABASE_CHECK_SECONDS = 2.0


def _forward_to_sigint(*_) -> None:
    # SIGTERM and SIGHUP take the path Ctrl-C takes: Dagster turns SIGINT into an orderly
    # interruption of the run (recorded as FAILURE), and every `finally` below still runs.
    os.kill(os.getpid(), signal.SIGINT)


def cmd_up(args: argparse.Namespace) -> int:
    """Database, Dagster webserver and daemon (with the sensors) until Ctrl-C, SIGTERM or SIGHUP,
    or until a platform process or the embedded database is lost."""
    from dagster import DagsterInstance

    from energy_assets.commands.dashboard import dashboard_env, dashboard_url, streamlit_command
    from energy_assets.commands.processes import (
        ProcessGroup,
        on_stop_signals,
        reaped,
        single_instance,
    )
    from energy_assets.commands.session import platform_session
    from energy_assets.launcher import fail_runs_left_starting
    from energy_assets.warehouse.postgres import redact

    settings = Settings.from_env()
    stop = []
    on_stop_signals(lambda *_: stop.append(True))
    settings.home.mkdir(parents=True, exist_ok=True)
    workspace = str(REPO_ROOT / "workspace.yaml")
    with (
        single_instance(settings.home / ".up.lock", "energy up"),
        platform_session(settings, create=True) as db,
    ):
        with DagsterInstance.get() as instance:  # the home's (the session exported it)
            fail_runs_left_starting(instance)
        log = settings.home / "logs" / "dagster.log"
        group = ProcessGroup(env=os.environ.copy(), log=log)  # with what the session exported
        group.start(
            [str(BIN / "dagster-webserver"), "-h", args.host, "-p", str(args.port), "-w", workspace]
        )
        with reaped(group, db.server.locks.user_locks if db.server else ()):
            try:
                group.start([str(BIN / "dagster-daemon"), "run", "-w", workspace])
                group.start(
                    streamlit_command(args.host, args.dashboard_port),
                    env=dashboard_env(group.env, dashboard_url(settings, db)),
                )
                print(
                    f"Dagster UI    http://{args.host}:{args.port}\n"
                    f"Dashboard     http://{args.host}:{args.dashboard_port}\n"
                    f"Home          {settings.home}\n"
                    f"Dropbox       {settings.dropbox}\n"
                    f"Warehouse     {redact(db.warehouse_url)}\n"
                    f"Logs          {log}\n"
                    "Ctrl-C stops everything.",
                    flush=True,
                )
                code = _watch(group, db, stop)
                print("stopping", flush=True)
            finally:
                group.stop()
    print("stopped")
    return code


def _watch(group, db, stop: list) -> int:
    """Wait for a stop signal (0), or a lost platform process or database (1)."""
    checked = time.monotonic()
    while not stop:
        exited = group.exited()
        if exited is not None:
            module = exited.args[2] if exited.args[1:2] == ["-m"] else None
            print(
                f"energy up: {module or Path(exited.args[0]).name} exited ({exited.returncode});"
                " stopping",
                file=sys.stderr,
            )
            return 1
        if time.monotonic() - checked >= LOST_DATABASE_CHECK_SECONDS:
            checked = time.monotonic()
            lost = db.lost()
            if lost:
                print(
                    f"energy up: {lost}; stopping. `energy up` again restarts it and retries"
                    " the runs it cut short.",
                    file=sys.stderr,
                )
                return 1
        time.sleep(0.5)
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    """The dashboard alone, reading as the analyst (`energy up` starts it beside the UI)."""
    from energy_assets.commands.dashboard import streamlit_command

    if not Settings.from_env().analyst_url:
        raise PlatformError(
            "ENERGY_ANALYST_URL is not set: the dashboard reads only as the analyst role"
            " (`energy db-url --analyst` prints its URL on the embedded server)"
        )
    command = streamlit_command(args.host, args.port)
    os.execv(command[0], command)


def cmd_run(args: argparse.Namespace) -> int:
    from energy_assets.commands.processes import children, stop_children
    from energy_assets.commands.run import run_once

    saved = {sig: signal.signal(sig, _forward_to_sigint) for sig in (signal.SIGTERM, signal.SIGHUP)}
    before = children()
    try:
        report = run_once(Settings.from_env())
    except KeyboardInterrupt:
        stop_children(before)
        print(
            "energy run: interrupted; files loaded so far stay loaded, the rest wait in the"
            " dropbox, and the run it was in is recorded as FAILURE",
            file=sys.stderr,
        )
        return 130
    finally:
        for sig, handler in saved.items():  # main() may be called in a longer-lived process
            signal.signal(sig, handler)
    print(report.table())
    return 0 if report.ok else 1


def cmd_worker(args: argparse.Namespace) -> int:
    """A Celery worker for the platform's steps, until Ctrl-C, SIGTERM or SIGHUP."""
    from energy_assets.commands.worker import run_worker

    settings = Settings.from_env()
    if settings.executor != "celery":
        print(
            "energy worker: ENERGY_EXECUTOR is not `celery` here: runs started from this"
            " environment execute their steps themselves, not on workers",
            file=sys.stderr,
        )
    return run_worker(settings, args.queue or [DBT, ML], args.name, args.concurrency)


def cmd_db_url(args: argparse.Namespace) -> int:
    """The warehouse's URL, without a password; 1 when the embedded server is not running."""
    from energy_assets.warehouse.postgres import (
        ANALYST,
        SUPERUSER,
        WAREHOUSE_DB,
        EmbeddedPostgres,
        without_password,
    )
    from energy_assets.warehouse.roles import analyst_url

    settings = Settings.from_env()
    if settings.database_url:
        url = without_password(settings.database_url)
        print(analyst_url(url) if args.analyst else url)
        return 0
    settings.require_home()
    server = EmbeddedPostgres.of(settings)
    port = server.running_port()
    if port is None:
        raise PlatformError(
            "the embedded PostgreSQL is not running; `energy db start` starts it alone"
            " (or `energy up`, `energy psql`)"
        )
    print(server.url(WAREHOUSE_DB, ANALYST if args.analyst else SUPERUSER, port))
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    """`energy db start|stop|status`: the embedded server alone, for queries."""
    from energy_assets.warehouse.postgres import EmbeddedPostgres, holder_pid

    settings = Settings.from_env()
    if not settings.embedded:
        raise PlatformError("ENERGY_DATABASE_URL is set: the platform runs no server of its own")
    settings.require_home()
    server = EmbeddedPostgres.of(settings)
    holder = holder_pid(settings)
    if args.action == "start":
        if holder is None:
            holder = _start_holder()
        print(
            f"PostgreSQL on 127.0.0.1:{server.running_port()} (held by pid {holder});"
            " `energy db stop` releases it"
        )
        return 0
    if args.action == "stop":
        if holder is not None:
            _stop_holder(holder)
        port = server.running_port()
        if port is None:
            print("stopped")
        else:
            print(f"released; still running on 127.0.0.1:{port} for the platform processes in it")
        return 0
    port = server.running_port()
    if port is None:
        print("not running")
        return 1
    held = f", held by `energy db start` (pid {holder})" if holder else ""
    print(f"running on 127.0.0.1:{port}, data {server.pgdata.resolve()}{held}")
    return 0


def _start_holder() -> int:
    """A process that uses the server until `energy db stop` (it outlives this command)."""
    from energy_assets.warehouse.postgres import MODULE_COMMAND

    holder = subprocess.Popen(
        [*MODULE_COMMAND, "hold"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    answer = holder.stdout.readline().strip()
    holder.stdout.close()
    if not answer.startswith("ready"):
        holder.wait()
        raise PlatformError(answer.partition(" ")[2] or "the server did not start")
    return holder.pid


def _stop_holder(pid: int) -> None:
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        process = psutil.Process(pid)
        process.terminate()
        process.wait(timeout=60)


def cmd_psql(args: argparse.Namespace) -> int:
    """psql on the warehouse, the server started for it if need be (and stopped after)."""
    from energy_assets.warehouse.postgres import (
        ANALYST,
        WAREHOUSE_DB,
        EmbeddedPostgres,
        platform_database,
        without_password,
    )
    from energy_assets.warehouse.roles import analyst_url

    settings = Settings.from_env()
    settings.require_home()
    psql = str(EmbeddedPostgres.of(settings).bin / "psql")
    with platform_database(settings) as db:
        if db.server is not None:
            url = db.server.url(WAREHOUSE_DB, ANALYST) if args.analyst else db.warehouse_url
        else:  # your own server: its password comes from PGPASSWORD or ~/.pgpass
            url = without_password(db.warehouse_url)
            url = analyst_url(url) if args.analyst else url
        extra = args.psql_args[1:] if args.psql_args[:1] == ["--"] else args.psql_args
        return subprocess.run([psql, url, *extra], check=False).returncode


def cmd_setup(args: argparse.Namespace) -> int:
    """Prepare the database (schema, roles, mart relations) and exit: a deployment's init step."""
    from energy_assets.commands.session import platform_session
    from energy_assets.warehouse.postgres import without_password

    with platform_session(Settings.from_env()) as db:
        print(f"ready: {without_password(db.warehouse_url).partition('?')[0]}")
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
        platform_session(settings, create=False) as db,
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
    with platform_session(settings, create=False) as db, contextlib.ExitStack() as stack:
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
    from energy_assets.marts.dbt_project import dbt_command

    settings = Settings.from_env()
    target = settings.home / "dbt-docs"
    with platform_session(settings, create=False):
        result = subprocess.run(
            dbt_command("docs", "generate", "--quiet", target=target),
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
    with platform_session(settings, create=False) as db:
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
    try:
        defaults = Settings.from_env()
    except PlatformError as exc:  # a setting that does not parse: before any command
        print(f"energy: {exc}", file=sys.stderr)
        return 1
    parser = argparse.ArgumentParser(
        prog="energy",
        description=__doc__,
        epilog=f"home: {defaults.home} (ENERGY_HOME)",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the path on one line
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the platform: database, Dagster UI, daemon and sensors")
    up.add_argument("--host", default=defaults.ui_host)
    up.add_argument("--port", type=int, default=defaults.ui_port)
    up.add_argument("--dashboard-port", type=int, default=defaults.dashboard_port)
    up.set_defaults(func=cmd_up)
    dashboard = sub.add_parser(
        "dashboard", help="serve the dashboard alone (ENERGY_ANALYST_URL: where it reads)"
    )
    dashboard.add_argument("--host", default=defaults.ui_host)
    dashboard.add_argument("--port", type=int, default=defaults.dashboard_port)
    dashboard.set_defaults(func=cmd_dashboard)
    run = sub.add_parser("run", help="load everything in the dropbox now and build its months")
    run.set_defaults(func=cmd_run)
    worker = sub.add_parser(
        "worker", help="a Celery worker for the steps of runs (ENERGY_EXECUTOR=celery)"
    )
    worker.add_argument(
        "--queue",
        action="append",
        choices=(DBT, ML),
        help="the steps to take: dbt builds, Python ML steps (default: both; repeatable)",
    )
    worker.add_argument(
        "--name",
        default=f"energy-{os.getpid()}",
        help="the worker's name, unique on this host (@ and the host's name are added)",
    )
    worker.add_argument(
        "--concurrency", type=int, default=1, help="steps this worker executes at once"
    )
    worker.set_defaults(func=cmd_worker)
    db_url = sub.add_parser("db-url", help="print the warehouse connection string")
    db_url.add_argument(
        "--analyst", action="store_true", help="as the read-only energy_analyst role"
    )
    db_url.set_defaults(func=cmd_db_url)
    db = sub.add_parser("db", help="start, stop or check the embedded PostgreSQL alone")
    db.add_argument("action", choices=("start", "stop", "status"))
    db.set_defaults(func=cmd_db)
    psql = sub.add_parser("psql", help="psql on the warehouse (the server started if need be)")
    psql.add_argument("--analyst", action="store_true", help="as the read-only energy_analyst role")
    psql.add_argument("psql_args", nargs=argparse.REMAINDER, help="passed on to psql")
    psql.set_defaults(func=cmd_psql)
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
    from psycopg2 import OperationalError

    try:
        return args.func(args)
    except (PlatformError, OperationalError) as exc:
        message = str(exc).strip().replace("\n", "; ")
        home = "" if str(defaults.home) in message else f" (home: {defaults.home})"
        print(f"energy {args.command}: {message}{home}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
