"""The raw layer in Dagster: the tables ingest writes, and the job that loads dropped files."""

import itertools

from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    Config,
    MetadataValue,
    OpExecutionContext,
    in_process_executor,
    job,
    op,
)
from pydantic import Field

from energy_assets.ingest.dropbox import stable_files, waiting_files
from energy_assets.ingest.loader import FileOutcome, Ingest, Left
from energy_assets.partitions import monthly_partitions, partition_key
from energy_assets.resources import Platform

RAW_READINGS = AssetKey(["raw", "readings"])
RAW_METERS = AssetKey(["raw", "meters"])
RAW_FILE_METERS = AssetKey(["raw", "file_meters"])
RAW_WEATHER = AssetKey(["raw", "weather"])

raw_specs = [
    AssetSpec(
        RAW_READINGS,
        description="Interval readings in long form (raw.readings), one partition per month. "
        "Written by the ingest_dropbox job from files dropped in the dropbox.",
        partitions_def=monthly_partitions,
        group_name="raw",
    ),
    AssetSpec(
        RAW_METERS,
        description="Meter metadata (raw.meters), written by ingest_dropbox from meter-data files.",
        group_name="raw",
    ),
    AssetSpec(
        RAW_WEATHER,
        description="Observed weather per site (raw.weather), written by ingest_dropbox.",
        group_name="raw",
    ),
    AssetSpec(
        RAW_FILE_METERS,
        description="Per file and meter, the span and interval length it brought.",
        group_name="raw",
    ),
]


class SeenFile(Config):
    """A file as the dropbox sensor found it stable."""

    name: str
    size: int
    mtime: float


class IngestConfig(Config):
    files: list[str] = Field(
        default_factory=list,
        description="Names of files in the dropbox to load, each once it has been unchanged for"
        " ENERGY_FILE_STABLE_SECONDS; with no `seen` either, every file there.",
    )
    seen: list[SeenFile] = Field(
        default_factory=list,
        description="Files found stable by the dropbox sensor, with the size and mtime it saw:"
        " each loads only if it still has both, else it is left for the sensor's next look.",
    )


def seen_config(listing: dict[str, list[float]], names: list[str]) -> dict:
    """The run config that loads `names` as `listing` shows them (the sensor's request)."""
    seen = [{"name": n, "size": int(listing[n][0]), "mtime": listing[n][1]} for n in names]
    return {"ops": {"ingest_files": {"config": {"seen": seen}}}}


def outcome_row(outcome: FileOutcome) -> dict:
    return {
        "file": outcome.name,
        "status": outcome.status,
        "format": outcome.format,
        "rows": outcome.rows,
        "months": [f"{m:%Y-%m}" for m in outcome.months],
        "reason": outcome.reason,
        "file_id": outcome.file_id,
    }


@op(description="Load dropped files into the raw tables; quarantine what breaks the rules.")
def ingest_files(context: OpExecutionContext, config: IngestConfig, platform: Platform) -> list:
    settings = platform.settings()
    settings.ensure_dirs()
    waiting = {w.name: w for w in waiting_files(settings.dropbox)}
    asked = [*config.files, *(s.name for s in config.seen)]
    for name in asked:
        if name not in waiting:
            context.log.info(f"{name}: not waiting in the dropbox (taken, or not for ingest)")
    seen = [(waiting[s.name].path, (s.size, s.mtime)) for s in config.seen if s.name in waiting]
    names = config.files if asked else list(waiting)
    plain = [waiting[name].path for name in names if name in waiting]
    total, outcomes = len(seen) + len(plain), []
    with Ingest(settings, platform.warehouse_url) as ingest:
        files = itertools.chain(seen, stable_files(plain, settings.file_stable_seconds))
        for i, (path, signature) in enumerate(files, 1):
            result = ingest.ingest_file(path, signature)
            if isinstance(result, Left):
                context.log.info(f"[{i}/{total}] {result.name}: {result.why}")
                continue
            for outcome in [result, *result.members]:
                outcomes.append(outcome)
                context.log.info(
                    f"[{i}/{total}] {outcome.name}: {outcome.status}"
                    + (f", {outcome.rows} rows" if outcome.status == "loaded" else "")
                    + (f" ({outcome.reason})" if outcome.reason else "")
                )
    for event in materializations(outcomes):
        context.log_event(event)
    return [outcome_row(o) for o in outcomes]


def materializations(outcomes: list[FileOutcome]) -> list[AssetMaterialization]:
    """One event per raw month partition, and per other raw table, that the files changed."""
    events = []
    readings = [o for o in outcomes if o.status == "loaded" and o.kind == "readings"]
    months = sorted({m for o in readings for m in o.months})
    for month in months:
        files = [o for o in readings if month in o.months]
        events.append(
            AssetMaterialization(
                RAW_READINGS,
                partition=partition_key(month),
                metadata={
                    "files": MetadataValue.json([o.name for o in files]),
                    "file_rows": sum(o.rows for o in files),
                },
            )
        )
    # Per table: the kind of file that writes it (readings files add their meters' spans to
    # raw.file_meters) and the name of its row count.
    tables = [
        (RAW_FILE_METERS, "readings", "file_rows"),
        (RAW_METERS, "meters", "meters"),
        (RAW_WEATHER, "weather", "rows"),
    ]
    for key, kind, count in tables:
        loaded = [o for o in outcomes if o.status == "loaded" and o.kind == kind]
        if loaded:
            events.append(
                AssetMaterialization(
                    key,
                    metadata={
                        "files": MetadataValue.json([o.name for o in loaded]),
                        count: sum(o.rows for o in loaded),
                    },
                )
            )
    return events


# In the run's process, wherever the platform's steps execute: the files are where the sensor
# saw them.
@job(
    description="Load files from the dropbox into raw.* (run by the dropbox sensor).",
    executor_def=in_process_executor,
)
def ingest_dropbox() -> None:
    ingest_files()
