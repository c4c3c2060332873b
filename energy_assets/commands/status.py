"""`energy status`: what the platform has built, what is failing, what is waiting.

Read from the Dagster instance (materializations, asset check evaluations, runs), the
warehouse (quarantined files, months to rebuild) and the dropbox, so it answers the same
whether the daemon or `energy run` did the work.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path

from dagster import (
    AssetCheckKey,
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.dagster_run import RunRecord
from psycopg2.extensions import connection

from energy_assets.automation import RUN_HOST_TAG, WAITING, months_to_build, this_host
from energy_assets.ingest.dropbox import RETRY_AFTER_SECONDS, waiting_files
from energy_assets.launcher import process_alive
from energy_assets.months import month_ranges
from energy_assets.partitions import partition_key, run_months

RECENT_RUNS = 1000  # finished runs looked at; older failures have been superseded or are history
CHECK_HISTORY = 500  # evaluations per check looked at, enough for every month of a long history
SILENT_RUN_SECONDS = 30 * 60
"""A run in progress with no event for this long, whose process cannot be looked at from here
(another host or container), is taken for dead: no step of the platform is silent that long."""
RECENT_SECONDS = 24 * 3600  # quarantined files counted as recent
QUARANTINE_SHOWN = 5  # latest quarantined files named
_FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
_IN_PROGRESS = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


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
class RunState:
    """One run as status sees it."""

    job: str
    months: tuple[date, ...]
    """The months it builds; empty for a run that is not partitioned."""
    status: DagsterRunStatus
    run_id: str
    since: float
    """When it was created (a waiting run), started (in progress) or ended (finished)."""
    last_event: float | None = None
    dead: str | None = None
    """Why a run in progress is taken for dead (its process is gone); None while it may live."""

    @property
    def waiting(self) -> bool:
        return self.status in WAITING

    @property
    def failed(self) -> bool:
        return self.status == DagsterRunStatus.FAILURE or self.dead is not None


@dataclass(frozen=True)
class Quarantined:
    recent: int
    """Quarantined in the last RECENT_SECONDS."""
    total: int
    latest: list[tuple[str, str, datetime]] = field(default_factory=list)
    """(file, rule, when) of the latest ones."""


@dataclass(frozen=True)
class DroppedFile:
    """A file waiting in the dropbox (its readable name), and since when it has been there
    unchanged (a Unix time)."""

    name: str
    since: float


@dataclass
class Status:
    now: float
    assets: list[AssetState] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    runs: list[RunState] = field(default_factory=list)
    """The latest finished runs and every run waiting or in progress, newest first."""
    stale: list[date] = field(default_factory=list)
    """Months whose month assets are missing or older than the month's newest file."""
    quarantined: Quarantined = field(default_factory=lambda: Quarantined(0, 0))
    backlog: list[DroppedFile] = field(default_factory=list)

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    @property
    def failed_runs(self) -> list[tuple[RunState, list[date | None]]]:
        """Runs that failed or died and are the latest run to start of their job for some month
        (or of an unpartitioned job), with those months. A later run of the same work that has
        started supersedes them; one still waiting does not (it may wait behind a dead run)."""
        claimed = latest_claims(r for r in self.runs if not r.waiting)
        return [(r, claimed[r.run_id]) for r in self.runs if r.failed and claimed.get(r.run_id)]

    @property
    def active(self) -> list[RunState]:
        """Runs waiting, or in progress and alive."""
        return [r for r in self.runs if r.status not in _FINISHED and r.dead is None]

    @property
    def overdue(self) -> list[DroppedFile]:
        """Files still in the dropbox after the time the dropbox sensor retries them."""
        return [f for f in self.backlog if self.now - f.since > RETRY_AFTER_SECONDS]

    @property
    def failing(self) -> bool:
        """A blocking check failed, the latest run of some month or job failed or died, or a
        file waits in the dropbox past its retry time."""
        blocking = any(c.blocking for c in self.failed_checks)
        return blocking or bool(self.failed_runs) or bool(self.overdue)

    def pending(self) -> list[str]:
        """Work not done yet: runs waiting or under way, months to rebuild, files to load."""
        active = self.active
        counts = [
            (sum(r.waiting for r in active), "run waiting", "runs waiting"),
            (sum(not r.waiting for r in active), "run in progress", "runs in progress"),
            (len(self.stale), "month to rebuild", "months to rebuild"),
            (len(self.backlog), "file in the dropbox", "files in the dropbox"),
        ]
        return [f"{n} {one if n == 1 else many}" for n, one, many in counts if n]

    def verdict(self) -> str:
        if self.failing:
            return "FAILING"
        pending = self.pending()
        return f"PENDING: {', '.join(pending)}" if pending else "OK"

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
        lines += [f"  {run_line(r, months, self.now)}" for r, months in runs]
        active = self.active
        lines.append(f"runs waiting or in progress: {len(active)}")
        lines += [f"  {run_line(r, list(r.months), self.now)}" for r in active]
        lines.append(f"months to rebuild: {len(self.stale)}")
        lines += [f"  {months_label(self.stale)}"] if self.stale else []
        q = self.quarantined
        lines.append(
            f"quarantined files: {q.recent} in the last {RECENT_SECONDS // 3600} h,"
            f" {q.total} in total"
        )
        lines += [f"  {name} ({rule}) {when:%Y-%m-%d %H:%M} UTC" for name, rule, when in q.latest]
        lines.append(f"dropbox backlog: {len(self.backlog)} file(s)")
        overdue = self.overdue
        for waiting in self.backlog:
            line = f"  {waiting.name} waiting {duration(self.now - waiting.since)}"
            if waiting in overdue:
                line += f", past the {duration(RETRY_AFTER_SECONDS)} after which it is retried"
            lines.append(line)
        lines.append(self.verdict())
        return "\n".join(lines)


