"""Loading dropped files into the raw layer: one transaction per file, then archive or quarantine.

Each file is claimed with an advisory lock on its content hash, so two processes working on the
same dropbox (two `energy run`s, or a run beside the sensor) never load one file twice: the second
one waits, then finds the file gone (taken) or its content recorded (a duplicate).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection
from psycopg2.extras import execute_values

from energy_assets.ingest import raw_tables
from energy_assets.ingest.dropbox import sha256_of
from energy_assets.ingest.formats import Format, Match, load_formats, require_format
from energy_assets.ingest.parsing import ReadingsParser, parse_meters, parse_weather
from energy_assets.ingest.readers import Table, open_table
from energy_assets.ingest.rejections import Rejected
from energy_assets.months import month_start, months_between, months_of, next_month
from energy_assets.settings import Settings
from energy_assets.warehouse.database import connect, copy_frame

CHUNK_ROWS = 200_000
"""Rows of a file held in memory at once while it loads (plus a few values per meter)."""


@dataclass(frozen=True)
class Dropped:
    """A file taken from the dropbox: where it is, its content hash, when it arrived."""

    path: Path
    sha: str
    received_at: datetime


@dataclass
class FileOutcome:
    """What happened to one dropped file."""

    name: str
    status: str  # loaded | quarantined | duplicate
    file_id: int
    format: str | None = None
    rows: int = 0
    months: list[date] = field(default_factory=list)
    reason: str | None = None
    stored_as: Path | None = None
    kind: str | None = None  # readings | meters | weather, for loaded files


def _unique_destination(directory: Path, name: str, file_id: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    if os.path.lexists(target):
        path = Path(name)
        target = directory / f"{path.stem}.{file_id}{path.suffix}"
    return target


class Ingest:
    """One ingest session: a warehouse connection, the formats, and the platform's folders."""

    def __init__(self, settings: Settings, warehouse_url: str) -> None:
        self.settings = settings
        self.formats: list[Format] = load_formats(settings.home / "formats")
        self.conn: connection = connect(warehouse_url)
        self._partitioned_through: date | None = None
        self._ensure_partitions()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Ingest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ingest(self, paths: list[Path]) -> list[FileOutcome]:
        """Load each file in turn; a bad file is quarantined and the rest carry on."""
        outcomes = []
        for path in paths:
            outcome = self.ingest_file(path)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def ingest_file(self, path: Path) -> FileOutcome | None:
        """Load, quarantine or record as duplicate; None when another process took the file."""
        try:
            received_at = datetime.fromtimestamp(path.lstat().st_mtime, UTC)
            sha = (
                hashlib.sha256(os.readlink(path).encode()).hexdigest()
                if path.is_symlink()
                else sha256_of(path)
            )
        except FileNotFoundError:
            return None
        self._ensure_partitions()
        self._moved: list[tuple[Path, Path]] = []
        try:
            with self.conn, self.conn.cursor() as cur:
                return self._ingest_locked(cur, path, sha, received_at)
        except BaseException:
            for source, target in reversed(self._moved):  # rolled back: put the file back
                if target.name.endswith(".reason.json"):
                    target.unlink(missing_ok=True)
                else:
                    os.replace(target, source)
            raise

    def _ensure_partitions(self) -> None:
        """Give every month a reading may fall in its partition before any file's transaction.

        Timestamps before `first_month` or more than a day ahead are refused, so the months
        from `first_month` to the month after next cover every reading a file can hold, and no
        load ever needs DDL (which would wait on the load's own lock).
        """
        through = next_month(next_month(month_start(datetime.now(UTC).date())))
        if self._partitioned_through != through:
            months = months_between(self.settings.first_month, through)
            raw_tables.ensure_month_partitions(self.conn, months)
            self._partitioned_through = through

    def _ingest_locked(
        self, cur, path: Path, sha: str, received_at: datetime
    ) -> FileOutcome | None:
        cur.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (sha,))
        if not os.path.lexists(path):
            return None
        cur.execute(
            "select file_id, name from raw.files where sha256 = %s and status <> 'duplicate'",
            (sha,),
        )
        seen = cur.fetchone()
        dropped = Dropped(path, sha, received_at)
        if seen is not None:
            return self._record_duplicate(cur, dropped, seen)
        cur.execute("savepoint file_rows")
        try:
            if path.is_symlink():
                raise Rejected("symlink", f"{path.name} is a symbolic link; drop the file itself")
            try:
                return self._load(cur, dropped)
            except (Rejected, psycopg2.Error):
                raise
            except Exception as exc:  # an unreadable file must not stop the files behind it
                raise Rejected("unreadable", f"{path.name} could not be read: {exc}") from exc
        except Rejected as rejection:
            cur.execute("rollback to savepoint file_rows")  # nothing of it stays loaded
            return self._quarantine(cur, dropped, rejection)

    def _load(self, cur, dropped: Dropped) -> FileOutcome:
        table = open_table(dropped.path, CHUNK_ROWS)
        match = require_format(table.header, self.formats, dropped.path.name)
        loader = {"meters": self._load_meters, "weather": self._load_weather}.get(
            match.format.kind, self._load_readings
        )
        return loader(cur, dropped, table, match)

    def _timezone_lookup(self, cur):
        zones = raw_tables.meter_timezones(cur)
        default = self.settings.default_timezone
        return lambda meter: zones.get(meter, default)

    def _insert_file(self, cur, dropped: Dropped, **values) -> int:
        columns = ["sha256", "name", "received_at", *values]
        cur.execute(
            sql.SQL("insert into raw.files ({}) values ({}) returning file_id").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            ),
            [dropped.sha, dropped.path.name, dropped.received_at, *values.values()],
        )
        return cur.fetchone()[0]

    def _update_file(self, cur, file_id: int, **values) -> None:
        cur.execute(
            sql.SQL("update raw.files set ({}) = row({}) where file_id = %s").format(
                sql.SQL(", ").join(map(sql.Identifier, values)),
                sql.SQL(", ").join(sql.Placeholder() * len(values)),
            ),
            [*values.values(), file_id],
        )

    def _move(self, cur, path: Path, directory: Path, file_id: int) -> Path:
        """Move the file out of the dropbox inside the open transaction.

        Moved before commit so that a process waiting on the same content finds it gone; if the
        transaction then fails, `ingest_file` puts it back.
        """
        target = _unique_destination(directory, path.name, file_id)
        os.replace(path, target)
        self._moved.append((path, target))
        self._update_file(cur, file_id, stored_as=str(target))
        return target

    def _record_duplicate(self, cur, dropped: Dropped, seen: tuple) -> FileOutcome:
        original_id, original_name = seen
        reason = f"same content as file {original_id} ({original_name})"
        file_id = self._insert_file(
            cur, dropped, status="duplicate", reason=reason, duplicate_of=original_id
        )
        stored = self._move(cur, dropped.path, self.settings.archive / "duplicates", file_id)
        return FileOutcome(dropped.path.name, "duplicate", file_id, reason=reason, stored_as=stored)

    def _quarantine(self, cur, dropped: Dropped, rejection: Rejected) -> FileOutcome:
        file_id = self._insert_file(
            cur, dropped, status="quarantined", rule=rejection.rule, reason=rejection.message
        )
        stored = self._move(cur, dropped.path, self.settings.quarantine, file_id)
        details = {
            "file": dropped.path.name,
            "file_id": file_id,
            "sha256": dropped.sha,
            **rejection.as_dict(),
        }
        reason_file = stored.with_name(stored.name + ".reason.json")
        reason_file.write_text(json.dumps(details, indent=2, ensure_ascii=False) + "\n")
        self._moved.append((reason_file, reason_file))
        return FileOutcome(
            dropped.path.name,
            "quarantined",
            file_id,
            reason=f"{rejection.rule}: {rejection.message}",
            stored_as=stored,
        )

    def _load_readings(self, cur, dropped: Dropped, table: Table, match: Match) -> FileOutcome:
        earliest = pd.Timestamp(self.settings.first_month, tz="UTC")
        parser = ReadingsParser(match, dropped.path.name, self._timezone_lookup(cur), earliest)
        file_id = self._insert_file(cur, dropped, format=match.format.name, status="loaded")
        data_months: set[date] = set()
        records = rows = 0
        for chunk in table.chunks():
            records += len(chunk)
            readings = parser.feed(chunk, table.line_of)
            if readings.empty:
                continue
            data_months |= months_of(readings["interval_start"])
            raw_tables.copy_readings(cur, readings, file_id)
            rows += len(readings)
        if records == 0:
            raise Rejected("header_only", f"{dropped.path.name} has a header but no data rows")
        if rows == 0:
            raise Rejected("no_values", f"{dropped.path.name} has no values, only blanks")
        if parser.needs_duplicate_check:
            raw_tables.check_file_duplicates(cur, file_id)
        per_meter = parser.summary()
        months = data_months | self._widened_months(cur, per_meter)
        execute_values(
            cur,
            "insert into raw.file_meters (file_id, meter_id, interval_seconds, first_interval,"
            " last_interval, rows) values %s",
            [
                (file_id, meter, r.interval_seconds, r.first_interval, r.last_interval, r.rows)
                for meter, r in per_meter.iterrows()
            ],
        )
        raw_tables.upsert_meter_attributes(cur, parser.attributes, file_id)
        self._update_file(
            cur,
            file_id,
            rows=rows,
            months=sorted(months),
            first_interval=per_meter["first_interval"].min(),
            last_interval=per_meter["last_interval"].max(),
        )
        first_month = min(data_months)
        stored = self._move(
            cur, dropped.path, self.settings.archive / f"{first_month:%Y-%m}", file_id
        )
        return FileOutcome(
            dropped.path.name,
            "loaded",
            file_id,
            match.format.name,
            rows,
            sorted(months),
            stored_as=stored,
            kind="readings",
        )

    def _widened_months(self, cur, per_meter: pd.DataFrame) -> set[date]:
        """Months a meter's clean grid newly covers because this file widened its span.

        The grid of a meter runs from its first to its last reading, so a file after a pause
        adds gap rows to the months in between, and those must be rebuilt too.
        """
        spans = raw_tables.meter_spans(cur, list(per_meter.index))
        months: set[date] = set()
        for meter, row in per_meter.iterrows():
            new = months_between(row.first_interval, row.last_interval)
            if meter in spans:
                old_first, old_last = spans[meter]
                widened = months_between(
                    min(old_first, row.first_interval), max(old_last, row.last_interval)
                )
                new = set(widened) - set(months_between(old_first, old_last))
            months.update(new)
        return months

    def _load_meters(self, cur, dropped: Dropped, table: Table, match: Match) -> FileOutcome:
        chunks = list(table.chunks())  # metadata files are small: one row per meter
        if not chunks:
            raise Rejected("header_only", f"{dropped.path.name} has a header but no data rows")
        meters = parse_meters(pd.concat(chunks), match, table.line_of)
        if "name" not in meters and "feeder" in meters:
            meters = meters.assign(name=meters["feeder"])
        file_id = self._insert_file(
            cur, dropped, format=match.format.name, status="loaded", rows=len(meters)
        )
        changed = raw_tables.upsert_meters(cur, meters, file_id)
        # Months holding readings of meters whose metadata is new or changed get rebuilt.
        spans = raw_tables.meter_spans(cur, changed)
        months = sorted({m for a, b in spans.values() for m in months_between(a, b)})
        self._update_file(cur, file_id, months=months)
        stored = self._move(cur, dropped.path, self.settings.archive / "metadata", file_id)
        return FileOutcome(
            dropped.path.name,
            "loaded",
            file_id,
            match.format.name,
            len(meters),
            months,
            stored_as=stored,
            kind="meters",
        )

    def _load_weather(self, cur, dropped: Dropped, table: Table, match: Match) -> FileOutcome:
        file_id = self._insert_file(cur, dropped, format=match.format.name, status="loaded")
        rows, first, last = 0, None, None
        cur.execute(
            "create temporary table weather_load (like raw.weather including defaults)"
            " on commit drop"
        )
        for chunk in table.chunks():
            weather = parse_weather(chunk, match, table.line_of)
            if weather.empty:
                continue
            copy_frame(cur, "pg_temp.weather_load", weather.assign(file_id=file_id))
            rows += len(weather)
            first = min(filter(None, [first, weather["observed_at"].min()]))
            last = max(filter(None, [last, weather["observed_at"].max()]))
        if rows == 0:
            raise Rejected("no_values", f"{dropped.path.name} has no weather values")
        cur.execute(
            "insert into raw.weather select distinct on (site_id, variable, observed_at) *"
            " from weather_load order by site_id, variable, observed_at"
            " on conflict (site_id, variable, observed_at)"
            " do update set value = excluded.value, file_id = excluded.file_id"
        )
        cur.execute("drop table weather_load")
        self._update_file(cur, file_id, rows=rows, first_interval=first, last_interval=last)
        stored = self._move(cur, dropped.path, self.settings.archive / "weather", file_id)
        return FileOutcome(
            dropped.path.name,
            "loaded",
            file_id,
            match.format.name,
            rows,
            [],
            stored_as=stored,
            kind="weather",
        )
