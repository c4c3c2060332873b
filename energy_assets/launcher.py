"""The run launcher of `energy up`'s Dagster instance: Dagster's default launcher (runs start as
processes of the code server) that can also tell whether a run's process is still alive.

Every run records the pid of the process that executes it (an engine event). With that, Dagster's
run monitoring marks a run FAILURE when its process died without saying so (killed, or its
platform stopped under it), within its poll interval, also at the next start; run retries then
launch it again. The check reads this machine's process table: the launcher is for `energy up`,
whose daemon and code servers share one machine.
"""

from __future__ import annotations

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter
from dagster._core.events import JobFailureData, RunFailureReason
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus

START_SLACK_SECONDS = 2.0
"""A worker's process may be this much younger than its event's clock reading."""


def run_process(instance: DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """(pid, time) of the first engine event of the run that names its process."""
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        pid = event.engine_event_data.metadata.get("pid") if event else None
        if pid is not None:
            return int(pid.value), record.timestamp
    return None


def process_alive(pid: int, since: float) -> bool:
    """Whether `pid` is a live process that existed at `since` (not a later one reusing it)."""
    import psutil

    try:
        process = psutil.Process(pid)
        return (
            process.status() != psutil.STATUS_ZOMBIE
            and process.create_time() <= since + START_SLACK_SECONDS
        )
    except psutil.NoSuchProcess:
        return False


def fail_runs_left_starting(instance: DagsterInstance) -> list[str]:
    """Fail the runs an earlier `energy up` launched whose process never reported its start (the
    platform stopped, or its database died, in between), so that run retries launch them again
    now: run monitoring would wait its whole start timeout (minutes) for them, and the months
    sensor waits for an unfinished ingest run. Called by `energy up` before its daemon starts,
    when no run of the home can be starting: one `energy up` runs per home, and `energy run`
    executes its runs in its own process, never through the launcher."""
    left = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTING]))
    for run in left:
        instance.report_run_failed(
            run,
            "The platform stopped before this run's process started.",
            JobFailureData(error=None, failure_reason=RunFailureReason.START_TIMEOUT),
        )
    return [run.run_id for run in left]


class LocalRunLauncher(DefaultRunLauncher):
    """`DefaultRunLauncher` with a worker health check by pid, for run monitoring."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        found = run_process(self._instance, run.run_id)
        if found is None:  # started, but its process has not said which it is yet
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        pid, since = found
        if process_alive(pid, since):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"the run's process (pid {pid}) is gone: it was killed or stopped"
        )
