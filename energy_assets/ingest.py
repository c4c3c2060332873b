"""Loading dropped files into the raw layer: one transaction per file, then archive or quarantine.

Each file is claimed with an advisory lock on its content hash, so two processes working on the
same dropbox (two `energy run`s, or a run beside the sensor) never load one file twice: the second
one waits, then finds the file gone (taken) or its content recorded (a duplicate).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
from psycopg2 import sql
from psycopg2.extensions import connection
from psycopg2.extras import execute_values

from energy_assets import warehouse
from energy_assets.formats import Format, load_formats
from energy_assets.parsing import ParsedFile, parse_file
from energy_assets.rejections import Rejected
from energy_assets.settings import Settings

METER_FIELDS = ("name", "feeder", "customer_id", "multiplier", "site_id", "timezone")


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


def dropbox_files(dropbox: Path) -> list[Path]:
    """Entries waiting in the dropbox, oldest first; hidden files are still being copied in."""
    entries = [p for p in dropbox.iterdir() if not p.name.startswith(".")]
    entries = [p for p in entries if p.is_symlink() or p.is_file()]
    return sorted(entries, key=lambda p: (p.lstat().st_mtime, p.name))


def wait_until_stable(paths: list[Path], stable_seconds: float) -> list[Path]:
    """Return `paths` once none of them has changed for `stable_seconds` (vanished ones dropped)."""
    while True:
        now, waiting = time.time(), 0.0
        present = [p for p in paths if os.path.lexists(p)]
        for path in present:
            age = now - path.lstat().st_mtime
            waiting = max(waiting, stable_seconds - age)
        if waiting <= 0:
            return present
        time.sleep(min(waiting, 1.0))
        paths = present


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
        self.conn: connection = warehouse.connect(warehouse_url)
        self.ddl_conn: connection = warehouse.connect(warehouse_url)

    def close(self) -> None:
        self.conn.close()
        self.ddl_conn.close()

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
        if seen is not None:
            return self._record_duplicate(cur, path, sha, received_at, seen)
        try:
            if path.is_symlink():
                raise Rejected("symlink", f"{path.name} is a symbolic link; drop the file itself")
            try:
                parsed = parse_file(path, self.formats, self._timezone_lookup(cur))
            except Rejected:
                raise
            except Exception as exc:  # an unreadable file must not stop the files behind it
                raise Rejected("unreadable", f"{path.name} could not be read: {exc}") from exc
        except Rejected as rejection:
            return self._quarantine(cur, path, sha, received_at, rejection)
        if parsed.format.kind == "meters":
            return self._load_meters(cur, path, sha, received_at, parsed)
        return self._load_readings(cur, path, sha, received_at, parsed)

    def _timezone_lookup(self, cur):
        zones = warehouse.meter_timezones(cur)
        default = self.settings.default_timezone
        return lambda meter: zones.get(meter, default)

    def _insert_file(self, cur, path: Path, sha: str, received_at: datetime, **values) -> int:
        columns = ["sha256", "name", "received_at", *values]
        cur.execute(
            sql.SQL("insert into raw.files ({}) values ({}) returning file_id").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            ),
            [sha, path.name, received_at, *values.values()],
        )
        return cur.fetchone()[0]

    def _move(self, cur, path: Path, directory: Path, file_id: int) -> Path:
        """Move the file out of the dropbox inside the open transaction.

        Moved before commit so that a process waiting on the same content finds it gone; if the
        transaction then fails, `ingest_file` puts it back.
        """
        target = _unique_destination(directory, path.name, file_id)
        os.replace(path, target)
        self._moved.append((path, target))
        cur.execute(
            "update raw.files set stored_as = %s where file_id = %s", (str(target), file_id)
        )
        return target

    def _record_duplicate(self, cur, path, sha, received_at, seen) -> FileOutcome:
        original_id, original_name = seen
        reason = f"same content as file {original_id} ({original_name})"
        file_id = self._insert_file(
            cur, path, sha, received_at, status="duplicate", reason=reason, duplicate_of=original_id
        )
        stored = self._move(cur, path, self.settings.archive / "duplicates", file_id)
        return FileOutcome(path.name, "duplicate", file_id, reason=reason, stored_as=stored)

    def _quarantine(self, cur, path, sha, received_at, rejection: Rejected) -> FileOutcome:
        file_id = self._insert_file(
            cur, path, sha, received_at,
            status="quarantined", rule=rejection.rule, reason=rejection.message,
        )  # fmt: skip
        stored = self._move(cur, path, self.settings.quarantine, file_id)
        details = {"file": path.name, "file_id": file_id, "sha256": sha, **rejection.as_dict()}
        reason_file = stored.with_name(stored.name + ".reason.json")
        reason_file.write_text(json.dumps(details, indent=2, ensure_ascii=False) + "\n")
        self._moved.append((reason_file, reason_file))
        return FileOutcome(
            path.name, "quarantined", file_id, reason=f"{rejection.rule}: {rejection.message}",
            stored_as=stored,
        )  # fmt: skip

    def _load_readings(self, cur, path, sha, received_at, parsed: ParsedFile) -> FileOutcome:
        readings = parsed.readings
        if readings.empty:
            return self._quarantine(
                cur, path, sha, received_at, Rejected("no_values", f"{path.name} has no values")
            )
        per_meter = readings.groupby("meter_id").agg(
            interval_seconds=("interval_seconds", "first"),
            first_interval=("interval_start", "min"),
            last_interval=("interval_start", "max"),
            rows=("value", "size"),
        )
        months = set(readings["interval_start"].map(warehouse.month_start).unique())
        spans = warehouse.meter_spans(cur, list(per_meter.index))
        for meter, row in per_meter.iterrows():
            # The clean grid of a meter runs from its first to its last reading: a file that
            # widens that span also changes (adds gaps to) the months it newly covers.
            new = warehouse.months_between(row.first_interval, row.last_interval)
            if meter in spans:
                old_first, old_last = spans[meter]
                widened = warehouse.months_between(
                    min(old_first, row.first_interval), max(old_last, row.last_interval)
                )
                new = set(widened) - set(warehouse.months_between(old_first, old_last))
            months.update(new)
        warehouse.ensure_month_partitions(
            self.ddl_conn, readings["interval_start"].map(warehouse.month_start).unique()
        )
        file_id = self._insert_file(
            cur, path, sha, received_at,
            format=parsed.format.name, status="loaded", rows=len(readings),
            months=sorted(months), first_interval=readings["interval_start"].min(),
            last_interval=readings["interval_start"].max(),
        )  # fmt: skip
        warehouse.copy_readings(cur, readings, file_id)
        execute_values(
            cur,
            "insert into raw.file_meters (file_id, meter_id, interval_seconds, first_interval,"
            " last_interval, rows) values %s",
            [
                (
                    file_id,
                    meter,
                    int(r.interval_seconds),
                    r.first_interval,
                    r.last_interval,
                    int(r.rows),
                )
                for meter, r in per_meter.iterrows()
            ],  # fmt: skip
        )
        first_month = warehouse.month_start(readings["interval_start"].min())
        stored = self._move(cur, path, self.settings.archive / f"{first_month:%Y-%m}", file_id)
        return FileOutcome(
            path.name, "loaded", file_id, parsed.format.name, len(readings), sorted(months),
            stored_as=stored,
        )  # fmt: skip

    def _load_meters(self, cur, path, sha, received_at, parsed: ParsedFile) -> FileOutcome:
        meters = parsed.meters
        if "name" not in meters and "feeder" in meters:
            meters = meters.assign(name=meters["feeder"])
        fields = [f for f in METER_FIELDS if f in meters]
        file_id = self._insert_file(
            cur, path, sha, received_at,
            format=parsed.format.name, status="loaded", rows=len(meters),
        )  # fmt: skip
        columns = [*fields, "file_id"]
        ident = sql.SQL(", ").join
        changed = execute_values(
            cur,
            sql.SQL(
                "insert into raw.meters (meter_id, {cols}) values %s on conflict (meter_id)"
                " do update set ({cols}) = row({new}), updated_at = now()"
                " where ({old_fields}) is distinct from ({new_fields}) returning meter_id"
            )
            .format(
                cols=ident(map(sql.Identifier, columns)),
                new=ident(sql.SQL("excluded.{}").format(sql.Identifier(c)) for c in columns),
                old_fields=ident(
                    sql.SQL("raw.meters.{}").format(sql.Identifier(f)) for f in fields
                ),
                new_fields=ident(sql.SQL("excluded.{}").format(sql.Identifier(f)) for f in fields),
            )
            .as_string(cur),
            [
                (*(None if pd.isna(v) else v for v in row), file_id)
                for row in meters[["meter_id", *fields]].itertuples(index=False)
            ],
            fetch=True,
        )
        # Months holding readings of meters whose metadata is new or changed get rebuilt.
        spans = warehouse.meter_spans(cur, [row[0] for row in changed])
        months = sorted({m for a, b in spans.values() for m in warehouse.months_between(a, b)})
        cur.execute("update raw.files set months = %s where file_id = %s", (months, file_id))
        stored = self._move(cur, path, self.settings.archive / "metadata", file_id)
        return FileOutcome(
            path.name, "loaded", file_id, parsed.format.name, len(meters), months,
            stored_as=stored,
        )  # fmt: skip


def touched_months(outcomes: list[FileOutcome]) -> list[date]:
    return sorted({m for o in outcomes for m in o.months})
