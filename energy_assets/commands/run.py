"""`energy run`: load the dropbox once and build every month that needs it, through Dagster runs:
the months its files touched, and any other whose month assets are missing or older than the
month's files (a month run that died halfway, or files loaded while nothing built them)."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field

from energy_assets.backlog import run_order
from energy_assets.commands.processes import stop_if_interrupted
from energy_assets.ingest.dropbox import dropbox_files, readable
from energy_assets.ingest.raw_tables import corrected_months
from energy_assets.partitions import range_tags
from energy_assets.settings import Settings
from energy_assets.warehouse.database import connect


def execute(job_name: str, instance, settings: Settings, **options) -> bool:
    """Run a job of the code location to completion in this process; True when it succeeded.

    With ENERGY_MAX_CONCURRENT set, the job's executor starts a process per step (with
    ENERGY_EXECUTOR=celery, a worker executes each), and those must re-import the job: it is
    then run through its reconstructable repository.
    """
    from dagster import execute_job
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from energy_assets.definitions import defs

    if settings.max_concurrent is None and settings.executor == "in-process":
        job = defs.resolve_job_def(job_name)
        result = job.execute_in_process(instance=instance, raise_on_error=False, **options)
        stop_if_interrupted(instance, result.run_id)
        return result.success
    repository = ReconstructableRepository.for_module("energy_assets.definitions", "defs")
    with execute_job(
        repository.get_reconstructable_job(job_name),
        instance=instance,
        raise_on_error=False,
        **options,
    ) as result:
        stop_if_interrupted(instance, result.run_id)
        return result.success


@dataclass
class RunReport:
    files: list[dict] = field(default_factory=list)
    steps: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(success for _, success in self.steps)

    def table(self) -> str:
        lines = [f"{'file':<40} {'status':<12} {'rows':>10}  {'months':<16} reason"]
        for row in self.files:
            lines.append(
                f"{row['file'][:40]:<40} {row['status']:<12} {row['rows']:>10}  "
                f"{','.join(row['months'])[:16]:<16} {row['reason'] or ''}"
            )
        counts = {
            s: sum(r["status"] == s for r in self.files)
            for s in ("loaded", "quarantined", "duplicate")
        }
        rows = sum(r["rows"] for r in self.files if r["status"] == "loaded")
        lines.append(
            f"{len(self.files)} files: {counts['loaded']} loaded ({rows} rows), "
            f"{counts['quarantined']} quarantined, {counts['duplicate']} duplicate"
        )
        for name, success in self.steps:
            lines.append(f"{'ok    ' if success else 'FAILED'} {name}")
        return "\n".join(lines)


def build_views(instance, settings: Settings, tags: dict[str, str], **options) -> bool:
    """Run the views job, tagged with the version of the models it builds (`views_built`)."""
    from energy_assets.automation import MODELS_TAG
    from energy_assets.marts.dbt_project import models_version

    tags = {**tags, MODELS_TAG: models_version()}
    return execute("unpartitioned_marts_job", instance, settings, tags=tags, **options)


def run_once(settings: Settings) -> RunReport:
    """Ingest every (stable) file in the dropbox, then build every month that needs it:
    corrected months first, then the newest history (`run_order`); a month built before the
    month it follows is backtested again after it.

    Each stage is a Dagster run recorded in the platform's instance, as if the sensor had
    launched it, so the UI shows what `energy run` did.
    """
    from dagster import DagsterInstance

    from energy_assets.commands.session import platform_session
    from energy_assets.marts.dbt_project import models_version

    report = RunReport()
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    # dbt's own output is re-emitted on stdout; keep stdout for the summary, progress on stderr.
    with platform_session(settings) as db, contextlib.redirect_stdout(sys.stderr):
        # The assets read the dbt manifest when imported, which the session has just parsed.
        from energy_assets.automation import (
            BACKTEST_KEYS,
            RUN_HOST_TAG,
            backtest_behind,
            months_to_build,
            this_host,
            views_built,
        )
        from energy_assets.definitions import defs

        here = {RUN_HOST_TAG: this_host()}

        instance = DagsterInstance.get()
        paths = dropbox_files(settings.dropbox)  # the ingest takes each once it is stable
        ingest = defs.resolve_job_def("ingest_dropbox").execute_in_process(
            run_config={
                **quiet,
                "ops": {"ingest_files": {"config": {"files": [readable(p.name) for p in paths]}}},
            },
            instance=instance,
            tags=here,
            raise_on_error=False,
        )
        stop_if_interrupted(instance, ingest.run_id)
        report.steps.append((f"ingest {len(paths)} files", ingest.success))
        if not ingest.success:
            return report
        report.files = ingest.output_for_node("ingest_files")
        loaded = [row["file_id"] for row in report.files if row["status"] == "loaded"]
        with contextlib.closing(connect(db.warehouse_url)) as conn:
            months = months_to_build(instance, conn)
            corrected = corrected_months(conn, loaded)
        for first, last in run_order(months, corrected):
            tags = {**range_tags(first, last), **here}
            success = execute("monthly_marts_job", instance, settings, run_config=quiet, tags=tags)
            report.steps.append((f"marts {first:%Y-%m}..{last:%Y-%m}", success))
            behind = backtest_behind(instance, last) if success and settings.forecasts else None
            if behind is not None:  # built before the month it follows (`run_order`)
                success = execute(
                    "monthly_marts_job",
                    instance,
                    settings,
                    run_config=quiet,
                    tags={**range_tags(behind, behind), **here},
                    asset_selection=BACKTEST_KEYS,
                )
                report.steps.append(
                    (f"backtest {behind:%Y-%m} with {last:%Y-%m} before it", success)
                )
        if months and not views_built(instance, models_version()):
            success = build_views(instance, settings, here, run_config=quiet)
            report.steps.append(("views", success))
        if months and settings.forecasts:
            success = execute("day_ahead_job", instance, settings, run_config=quiet, tags=here)
            report.steps.append(("day-ahead forecast", success))
    return report
