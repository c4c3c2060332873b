"""Runs put in a real Dagster instance the way the daemon and the run queue put them there:
created, handed to the queue, chosen by it, started and finished by a process; for the tests
of the sensors and status."""

from __future__ import annotations

from dagster import DagsterEvent, DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from energy_assets.definitions import defs

MONTH_JOB = "monthly_marts_job"


def job_origin(job_name: str) -> RemoteJobOrigin:
    """Where a run's job comes from, as the daemon records it (a queued run must name it)."""
    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="energy_assets.definitions"), "energy_assets"
    )
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job_name)


def create(instance: DagsterInstance, tags: dict[str, str], job: str = MONTH_JOB) -> DagsterRun:
    """A run as the daemon creates it from a request (NOT_STARTED), with its job's tags."""
    job_def = defs.resolve_job_def(job)
    return instance.create_run_for_job(
        job_def=job_def,
        tags={**job_def.tags, **tags},
        status=DagsterRunStatus.NOT_STARTED,
        remote_job_origin=job_origin(job),
    )


def report(
    instance: DagsterInstance,
    run: DagsterRun,
    event: DagsterEventType,
    status: DagsterRunStatus,
    pid: int | None = None,
) -> None:
    """`event` reported for `run` (by process `pid`), which moves it to `status`."""
    dagster_event = DagsterEvent(event.value, job_name=run.job_name, pid=pid)
    instance.report_dagster_event(dagster_event, run.run_id)
    assert instance.get_run_by_id(run.run_id).status == status


def enqueue(instance: DagsterInstance, run: DagsterRun) -> None:
    """Handed to the run queue, as the queued run coordinator does."""
    report(instance, run, DagsterEventType.RUN_ENQUEUED, DagsterRunStatus.QUEUED)


def start(instance: DagsterInstance, run: DagsterRun, pid: int | None = None) -> None:
    """Started by its process `pid`, which reports the start as a run worker does."""
    report(instance, run, DagsterEventType.RUN_START, DagsterRunStatus.STARTED, pid)


def finish(instance: DagsterInstance, run: DagsterRun) -> None:
    """Its process reports success, which frees its place in the run queue's limits."""
    report(instance, run, DagsterEventType.RUN_SUCCESS, DagsterRunStatus.SUCCESS)


def dequeue(instance: DagsterInstance) -> list[DagsterRun]:
    """The queued runs the run queue would start now, in order: the queued run coordinator's
    own choice under the instance's limits (dagster.yaml) and the runs' priorities."""
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    # A private method of Dagster's daemon (no public API says which runs the queue would pick):
    # the very code that orders by priority and applies the limits, without launching anything.
    return daemon._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None)


def views_of_older_models(settings) -> None:
    """Record the platform's views runs as built by an older version of the dbt models, as after
    an upgrade: the next `energy run` runs the views job again."""
    from dagster import RunsFilter

    from energy_assets.automation import MODELS_TAG
    from energy_assets.commands.session import platform_session

    with platform_session(settings), DagsterInstance.get() as instance:
        for run in instance.get_runs(RunsFilter(job_name="unpartitioned_marts_job")):
            instance.add_run_tags(run.run_id, {MODELS_TAG: "000000000000"})
