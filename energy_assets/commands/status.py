"""`energy status`: what the platform has built, what is failing, what is waiting.

Read from the Dagster instance (materializations, asset check evaluations, runs) and the
dropbox, so it answers the same whether the daemon or `energy run` did the work.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from dagster import AssetCheckKey, AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from energy_assets.ingest.dropbox import dropbox_files

RECENT_RUNS = 1000  # finished runs looked at; older failures have been superseded or are history
CHECK_HISTORY = 500  # evaluations per check looked at, enough for every month of a long history
_FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
_RANGE_START = "dagster/asset_partition_range_start"
_RANGE_END = "dagster/asset_partition_range_end"


@dataclass(frozen=True)
class AssetState:
    asset: str
    partitioned: bool
    latest: str | None
    """The newest materialized month (YYYY-MM), or for an unpartitioned asset the time of its
    last materialization; None when never materialized."""


@dataclass(frozen=True)
class CheckResult:
    asset: str
    check: str
    partition: str | None
    passed: bool
    blocking: bool
    """Severity ERROR: a failure stops what depends on it (WARN failures are only reported)."""
    run_id: str


@dataclass(frozen=True)
class RunResult:
    job: str
    partition: str | None
    status: str
    run_id: str
    ended: datetime | None


@dataclass
class Status:
    assets: list[AssetState] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    runs: list[RunResult] = field(default_factory=list)
    """The latest finished run of each job (and partition)."""
    backlog: list[str] = field(default_factory=list)

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    @property
    def failed_runs(self) -> list[RunResult]:
        return [r for r in self.runs if r.status == DagsterRunStatus.FAILURE.value]

    @property
    def failing(self) -> bool:
        """A blocking check failed, or the latest run of some job (and month) failed."""
        return any(c.blocking for c in self.failed_checks) or bool(self.failed_runs)

    def report(self) -> str:
        width = max((len(a.asset) for a in self.assets), default=5) + 2
        lines = [f"{'asset':<{width}}latest"]
        lines += [f"{a.asset:<{width}}{a.latest or 'never'}" for a in self.assets]
        failed = self.failed_checks
        lines.append(f"\nfailing checks: {len(failed)}")
        lines += [
            f"  {'FAILED' if c.blocking else 'warn  '} {c.asset} {c.check}"
            + (f" [{month_label(c.partition)}]" if c.partition else "")
            + f" (run {c.run_id[:8]})"
            for c in failed
        ]
        runs = self.failed_runs
        lines.append(f"failed runs: {len(runs)}")
        lines += [
            f"  {r.job}"
            + (f" [{r.partition}]" if r.partition else "")
            + f" run {r.run_id[:8]}"
            + (f" ended {r.ended:%Y-%m-%d %H:%M} UTC" if r.ended else "")
            for r in runs
        ]
        lines.append(f"dropbox backlog: {len(self.backlog)} file(s)")
        lines += [f"  {name}" for name in self.backlog]
        lines.append("FAILING" if self.failing else "OK")
        return "\n".join(lines)


def month_label(partition_key: str) -> str:
    """Month keys stay; `2024-01-01`, a key of homes from before keys were months: `2024-01`."""
    return partition_key[:7] if len(partition_key) == 10 else partition_key


def latest_month(partition_keys: Iterable[str]) -> str | None:
    """The newest month among partition keys (ISO dates sort as text)."""
    keys = sorted(partition_keys)
    return month_label(keys[-1]) if keys else None


def run_partition(tags: dict[str, str]) -> str | None:
    """The month or month range a run built, from its tags."""
    if "dagster/partition" in tags:
        return month_label(tags["dagster/partition"])
    if _RANGE_START in tags:
        first, last = month_label(tags[_RANGE_START]), month_label(tags.get(_RANGE_END, ""))
        return first if first == last else f"{first}..{last}"
    return None


def latest_runs(runs: Iterable[RunResult]) -> list[RunResult]:
    """The first run (newest, as given) of each job and partition: a failure that a later run of
    the same work fixed is no longer failing."""
    latest: dict[tuple[str, str | None], RunResult] = {}
    for run in runs:
        latest.setdefault((run.job, run.partition), run)
    return list(latest.values())


def asset_name(key: AssetKey) -> str:
    return "/".join(key.path)


def asset_states(instance: DagsterInstance, assets: dict[AssetKey, bool]) -> list[AssetState]:
    """`assets` maps each asset key to whether it is partitioned by month."""
    states = []
    for key, partitioned in sorted(assets.items(), key=lambda item: item[0].path):
        if partitioned:
            latest = latest_month(instance.get_materialized_partitions(key))
        else:
            event = instance.get_latest_materialization_event(key)
            latest = (
                f"{datetime.fromtimestamp(event.timestamp, UTC):%Y-%m-%d %H:%M} UTC"
                if event is not None
                else None
            )
        states.append(AssetState(asset_name(key), partitioned, latest))
    return states


def check_results(instance: DagsterInstance, check_keys: Iterable[AssetCheckKey]) -> list:
    """The latest completed evaluation of each check, per month where checks are per month."""
    completed = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
    results = []
    for key in sorted(check_keys, key=lambda k: (k.asset_key.path, k.name)):
        history = instance.event_log_storage.get_asset_check_execution_history(
            key, limit=CHECK_HISTORY, status=completed
        )
        seen: set[str | None] = set()
        for record in history:  # newest first
            if record.partition in seen:
                continue
            seen.add(record.partition)
            evaluation = record.event.dagster_event.event_specific_data if record.event else None
            blocking = (
                evaluation.severity.value == "ERROR"
                if isinstance(evaluation, AssetCheckEvaluation)
                else True
            )
            results.append(
                CheckResult(
                    asset=asset_name(key.asset_key),
                    check=key.name,
                    partition=record.partition,
                    passed=record.status == AssetCheckExecutionRecordStatus.SUCCEEDED,
                    blocking=blocking,
                    run_id=record.run_id,
                )
            )
    return results


def run_results(instance: DagsterInstance) -> list[RunResult]:
    records = instance.get_run_records(filters=RunsFilter(statuses=_FINISHED), limit=RECENT_RUNS)
    return latest_runs(
        RunResult(
            job=record.dagster_run.job_name,
            partition=run_partition(record.dagster_run.tags),
            status=record.dagster_run.status.value,
            run_id=record.dagster_run.run_id,
            ended=datetime.fromtimestamp(record.end_time, UTC) if record.end_time else None,
        )
        for record in records
    )


def collect_status(instance: DagsterInstance, dropbox: Path) -> Status:
    """Everything `energy status` prints, for the code location's assets and checks."""
    from energy_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    assets = {key: graph.get(key).partitions_def is not None for key in graph.get_all_asset_keys()}
    return Status(
        assets=asset_states(instance, assets),
        checks=check_results(instance, graph.asset_check_keys),
        runs=run_results(instance),
        backlog=[p.name for p in dropbox_files(dropbox)] if dropbox.exists() else [],
    )