def duration(seconds: float) -> str:
    """`45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`."""
    seconds = int(max(seconds, 0))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def months_label(months: Iterable[date]) -> str:
    """`2024-01..2024-03, 2024-05`: consecutive months as ranges."""
    return ", ".join(
        partition_key(first) if first == last else f"{partition_key(first)}..{partition_key(last)}"
        for first, last in month_ranges(list(months))
    )


def run_line(run: RunState, months: list[date | None], now: float) -> str:
    """One line about a run: job, months, id, and what it is doing or why it failed."""
    label = months_label(m for m in months if m is not None)
    head = f"{run.job}" + (f" [{label}]" if label else "") + f" run {run.run_id[:8]}"
    if run.dead:
        return f"{head} started {duration(now - run.since)} ago: {run.dead}"
    status = run.status.value.lower()
    if run.waiting:
        return f"{head} {status} for {duration(now - run.since)}"
    if run.status in _IN_PROGRESS:
        heard = (
            f", last event {duration(now - run.last_event)} ago"
            if run.last_event is not None
            else ""
        )
        return f"{head} {status}, running for {duration(now - run.since)}{heard}"
    ended = datetime.fromtimestamp(run.since, UTC)
    return f"{head} ended {ended:%Y-%m-%d %H:%M} UTC ({status})"


def month_label(partition_key: str) -> str:
    """Month keys stay; `2024-01-01`, a key of homes from before keys were months: `2024-01`."""
    return partition_key[:7] if len(partition_key) == 10 else partition_key


def latest_month(partition_keys: Iterable[str]) -> str | None:
    """The newest month among partition keys (ISO dates sort as text)."""
    keys = sorted(partition_keys)
    return month_label(keys[-1]) if keys else None


def latest_claims(runs: Iterable[RunState]) -> dict[str, list[date | None]]:
    """For each run (newest first, as given), the months of its job it is the latest run of
    (None for a job that is not partitioned)."""
    claims: dict[str, list[date | None]] = {}
    seen: set[tuple[str, date | None]] = set()
    for run in runs:
        for month in run.months or (None,):
            if (run.job, month) not in seen:
                seen.add((run.job, month))
                claims.setdefault(run.run_id, []).append(month)
    return claims


