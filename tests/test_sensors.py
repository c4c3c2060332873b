"""Both sensors evaluated against a real Dagster instance (PostgreSQL storage) and warehouse."""

from __future__ import annotations

import json
import os
import time

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter, build_sensor_context
from meter_files import three_meters_two_feeders

from energy_assets.automation import loaded_months_sensor
from energy_assets.commands.session import platform_session
from energy_assets.definitions import defs
from energy_assets.ingest.assets import RAW_READINGS
from energy_assets.ingest.dropbox import RETRY_AFTER_SECONDS
from energy_assets.ingest.sensors import dropbox_sensor
from energy_assets.resources import Platform


def evaluate(sensor, instance, cursor, platform):
    resources = {
        "platform": Platform(home=str(platform.settings.home), warehouse_url=platform.warehouse_url)
    }
    context = build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    result = sensor(context)
    return result.run_requests, result.cursor


def test_sensors_request_ingest_then_exactly_the_touched_months(platform):
    dropbox = platform.settings.dropbox
    three_meters_two_feeders(dropbox)
    old = time.time() - 60
    for path in dropbox.iterdir():
        os.utime(path, (old, old))
    with platform_session(platform.settings):
        instance = DagsterInstance.get()

        requests, cursor = evaluate(dropbox_sensor, instance, None, platform)
        assert requests == []  # first look: files must be seen unchanged twice
        requests, cursor = evaluate(dropbox_sensor, instance, cursor, platform)
        assert len(requests) == 1
        seen = requests[0].run_config["ops"]["ingest_files"]["config"]["seen"]
        assert [f["name"] for f in seen] == sorted(p.name for p in dropbox.iterdir())
        assert [(f["size"], f["mtime"]) for f in seen] == [
            (p.lstat().st_size, p.lstat().st_mtime) for p in sorted(dropbox.iterdir())
        ]
        again, cursor = evaluate(dropbox_sensor, instance, cursor, platform)
        assert again == []  # the same files are not requested twice

        ingest = defs.resolve_job_def("ingest_dropbox").execute_in_process(
            run_config=requests[0].run_config, instance=instance
        )
        assert ingest.success
        materialized = instance.get_materialized_partitions(RAW_READINGS)
        assert materialized == {"2024-01", "2024-02"}

        requests, months_cursor = evaluate(loaded_months_sensor, instance, None, platform)
        month_requests = [r for r in requests if r.job_name == "monthly_marts_job"]
        assert sorted(r.partition_key for r in month_requests) == ["2024-01", "2024-02"]
        assert [r.job_name for r in requests if r not in month_requests] == [
            "unpartitioned_marts_job"
        ]
        again, _ = evaluate(loaded_months_sensor, instance, months_cursor, platform)
        assert again == []

        # A later file for March only asks for March.
        (dropbox / "M1_2024-03.csv").write_text("Start Time,kW del\n2024-03-05 00:00,1.5\n")
        defs.resolve_job_def("ingest_dropbox").execute_in_process(instance=instance)
        requests, _ = evaluate(loaded_months_sensor, instance, months_cursor, platform)
        assert [r.partition_key for r in requests if r.job_name == "monthly_marts_job"] == [
            "2024-03"
        ]


def test_dropbox_request_whose_run_failed_is_requested_again_under_a_new_key(platform):
    dropbox = platform.settings.dropbox
    (dropbox / "M1_2024-01.csv").write_text("Start Time,kW del\n2024-01-01 00:00,1.5\n")
    old = time.time() - 60
    os.utime(dropbox / "M1_2024-01.csv", (old, old))
    with platform_session(platform.settings):
        instance = DagsterInstance.get()
        _, cursor = evaluate(dropbox_sensor, instance, None, platform)
        [first], cursor = evaluate(dropbox_sensor, instance, cursor, platform)
        # Its run fails (say the run worker died and run monitoring marked it so).
        job = defs.resolve_job_def("ingest_dropbox")
        run = instance.create_run_for_job(
            job,
            run_config=first.run_config,
            tags={"dagster/sensor_name": dropbox_sensor.name, "dagster/run_key": first.run_key},
        )
        instance.report_run_failed(run)
        assert [r.status for r in instance.get_runs(run_key_filter(first.run_key))] == [
            DagsterRunStatus.FAILURE
        ]

        again, _ = evaluate(dropbox_sensor, instance, cursor, platform)
        assert again == []  # while the retry delay runs
        waited = json.loads(cursor)
        waited["requested"]["M1_2024-01.csv"][2] -= RETRY_AFTER_SECONDS  # as if it had passed
        [retry], _ = evaluate(dropbox_sensor, instance, json.dumps(waited), platform)

        assert retry.run_config == first.run_config
        assert retry.run_key != first.run_key
        # Dagster launches a sensor's request unless a run of that sensor has its key.
        assert instance.get_runs(run_key_filter(retry.run_key)) == []


def run_key_filter(key: str) -> RunsFilter:
    return RunsFilter(tags={"dagster/sensor_name": dropbox_sensor.name, "dagster/run_key": key})
