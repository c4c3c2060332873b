"""The months sensor on a real Dagster instance and warehouse: a first start adopts the months
already built from their files, a month gets one waiting run however many files arrive, and a
correction leaves the run queue before a backlog of history."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, date, datetime

import dagster_runs
import psycopg2
import pytest
from dagster import (
    AssetMaterialization,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    RunRequest,
    SensorResult,
    SkipReason,
    build_run_status_sensor_context,
    build_sensor_context,
)
from dagster_runs import MONTH_JOB
from meter_files import three_meters_two_feeders, write_meter_data, write_meter_file

from energy_assets.automation import (
    BACKTEST_KEYS,
    HISTORY_KEY,
    PENDING_FILE_SECONDS,
    advance,
    backtest_after_its_history,
    loaded_months_sensor,
    read_cursor,
    stale_months,
    waiting_runs,
)
from energy_assets.backlog import month_priority
from energy_assets.commands.run import run_once
from energy_assets.commands.session import platform_session
from energy_assets.definitions import defs
from energy_assets.ingest.loader import Ingest
from energy_assets.partitions import (
    PARTITION_TAG,
    PRIORITY_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    run_months,
)
from energy_assets.resources import Platform


@pytest.fixture
def instance(platform) -> Iterator[DagsterInstance]:
    with platform_session(platform.settings), DagsterInstance.get() as instance:
        yield instance


def resources(platform) -> dict[str, Platform]:
    return {
        "platform": Platform(home=str(platform.settings.home), warehouse_url=platform.warehouse_url)
    }


def evaluate(platform, instance, cursor: str | None) -> SensorResult | SkipReason:
    context = build_sensor_context(instance=instance, cursor=cursor, resources=resources(platform))
    return loaded_months_sensor(context)


def tick(platform, instance, cursor: str | None) -> tuple[list[RunRequest], str]:
    result = evaluate(platform, instance, cursor)
    return result.run_requests, result.cursor


def months(requests: list[RunRequest]) -> list[str]:
    return sorted(r.partition_key for r in requests if r.job_name == MONTH_JOB)


def load(platform, instance, *files: tuple[str, str, str]) -> None:
    """Drop (name, first day, end day) meter files and load them as the ingest run does."""
    for name, first, end in files:  # the content differs by name, or it would be a duplicate
        write_meter_file(platform.settings.dropbox, name, first, end, 30, zlib.crc32(name.encode()))
    result = defs.resolve_job_def("ingest_dropbox").execute_in_process(instance=instance)
    assert [row["status"] for row in result.output_for_node("ingest_files")] == ["loaded"] * len(
        files
    )


def spans(requests: list[RunRequest]) -> list[str]:
    """The months of each month request: `2024-03`, or `2024-01..2024-11` for a backfill."""
    return [
        r.partition_key or f"{r.tags[RANGE_START_TAG]}..{r.tags[RANGE_END_TAG]}"
        for r in requests
        if r.job_name == MONTH_JOB
    ]


def run_span(run: DagsterRun) -> str:
    """`2024-03`, `2024-01..2024-11` or, for the views run, `views`."""
    months = [f"{m:%Y-%m}" for m in run_months(run.tags)]
    if len(months) > 1:
        return f"{months[0]}..{months[-1]}"
    return months[0] if months else "views"


def submit(instance, request: RunRequest, enqueue: bool = True) -> DagsterRun:
    """The run the daemon makes of a month request: created, then (unless not `enqueue`)
    handed to the run queue."""
    partition = {PARTITION_TAG: request.partition_key} if request.partition_key else {}
    run = dagster_runs.create(instance, {**request.tags, **partition})
    if enqueue:
        dagster_runs.enqueue(instance, run)
    return run


def test_first_start_adopts_the_months_energy_run_built(platform, instance):
    three_meters_two_feeders(platform.settings.dropbox)
    assert run_once(platform.settings).ok

    requests, cursor = tick(platform, instance, None)
    assert requests == []
    assert json.loads(cursor) == {
        "after": platform.scalar("select max(file_id) from raw.files"),
        "pending": {},
    }

    load(platform, instance, ("M1_2024-03.csv", "2024-03-01", "2024-03-02"))
    requests, _ = tick(platform, instance, cursor)
    assert months(requests) == ["2024-03"]


def test_first_start_requests_the_months_built_from_older_files(platform, instance):
    three_meters_two_feeders(platform.settings.dropbox)
    assert run_once(platform.settings).ok
    # Loaded while nothing rebuilt the month (the platform was stopped after the ingest).
    load(platform, instance, ("M4_2024-02.csv", "2024-02-03", "2024-02-05"))

    requests, _ = tick(platform, instance, None)
    assert months(requests) == ["2024-02"]


def test_a_month_gets_one_waiting_run_however_many_files_arrive(platform, instance):
    load(
        platform,
        instance,
        ("M1_2024-01.csv", "2024-01-01", "2024-01-02"),
        ("M1_2024-02.csv", "2024-02-01", "2024-02-02"),
    )
    requests, cursor = tick(platform, instance, None)
    assert months(requests) == ["2024-01", "2024-02"]
    january, february = sorted(
        (r for r in requests if r.job_name == MONTH_JOB), key=lambda r: r.partition_key
    )
    submit(instance, january)
    february_run = submit(instance, february, enqueue=False)  # created, not yet queued

    # Files keep arriving for both months while their runs wait: those runs will read them.
    for meter in range(10, 14):
        load(
            platform,
            instance,
            (f"M{meter}_2024-01.csv", "2024-01-05", "2024-01-06"),
            (f"M{meter}_2024-02.csv", "2024-02-05", "2024-02-06"),
        )
        requests, cursor = tick(platform, instance, cursor)
        assert requests == []

    # February's run starts: it may have read the month already, so a new file asks for one
    # more run after it, and only one however many more files arrive.
    dagster_runs.start(instance, february_run)
    load(platform, instance, ("M20_2024-02.csv", "2024-02-07", "2024-02-08"))
    requests, cursor = tick(platform, instance, cursor)
    assert months(requests) == ["2024-02"]
    submit(instance, next(r for r in requests if r.job_name == MONTH_JOB))
    for meter in (21, 22):
        load(platform, instance, (f"M{meter}_2024-02.csv", "2024-02-09", "2024-02-10"))
        requests, cursor = tick(platform, instance, cursor)
        assert requests == []

    # A month with no run waiting is requested as ever.
    load(platform, instance, ("M23_2024-03.csv", "2024-03-01", "2024-03-02"))
    requests, _ = tick(platform, instance, cursor)
    assert months(requests) == ["2024-03"]


def test_stale_months_are_those_some_month_asset_built_before_their_newest_file():
    jan, feb, mar = date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)
    loaded = {
        jan: datetime(2024, 4, 1, 10, tzinfo=UTC),
        feb: datetime(2024, 4, 1, 11, tzinfo=UTC),
        mar: datetime(2024, 4, 1, 12, tzinfo=UTC),
    }
    after = datetime(2024, 4, 1, 12, 30, tzinfo=UTC).timestamp()
    before = datetime(2024, 4, 1, 10, 30, tzinfo=UTC).timestamp()
    clean_grid = {jan: after, feb: after}
    feeders = {jan: after, feb: before}  # February's run died after the clean grid
    assert stale_months(loaded, [clean_grid, feeders]) == [feb, mar]  # March: never built
    assert stale_months(loaded, [{jan: after, feb: after, mar: after}]) == []
    assert stale_months({}, [clean_grid]) == []


def test_run_months_reads_a_partition_or_a_range():
    assert run_months({"dagster/partition": "2024-03"}) == [date(2024, 3, 1)]
    assert run_months({"dagster/partition": "2024-03-01"}) == [date(2024, 3, 1)]
    assert run_months(
        {
            "dagster/asset_partition_range_start": "2023-12",
            "dagster/asset_partition_range_end": "2024-02",
        }
    ) == [date(2023, 12, 1), date(2024, 1, 1), date(2024, 2, 1)]
    assert run_months({"energy/month-run": "true"}) == []


def test_a_file_committed_after_one_with_a_higher_id_is_not_missed(platform, instance):
    """File ids are handed out when a load begins and seen when it commits: a long load can
    commit after a later, shorter one, past the cursor."""
    dropbox = platform.settings.dropbox
    load(platform, instance, ("M1_2024-01.csv", "2024-01-01", "2024-01-02"))
    _, cursor = tick(platform, instance, None)
    write_meter_file(dropbox, "M2_2024-03.csv", "2024-03-01", "2024-03-02", 30, 2)
    write_meter_data(dropbox)

    blocker = psycopg2.connect(platform.warehouse_url)  # holds March's load before its commit
    with blocker.cursor() as cur:
        cur.execute("lock table raw.file_meters in share mode")
    with Ingest(platform.settings, platform.warehouse_url) as slow:
        march = threading.Thread(target=slow.ingest_file, args=(dropbox / "M2_2024-03.csv",))
        march.start()
        waiting = (
            "select count(*) from pg_locks l join pg_class c on c.oid = l.relation"
            " where not l.granted and c.relname = 'file_meters'"
        )
        deadline = time.monotonic() + 120
        while platform.scalar(waiting) == 0:  # its raw.files row is written, not committed
            assert time.monotonic() < deadline, "the March load never reached raw.file_meters"
            time.sleep(0.1)
        with Ingest(platform.settings, platform.warehouse_url) as quick:
            metadata = quick.ingest_file(dropbox / "meter-data.csv")  # M1's feeder: January
        assert metadata.months == [date(2024, 1, 1)]
        requests, cursor = tick(platform, instance, cursor)
        assert months(requests) == ["2024-01"]
        blocker.close()
        march.join()

    assert platform.scalar("select status from raw.files where name = 'M2_2024-03.csv'") == (
        "loaded"
    )
    assert platform.scalar(
        "select file_id from raw.files where name = 'M2_2024-03.csv'"
    ) < platform.scalar("select file_id from raw.files where name = 'meter-data.csv'")
    requests, cursor = tick(platform, instance, cursor)
    assert months(requests) == ["2024-03"]


def test_skipped_file_ids_are_looked_for_until_they_appear_or_a_day_passes():
    assert read_cursor(None) == (0, {})
    assert read_cursor("17") == (17, {})  # a cursor from before pending ids
    # Ids 3 and 5 are not visible yet when 6 is.
    after, pending = advance(2, {}, 6, [4, 6], now=100.0)
    assert (after, pending) == (6, {3: 100.0, 5: 100.0})
    assert read_cursor(json.dumps({"after": after, "pending": pending})) == (after, pending)
    # 5 commits later; 3 never does (its load rolled back) and is forgotten after a day.
    after, pending = advance(after, pending, 7, [5, 7], now=200.0)
    assert (after, pending) == (7, {3: 100.0})
    after, pending = advance(after, pending, 7, [], now=100.0 + PENDING_FILE_SECONDS)
    assert (after, pending) == (7, {})


def test_a_correction_leaves_the_queue_before_a_backlog_of_history(platform, monkeypatch):
    """A year dropped at once, then corrections of March: each March run starts before the
    rest of the year, the newest months next; two months run at once (so a run per month),
    never two runs of one month, and a month never waits in the queue twice."""
    monkeypatch.setenv("ENERGY_MONTH_RUN_CONCURRENCY", "2")  # the sensor's settings
    settings = dataclasses.replace(platform.settings, month_run_concurrency=2)  # dagster.yaml
    year = [f"2024-{m:02d}" for m in range(1, 13)]
    with platform_session(settings), DagsterInstance.get() as instance:
        load(platform, instance, *((f"M1_{m}.csv", f"{m}-01", f"{m}-03") for m in year))
        requests, cursor = tick(platform, instance, None)
        assert months(requests) == year
        runs = {r.partition_key: submit(instance, r) for r in requests if r.job_name == MONTH_JOB}
        (views,) = (r for r in requests if r.job_name != MONTH_JOB)
        dagster_runs.enqueue(instance, dagster_runs.create(instance, views.tags, views.job_name))

        # A corrected file for March rides along with March's waiting run and raises it.
        load(platform, instance, ("M1_2024-03-fix.csv", "2024-03-02", "2024-03-03"))
        requests, cursor = tick(platform, instance, cursor)
        assert requests == []
        march = instance.get_run_by_id(runs["2024-03"].run_id)
        assert march.tags[PRIORITY_TAG] == str(month_priority(date(2024, 3, 1), True))

        def dequeue_and_start() -> list[DagsterRun]:
            chosen = dagster_runs.dequeue(instance)
            for run in chosen:
                dagster_runs.start(instance, run)
            return chosen

        def keys(chosen: list[DagsterRun]) -> list[str]:
            return [run.tags.get(PARTITION_TAG, "views") for run in chosen]

        assert keys(dequeue_and_start()) == ["2024-03", "2024-12"]
        # Corrected again while its run is under way: March gets one more run, ahead of all.
        load(platform, instance, ("M1_2024-03-fix2.csv", "2024-03-01", "2024-03-02"))
        requests, cursor = tick(platform, instance, cursor)
        assert months(requests) == ["2024-03"]
        submit(instance, requests[0])
        # December done: the second March run waits for the first; November goes instead.
        dagster_runs.finish(instance, runs["2024-12"])
        running = dequeue_and_start()
        assert keys(running) == ["2024-11"]
        dagster_runs.finish(instance, runs["2024-03"])
        running += dequeue_and_start()
        assert keys(running) == ["2024-11", "2024-03"]

        started = []
        while running:  # each run finishes in the order it started
            dagster_runs.finish(instance, running.pop(0))
            chosen = dequeue_and_start()
            running += chosen
            started += keys(chosen)
        assert started == [*reversed(year[3:10]), "2024-02", "2024-01", "views"]
        assert waiting_runs(instance) == {}
        per_month = [
            run.tags[PARTITION_TAG] for run in instance.get_runs() if run.job_name == MONTH_JOB
        ]
        assert sorted(per_month) == sorted([*year, "2024-03"])
        assert views.tags.get(PRIORITY_TAG) is None


def test_months_are_requested_once_the_ingest_run_has_loaded_every_file(platform, instance):
    """Files commit one by one during an ingest run: the sensor waits for its end, so the
    months of one drop are requested in one tick."""
    load(platform, instance, ("M1_2024-01.csv", "2024-01-01", "2024-01-02"))
    requests, cursor = tick(platform, instance, None)
    ingest = dagster_runs.create(instance, {}, "ingest_dropbox")
    dagster_runs.start(instance, ingest)
    load(platform, instance, ("M1_2024-02.csv", "2024-02-01", "2024-02-02"))
    assert isinstance(evaluate(platform, instance, cursor), SkipReason)
    dagster_runs.finish(instance, ingest)
    requests, _ = tick(platform, instance, cursor)
    assert months(requests) == ["2024-02"]


def test_a_backlog_goes_as_one_backfill_that_a_correction_splits(platform, monkeypatch):
    """One month run at a time (the default): a year dropped at once is the newest month's run
    and one backfill of the other eleven. A correction of March cancels the waiting backfill:
    March runs first, alone, then the newest months; every month is built once."""
    monkeypatch.setenv("ENERGY_BACKLOG_RANGE_MONTHS", "4")
    year = [f"2024-{m:02d}" for m in range(1, 13)]
    with platform_session(platform.settings), DagsterInstance.get() as instance:
        load(platform, instance, *((f"M1_{m}.csv", f"{m}-01", f"{m}-03") for m in year))
        requests, cursor = tick(platform, instance, None)
        assert spans(requests) == ["2024-12", "2024-01..2024-11"]
        month_runs = [r for r in requests if r.job_name == MONTH_JOB]
        backlog = {s: submit(instance, r) for s, r in zip(spans(requests), month_runs, strict=True)}
        assert run_months(backlog["2024-01..2024-11"].tags) == [
            date(2024, m, 1) for m in range(1, 12)
        ]
        (views,) = (r for r in requests if r.job_name != MONTH_JOB)
        dagster_runs.enqueue(instance, dagster_runs.create(instance, views.tags, views.job_name))
        (first,) = dagster_runs.dequeue(instance)
        assert first.tags[PARTITION_TAG] == "2024-12"
        dagster_runs.start(instance, first)

        load(platform, instance, ("M1_2024-03-fix.csv", "2024-03-02", "2024-03-03"))
        requests, cursor = tick(platform, instance, cursor)
        assert spans(requests) == ["2024-11", "2024-03", "2024-04..2024-10", "2024-01..2024-02"]
        cancelled = instance.get_run_by_id(backlog["2024-01..2024-11"].run_id)
        assert cancelled.status == DagsterRunStatus.CANCELED
        runs = [submit(instance, r) for r in requests if r.job_name == MONTH_JOB]
        assert [int(run.tags[PRIORITY_TAG]) for run in runs] == [
            month_priority(date(2024, 11, 1), False),
            month_priority(date(2024, 3, 1), True),
            month_priority(date(2024, 10, 1), False),
            month_priority(date(2024, 2, 1), False),
        ]

        started, running = [], first
        while running is not None:  # one month run at a time, by priority
            dagster_runs.finish(instance, running)
            chosen = dagster_runs.dequeue(instance)
            running = chosen[0] if chosen else None
            if running is not None:
                dagster_runs.start(instance, running)
                started.append(run_span(running))
        assert started == ["2024-03", "2024-11", "2024-04..2024-10", "2024-01..2024-02", "views"]
        built = [
            f"{m:%Y-%m}"
            for run in instance.get_runs()
            if run.job_name == MONTH_JOB and run.status == DagsterRunStatus.SUCCESS
            for m in run_months(run.tags)
        ]
        assert sorted(built) == year
        assert waiting_runs(instance) == {}


def test_a_month_built_after_the_month_it_precedes_gets_that_months_backtest_again(
    platform, instance, monkeypatch
):
    """February was backtested before January was built (a backlog built newest first): once
    January's run has succeeded, February's backtest and anomalies are requested again; not
    when February's backtest is newer than January, nor while a run of February waits."""
    monkeypatch.setenv("ENERGY_FORECASTS", "on")

    def materialize(key, month: str) -> None:
        instance.report_runless_asset_event(AssetMaterialization(asset_key=key, partition=month))

    def after_january_run():
        run = dagster_runs.create(instance, {PARTITION_TAG: "2024-01"})
        dagster_runs.start(instance, run)
        dagster_runs.finish(instance, run)
        [success] = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_SUCCESS)
        context = build_run_status_sensor_context(
            sensor_name=backtest_after_its_history.name,
            dagster_event=success.dagster_event,
            dagster_instance=instance,
            dagster_run=run,
            resources=resources(platform),
        )
        return backtest_after_its_history(context), run

    materialize(BACKTEST_KEYS[0], "2024-02")
    materialize(HISTORY_KEY, "2024-01")
    request, run = after_january_run()
    assert isinstance(request, RunRequest)
    assert (request.partition_key, request.asset_selection) == ("2024-02", BACKTEST_KEYS)
    assert request.run_key == f"backtest-{run.run_id}"
    assert request.tags[PRIORITY_TAG] == str(month_priority(date(2024, 2, 1), False))

    waiting = submit(instance, RunRequest(partition_key="2024-02", tags={}))
    assert isinstance(after_january_run()[0], SkipReason)
    dagster_runs.start(instance, waiting)
    dagster_runs.finish(instance, waiting)
    materialize(BACKTEST_KEYS[0], "2024-02")
    assert isinstance(after_january_run()[0], SkipReason)