def presumed_dead(pid: int | None, alive: bool | None, silent_for: float) -> str | None:
    """Why a run in progress is taken for dead, or None.

    `alive` says whether its process still runs, None when that cannot be seen from here (the
    run executes elsewhere, or has not reported its process yet): then only a silence longer
    than SILENT_RUN_SECONDS gives it away.
    """
    if alive is False:
        return f"its process (pid {pid}) is gone"
    if alive is None and silent_for > SILENT_RUN_SECONDS:
        return f"nothing heard of it for {duration(silent_for)}"
    return None


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


def run_state(instance: DagsterInstance, record: RunRecord, now: float) -> RunState:
    """A run record as status sees it; a run in progress is looked at for signs of life."""
    run = record.dagster_run
    state = RunState(
        job=run.job_name,
        months=tuple(run_months(run.tags)),
        status=run.status,
        run_id=run.run_id,
        since=record.end_time or record.start_time or record.create_timestamp.timestamp(),
    )
    if run.status not in _IN_PROGRESS:
        return state
    latest = instance.get_records_for_run(run.run_id, limit=1, ascending=False).records
    last_event = latest[0].timestamp if latest else state.since
    started = instance.get_records_for_run(
        run.run_id, of_type=DagsterEventType.RUN_START, limit=1
    ).records
    pid = started[0].event_log_entry.dagster_event.pid if started else None
    here = run.tags.get(RUN_HOST_TAG) == this_host()
    alive = process_alive(pid, state.since) if here and pid is not None else None
    return replace(state, last_event=last_event, dead=presumed_dead(pid, alive, now - last_event))


def run_states(instance: DagsterInstance, now: float) -> list[RunState]:
    """The latest finished runs and every run waiting or in progress, newest first."""
    finished = instance.get_run_records(filters=RunsFilter(statuses=_FINISHED), limit=RECENT_RUNS)
    unfinished = instance.get_run_records(filters=RunsFilter(statuses=WAITING + _IN_PROGRESS))
    records = sorted([*finished, *unfinished], key=lambda r: r.storage_id, reverse=True)
    return [run_state(instance, record, now) for record in records]


def quarantined_files(conn: connection, now: float) -> Quarantined:
    """How many files were quarantined lately and in all, and the latest of them."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "select count(*) filter (where processed_at > to_timestamp(%s)), count(*)"
            " from raw.files where status = 'quarantined'",
            (now - RECENT_SECONDS,),
        )
        recent, total = cur.fetchone()
        cur.execute(
            "select name, rule, processed_at from raw.files where status = 'quarantined'"
            " order by file_id desc limit %s",
            (QUARANTINE_SHOWN,),
        )
        latest = [(name, rule, when.astimezone(UTC)) for name, rule, when in cur.fetchall()]
    return Quarantined(recent, total, latest)


def backlog(dropbox: Path) -> list[DroppedFile]:
    """Files waiting in the dropbox, and since when (last written, or moved in: the inode's
    change time, which a copy that keeps an old modification time still updates)."""
    if not dropbox.exists():
        return []
    return [DroppedFile(w.name, w.path.lstat().st_ctime) for w in waiting_files(dropbox)]


def collect_status(
    instance: DagsterInstance, conn: connection, dropbox: Path, now: float | None = None
) -> Status:
    """Everything `energy status` prints, for the code location's assets and checks, as of
    `now` (a Unix time; the present when not given)."""
    from energy_assets.definitions import defs

    now = time.time() if now is None else now
    graph = defs.resolve_asset_graph()
    assets = {key: graph.get(key).partitions_def is not None for key in graph.get_all_asset_keys()}
    return Status(
        now=now,
        assets=asset_states(instance, assets),
        checks=check_results(instance, graph.asset_check_keys),
        runs=run_states(instance, now),
        stale=months_to_build(instance, conn),
        quarantined=quarantined_files(conn, now),
        backlog=backlog(dropbox),
    )
