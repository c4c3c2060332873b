"""The dropbox sensor: stable files in the dropbox become ingest runs.

It stays cheap (a directory listing, a diff against the cursor, return): all parsing happens
inside the runs it requests.
"""

import hashlib
import json
import time

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, sensor

from energy_assets.ingest.assets import ingest_dropbox, seen_config
from energy_assets.ingest.dropbox import dropbox_listing, plan_dropbox_tick
from energy_assets.resources import Platform


@sensor(
    job=ingest_dropbox,
    minimum_interval_seconds=2,
    default_status=DefaultSensorStatus.RUNNING,
    description="Watches the dropbox and requests one ingest run per batch of stable files.",
)
def dropbox_sensor(context: SensorEvaluationContext, platform: Platform) -> SensorResult:
    settings = platform.settings()
    settings.dropbox.mkdir(parents=True, exist_ok=True)
    cursor = json.loads(context.cursor) if context.cursor else {}
    listing = dropbox_listing(settings.dropbox)
    ready, next_cursor = plan_dropbox_tick(
        listing, cursor, time.time(), settings.file_stable_seconds
    )
    requests = []
    if ready:
        asked = next_cursor["requested"]  # [size, mtime, requested at, attempt] per file
        # The attempt makes a re-request (after a failed or lost run) a new run key: Dagster
        # skips a request whose key it has seen.
        key = hashlib.sha1(
            json.dumps([[n, *asked[n][:2], asked[n][3]] for n in ready]).encode()
        ).hexdigest()
        requests.append(
            RunRequest(
                run_key=f"ingest-{key}",
                run_config=seen_config(listing, ready),
                tags={"energy/files": str(len(ready))},
            )
        )
    return SensorResult(run_requests=requests, cursor=json.dumps(next_cursor))
