"""Loading dropped files into the raw layer: one transaction per file, then archive or quarantine.

A file stays in the dropbox until its outcome is committed. Its `raw.files` row names where it
goes (`stored_as`) and stays `pending_move` until it is there, with its reason file: a kill at any
moment leaves the file in the dropbox, its transaction either rolled back (the next run loads
it) or committed and pending (the next run of the same bytes under the same name completes the
move instead of calling it a duplicate).

Each file is claimed with a session advisory lock on its content hash, held from before the
transaction until after the move, so two processes working on the same dropbox (two `energy
run`s, or a run beside the sensor) never load one file twice: the second one waits, then finds
the file gone (taken) or its content loaded (a duplicate). What is committed is what was hashed:
the file's inode, size and times must be the same before the commit as before hashing, else the
transaction rolls back and the file is left for the next look.

Archives (gzip, zip) are unpacked into the home and each member loads as a file of its own, with
its own row, under the same rules.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path, PurePosixPath

import pandas as pd
import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection
from psycopg2.extras import execute_values

from energy_assets.ingest import archives, raw_tables
from energy_assets.ingest.dropbox import (
    NAME_MAX_BYTES,
    Signature,
    fitted_name,
    readable,
    sha256_of,
    signature_of,
    waiting_files,
)
from energy_assets.ingest.formats import Format, Match, load_formats, require_format
from energy_assets.ingest.parsing import (
    ReadingsParser,
    meter_from_filename,
    parse_meters,
    parse_weather,
)
from energy_assets.ingest.readers import Table, open_table
from energy_assets.ingest.rejections import Rejected
from energy_assets.months import month_start, months_between, months_of, next_month
from energy_assets.settings import Settings
from energy_assets.warehouse.database import connect, meter_timezones

CHUNK_ROWS = 200_000
"""Rows of a file held in memory at once while it loads (plus a few values per meter)."""
REASON_SUFFIX = ".reason.json"


@dataclass
class FileOutcome:
    """What happened to one dropped file (or archive member)."""

    name: str
    status: str  # loaded | quarantined | duplicate
    file_id: int
    format: str | None = None
    rows: int = 0
    months: list[date] = field(default_factory=list)
    reason: str | None = None
    stored_as: Path | None = None
    kind: str | None = None  # readings | meters | weather | archive, for loaded files
    members: list[FileOutcome] = field(default_factory=list)
    """For an archive: the outcomes of its members, each a file of its own."""


@dataclass(frozen=True)
class Left:
    """A file not ingested now, and why; it stays where it is."""

    name: str
    why: str


@dataclass(frozen=True)
class Dropped:
    """A file being ingested: where it is, the name it goes by, its hash, its `lstat` then."""

    path: Path
    name: str
    sha: str
    stat: os.stat_result
    received_at: datetime
    member: str | None = None
    """Its name inside the archive it came from."""
    archive: FileOutcome | None = None

    @property
    def file_name(self) -> str:
        """The file's own name (a member's without its archive and folders): it may name the
        meter."""
        return PurePosixPath(self.member).name if self.member else self.name

    def unchanged(self) -> bool:
        """Still the same inode, size and times as when it was hashed."""
        try:
            now = self.path.lstat()
        except FileNotFoundError:
            return False
        return _identity(now) == _identity(self.stat)


def _identity(info: os.stat_result) -> tuple:
    # Any write, truncation, rename over or metadata change moves st_ctime, which no one can set.
    return info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


class _Changed(Exception):
    """The file changed while it was read: nothing of it may be committed."""


class _Zones:
    """The timezone lookup the parser reads local (offset-free) times with.

    The parser asks only for the meters whose times are local, so `used` ends up naming exactly
    those meters and the zone each was read in.
    """

    def __init__(self, zones: dict[str, str], default: str) -> None:
        self.zones, self.default, self.used = zones, default, {}

    def __call__(self, meter: str) -> str:
        zone = self.used[meter] = self.zones.get(meter, self.default)
        return zone


class Ingest:
    """One ingest session: a warehouse connection, the formats, and the platform's folders."""

    def __init__(self, settings: Settings, warehouse_url: str) -> None:
        self.settings = settings
        self.formats: list[Format] = load_formats(settings.home / "formats")
        self.bounds = archives.Bounds(settings.max_unpacked_bytes, settings.max_unpack_ratio)
        self.conn: connection = connect(warehouse_url)
        self._partitioned_through: date | None = None
        self._ensure_partitions()
        self._finish_moves()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Ingest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ingest_file(self, path: Path, seen: Signature | None = None) -> FileOutcome | Left:
        """Load, quarantine or record as duplicate; `Left` when the file is not ingested now.

        `seen` is the (size, mtime) at which the file was found stable: a file that no longer
        has them changed since, and is left for the next look.
        """
        name = readable(path.name)
        try:
            info = path.lstat()
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
                return Left(name, "not a regular file (a pipe, socket or device): skipped")
            if seen is not None and signature_of(info) != tuple(seen):
                return Left(name, "changed since it was found stable: left for the next look")
            sha = _content_hash(path, info)
        except FileNotFoundError:
            return Left(name, "no longer in the dropbox: taken by another process")
        self._ensure_partitions()
        dropped = Dropped(path, name, sha, info, datetime.fromtimestamp(info.st_mtime, UTC))
        with self._claimed(sha):
            if not os.path.lexists(path):
                return Left(name, "taken by another process")
            if not dropped.unchanged():
                return Left(name, "changed while it was hashed: left for the next look")
            return self._ingest(dropped)

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

    def _finish_moves(self) -> None:
        """Clear the pending mark of files a killed ingest moved but did not mark.

        A row still pending whose stored copy holds its bytes, and whose file is no longer in
        the dropbox, was moved; its owner is gone when its claim can be taken. Rows whose file
        waits in the dropbox are completed when it is ingested.
        """
        with self.conn, self.conn.cursor() as cur:
            pending = raw_tables.pending_files(cur)
        if not pending:
            return
        waiting = {w.name for w in waiting_files(self.settings.dropbox)}
        for row in pending:
            if row["archive_id"] is None and row["name"] in waiting:
                continue
            with self.conn, self.conn.cursor() as cur:
                cur.execute(
                    "select pg_try_advisory_lock(hashtextextended(%s, 0))", (row["sha256"],)
                )
                if not cur.fetchone()[0]:
                    continue  # its ingest is alive
            try:
                if _holds(Path(row["stored_as"]), row["sha256"]):
                    if row["status"] == "quarantined":
                        self._write_reason(row["file_id"], Path(row["stored_as"]))
                    with self.conn, self.conn.cursor() as cur:
                        self._update_file(cur, row["file_id"], pending_move=False)
            finally:
                self._unlock(row["sha256"])

    @contextlib.contextmanager
    def _claimed(self, sha: str) -> Iterator[None]:
        """A session advisory lock on the content hash, held across the commit and the move."""
        with self.conn, self.conn.cursor() as cur:
            cur.execute("select pg_advisory_lock(hashtextextended(%s, 0))", (sha,))
        try:
            yield
        finally:
            self._unlock(sha)

    def _unlock(self, sha: str) -> None:
        with (
            contextlib.suppress(psycopg2.InterfaceError, psycopg2.OperationalError),
            self.conn,
            self.conn.cursor() as cur,
        ):
            cur.execute("select pg_advisory_unlock(hashtextextended(%s, 0))", (sha,))

    def _ingest(self, dropped: Dropped) -> FileOutcome | Left:
        """Under the claim: complete an interrupted ingest, unpack an archive, or decide."""
        with self.conn, self.conn.cursor() as cur:
            pending = raw_tables.pending_file(cur, dropped.sha, dropped.name)
        kind = None if stat.S_ISLNK(dropped.stat.st_mode) else archives.archive_kind(dropped.path)
        if pending is not None and pending["format"] not in archives.KINDS:
            return self._store(dropped, self._outcome_of(pending))
        if kind and dropped.member is None:
            return self._ingest_archive(dropped, kind, pending)
        return self._commit_and_store(dropped, partial(self._decide, dropped, kind))

    def _commit(self, dropped: Dropped, decide: Callable) -> FileOutcome | Left:
        """Run `decide(cur)` (rows, and the folder the file goes to) in one transaction with
        the file's destination; commit only if the file is still what was hashed."""
        try:
            with self.conn, self.conn.cursor() as cur:
                outcome, folder = decide(cur)
                self._destine(cur, dropped, outcome, folder)
                if not dropped.unchanged():
                    raise _Changed
        except _Changed:
            return Left(dropped.name, "changed while it was read: left for the next look")
        return outcome

    def _decide(self, dropped: Dropped, kind: str | None, cur) -> tuple[FileOutcome, Path]:
        """Record the file as duplicate, loaded or quarantined, and the folder it goes to."""
        seen = raw_tables.loaded_copy(cur, dropped.sha, meter_from_filename(dropped.file_name))
        if seen is not None:
            return self._duplicate(dropped, seen, cur)
        cur.execute("savepoint file_rows")
        try:
            try:
                if stat.S_ISLNK(dropped.stat.st_mode):
                    raise Rejected(
                        "symlink", f"{dropped.name} is a symbolic link; drop the file itself"
                    )
                if kind:
                    raise Rejected(
                        "nested_archive",
                        f"{dropped.name} is a {kind} archive inside an archive; unpack it and"
                        " drop the files it contains",
                    )
                return self._load(cur, dropped)
            except Rejected:
                raise
            except (psycopg2.DataError, psycopg2.errors.ProgramLimitExceeded) as exc:
                raise Rejected(
                    "unloadable",
                    f"{dropped.name}: the database refused a value of it:"
                    f" {exc.diag.message_primary}",
                ) from exc
            except psycopg2.Error:
                raise
            except Exception as exc:  # an unreadable file must not stop the files behind it
                raise Rejected("unreadable", f"{dropped.name} could not be read: {exc}") from exc
        except Rejected as rejection:
            cur.execute("rollback to savepoint file_rows")  # nothing of it stays loaded
            return self._quarantine(dropped, rejection, cur)

    # --- where a file goes, after the commit ---------------------------------------------------

    def _destine(self, cur, dropped: Dropped, outcome: FileOutcome, folder: Path) -> None:
        """Record where the file will be stored; it is moved there after the commit.

        An archive member loaded or found a duplicate stays in its archive; everything else
        gets a name of its own in `folder`, which no other file can take from now on.
        """
        if dropped.archive is not None and outcome.status != "quarantined":
            outcome.stored_as = dropped.archive.stored_as
            self._update_file(cur, outcome.file_id, stored_as=str(outcome.stored_as))
            return
        outcome.stored_as = _free_name(cur, folder, readable(dropped.path.name), outcome.file_id)
        self._update_file(cur, outcome.file_id, stored_as=str(outcome.stored_as), pending_move=True)

    def _store(self, dropped: Dropped, outcome: FileOutcome) -> FileOutcome:
        """After the commit: the reason file, the move, then the row no longer pending."""
        if dropped.archive is not None and outcome.status != "quarantined":
            return outcome  # its bytes are stored with the archive
        if not dropped.unchanged():  # replaced in the dropbox since the commit: the bytes are gone
            outcome.stored_as = None
        else:
            if outcome.status == "quarantined":
                self._write_reason(outcome.file_id, outcome.stored_as)
            os.replace(dropped.path, outcome.stored_as)
        with self.conn, self.conn.cursor() as cur:
            stored = None if outcome.stored_as is None else str(outcome.stored_as)
            self._update_file(cur, outcome.file_id, stored_as=stored, pending_move=False)
        return outcome

    def _write_reason(self, file_id: int, stored: Path) -> None:
        with self.conn, self.conn.cursor() as cur:
            details = raw_tables.reason_details(cur, file_id)
        reason_file = stored.with_name(stored.name + REASON_SUFFIX)
        reason_file.write_text(json.dumps(details, indent=2, ensure_ascii=False) + "\n")

    def _outcome_of(self, row: dict) -> FileOutcome:
        """The outcome a committed row records (an interrupted ingest being completed)."""
        kinds = {f.name: f.kind for f in self.formats}
        reason = row["reason"]
        if row["status"] == "quarantined":
            reason = f"{row['rule']}: {reason}"
        return FileOutcome(
            row["name"],
            row["status"],
            row["file_id"],
            row["format"],
            row["rows"],
            list(row["months"]),
            reason,
            Path(row["stored_as"]) if row["stored_as"] else None,
            "archive" if row["format"] in archives.KINDS else kinds.get(row["format"]),
        )

    # --- rows ----------------------------------------------------------------------------------

    def _insert_file(self, cur, dropped: Dropped, **values) -> int:
        if dropped.archive is not None:
            values.update(archive_id=dropped.archive.file_id, member=dropped.member)
        columns = ["sha256", "name", "received_at", *values]
        cur.execute(
            sql.SQL("insert into raw.files ({}) values ({}) returning file_id").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            ),
            [dropped.sha, dropped.name, dropped.received_at, *values.values()],
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

    def _duplicate(self, dropped: Dropped, seen: tuple, cur) -> tuple[FileOutcome, Path]:
        original_id, original_name = seen
        reason = f"same content as file {original_id} ({original_name})"
        file_id = self._insert_file(
            cur, dropped, status="duplicate", reason=reason, duplicate_of=original_id
        )
        outcome = FileOutcome(dropped.name, "duplicate", file_id, reason=reason)
        return outcome, self.settings.archive / "duplicates"

    def _quarantine(self, dropped: Dropped, rejection: Rejected, cur) -> tuple[FileOutcome, Path]:
        message = readable(rejection.message)
        file_id = self._insert_file(
            cur,
            dropped,
            status="quarantined",
            rule=rejection.rule,
            reason=message,
            lines=rejection.lines,
            sample=readable(rejection.sample),
        )
        outcome = FileOutcome(
            dropped.name, "quarantined", file_id, reason=f"{rejection.rule}: {message}"
        )
        return outcome, self.settings.quarantine

    # --- archives ------------------------------------------------------------------------------

    def _ingest_archive(
        self, dropped: Dropped, kind: str, pending: dict | None
    ) -> FileOutcome | Left:
        """Unpack, record the archive, then load each member as a file of its own.

        The archive's row is committed (pending) before its members load, each in its own
        transaction; after a kill, the next run unpacks it again and loads the members that
        have no row yet, then stores the archive.
        """
        if pending is None:
            with self.conn, self.conn.cursor() as cur:
                seen = raw_tables.loaded_copy(cur, dropped.sha, None)
            if seen is not None:
                return self._commit_and_store(dropped, partial(self._duplicate, dropped, seen))
        folder = self.settings.unpacking / dropped.sha
        archives.remove(folder)  # what an interrupted attempt left
        try:
            try:
                unpacked = archives.unpack(dropped.path, kind, dropped.name, folder, self.bounds)
                if not unpacked.members:
                    raise Rejected("empty_file", f"{dropped.name} holds no file to load")
            except Rejected as rejection:
                refused = partial(self._quarantine, dropped, rejection)
                return self._commit_and_store(dropped, refused)
            if pending is None:
                record = partial(self._record_archive, dropped, kind, unpacked)
                outcome = self._commit(dropped, record)
                if isinstance(outcome, Left):
                    return outcome
            else:
                outcome = self._outcome_of(pending)
            with self.conn, self.conn.cursor() as cur:
                stored = raw_tables.stored_members(cur, outcome.file_id)
            for member in unpacked.members:
                if readable(member.name) not in stored:
                    result = self._ingest_member(dropped, outcome, member)
                    if isinstance(result, FileOutcome):
                        outcome.members.append(result)
            return self._store(dropped, outcome)
        finally:
            archives.remove(folder)

    def _commit_and_store(self, dropped: Dropped, decide: Callable) -> FileOutcome | Left:
        outcome = self._commit(dropped, decide)
        return outcome if isinstance(outcome, Left) else self._store(dropped, outcome)

    def _record_archive(
        self, dropped: Dropped, kind: str, unpacked: archives.Unpacked, cur
    ) -> tuple[FileOutcome, Path]:
        reason = f"{len(unpacked.members)} member file(s)"
        if unpacked.skipped:
            reason += "; skipped " + ", ".join(unpacked.skipped)
        file_id = self._insert_file(cur, dropped, format=kind, status="loaded", reason=reason)
        outcome = FileOutcome(dropped.name, "loaded", file_id, kind, reason=reason, kind="archive")
        return outcome, self.settings.archive / "archives"

    def _ingest_member(
        self, archive: Dropped, outcome: FileOutcome, member: archives.Member
    ) -> FileOutcome | Left:
        info = member.path.lstat()
        dropped = Dropped(
            member.path,
            readable(f"{archive.name}/{member.name}"),
            sha256_of(member.path),
            info,
            archive.received_at,
            member=readable(member.name),
            archive=outcome,
        )
        with self._claimed(dropped.sha):
            return self._ingest(dropped)

    @contextlib.contextmanager
    def _stored_copy(self, row: dict) -> Iterator[Path]:
        """The stored bytes of a loaded file (a member unpacked again from its archive),
        checked against the file's hash."""
        stored = Path(row["stored_as"] or "")
        folder = self.settings.unpacking / f"{row['sha256']}.reread"
        try:
            path: Path | None = stored
            if row["member"] is not None and stored.is_file():
                archives.remove(folder)
                kind = row["archive_format"]
                unpacked = archives.unpack(stored, kind, row["name"], folder, self.bounds)
                path = next(
                    (m.path for m in unpacked.members if readable(m.name) == row["member"]), None
                )
            if path is None or not path.is_file() or sha256_of(path) != row["sha256"]:
                raise Rejected(
                    "timezone_correction",
                    f"the stored copy of {row['name']} (file {row['file_id']}, {stored}) is"
                    " missing or changed, so its local times cannot be read again in the"
                    " meter's new timezone; put it back and drop this file again",
                )
            yield path
        finally:
            archives.remove(folder)

    # --- loading -------------------------------------------------------------------------------

    def _load(self, cur, dropped: Dropped) -> tuple[FileOutcome, Path]:
        table = open_table(dropped.path, CHUNK_ROWS)
        match = require_format(table.header, self.formats, dropped.file_name)
        loader = {"meters": self._load_meters, "weather": self._load_weather}.get(
            match.format.kind, self._load_readings
        )
        return loader(cur, dropped, table, match)

    def _zones(self, cur) -> _Zones:
        return _Zones(meter_timezones(cur), self.settings.default_timezone)

    def _parser(self, cur, match: Match, file_name: str) -> tuple[ReadingsParser, _Zones]:
        zones = self._zones(cur)
        earliest = pd.Timestamp(self.settings.first_month, tz="UTC")
        return ReadingsParser(match, file_name, zones, earliest), zones

    def _load_readings(
        self, cur, dropped: Dropped, table: Table, match: Match
    ) -> tuple[FileOutcome, Path]:
        parser, zones = self._parser(cur, match, dropped.file_name)
        name_meter = None if "meter" in match.columns else meter_from_filename(dropped.file_name)
        file_id = self._insert_file(
            cur, dropped, format=match.format.name, status="loaded", name_meter=name_meter
        )
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
            raise Rejected("header_only", f"{dropped.name} has a header but no data rows")
        if rows == 0:
            raise Rejected("no_values", f"{dropped.name} has no values, only blanks")
        if parser.needs_duplicate_check:
            raw_tables.check_file_duplicates(cur, file_id)
        per_meter = parser.summary()
        months = data_months | self._widened_months(cur, per_meter)
        execute_values(
            cur,
            "insert into raw.file_meters (file_id, meter_id, interval_seconds, first_interval,"
            " last_interval, rows, local_timezone) values %s",
            [
                (
                    file_id,
                    meter,
                    r.interval_seconds,
                    r.first_interval,
                    r.last_interval,
                    r.rows,
                    zones.used.get(meter),
                )
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
        outcome = FileOutcome(
            dropped.name,
            "loaded",
            file_id,
            match.format.name,
            rows,
            sorted(months),
            kind="readings",
        )
        return outcome, self.settings.archive / f"{min(data_months):%Y-%m}"

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

    def _load_meters(
        self, cur, dropped: Dropped, table: Table, match: Match
    ) -> tuple[FileOutcome, Path]:
        chunks = list(table.chunks())  # metadata files are small: one row per meter
        if not chunks:
            raise Rejected("header_only", f"{dropped.name} has a header but no data rows")
        meters = parse_meters(pd.concat(chunks), match, table.line_of)
        if "name" not in meters and "feeder" in meters:
            meters = meters.assign(name=meters["feeder"])
        file_id = self._insert_file(
            cur, dropped, format=match.format.name, status="loaded", rows=len(meters)
        )
        changed = raw_tables.upsert_meters(cur, meters, file_id)
        # Months holding readings of meters whose metadata is new or changed get rebuilt: where
        # they were, and where readings read again in a new timezone now are.
        months = self._months_of_meters(cur, changed)
        self._correct_local_times(cur, dropped, changed)
        months = sorted(months | self._months_of_meters(cur, changed))
        self._update_file(cur, file_id, months=months)
        outcome = FileOutcome(
            dropped.name, "loaded", file_id, match.format.name, len(meters), months, kind="meters"
        )
        return outcome, self.settings.archive / "metadata"

    @staticmethod
    def _months_of_meters(cur, meters: list[str]) -> set[date]:
        spans = raw_tables.meter_spans(cur, meters)
        return {m for a, b in spans.values() for m in months_between(a, b)}

    def _correct_local_times(self, cur, dropped: Dropped, meters: list[str]) -> None:
        """Read again, in the meters' zones now, the local times of files read in another.

        A meter's readings may arrive before the metadata that gives its timezone; they were
        read in the default zone. Shifting them in SQL would be wrong across daylight saving
        changes, so each such file is read again from its stored copy: its rows of those meters
        are replaced, in the metadata file's transaction.
        """
        misread = raw_tables.misread_local_times(cur, meters, self.settings.default_timezone)
        for file_id in sorted({row["file_id"] for row in misread}):
            spans = [row for row in misread if row["file_id"] == file_id]
            try:
                self._reread(cur, spans[0], spans)
            except Rejected as exc:
                meter = spans[0]["meter_id"]
                raise Rejected(
                    "timezone_correction",
                    f"{dropped.name} gives meter {meter} another timezone, but"
                    f" {spans[0]['name']} (file {file_id}), loaded earlier in"
                    f" {spans[0]['local_timezone']}, cannot be read in it: {exc.message}",
                    exc.lines,
                    exc.sample,
                ) from exc

    def _reread(self, cur, file: dict, spans: list[dict]) -> None:
        meters = [row["meter_id"] for row in spans]
        with self._stored_copy(file) as path:
            table = open_table(path, CHUNK_ROWS)
            match = require_format(table.header, self.formats, file["name"])
            file_name = PurePosixPath(file["member"] or file["name"]).name
            parser, zones = self._parser(cur, match, file_name)
            raw_tables.delete_readings(cur, file["file_id"], spans)
            for chunk in table.chunks():
                readings = parser.feed(chunk, table.line_of)
                readings = readings[readings["meter_id"].isin(meters)]
                if not readings.empty:
                    raw_tables.copy_readings(cur, readings, file["file_id"])
        if parser.needs_duplicate_check:
            raw_tables.check_file_duplicates(cur, file["file_id"])
        summary = parser.summary().loc[meters]
        raw_tables.update_file_meters(cur, file["file_id"], summary, zones.used)

    def _load_weather(
        self, cur, dropped: Dropped, table: Table, match: Match
    ) -> tuple[FileOutcome, Path]:
        file_id = self._insert_file(cur, dropped, format=match.format.name, status="loaded")
        seen = {"rows": 0, "first": None, "last": None}

        def parsed():
            for chunk in table.chunks():
                weather = parse_weather(chunk, match, table.line_of, self.settings.default_timezone)
                if weather.empty:
                    continue
                seen["rows"] += len(weather)
                seen["first"] = min(filter(None, [seen["first"], weather["observed_at"].min()]))
                seen["last"] = max(filter(None, [seen["last"], weather["observed_at"].max()]))
                yield weather.assign(file_id=file_id)

        raw_tables.upsert_weather(cur, parsed())
        rows, first, last = seen["rows"], seen["first"], seen["last"]
        if rows == 0:
            raise Rejected("no_values", f"{dropped.name} has no weather values")
        self._update_file(cur, file_id, rows=rows, first_interval=first, last_interval=last)
        outcome = FileOutcome(
            dropped.name, "loaded", file_id, match.format.name, rows, [], kind="weather"
        )
        return outcome, self.settings.archive / "weather"


def _content_hash(path: Path, info: os.stat_result) -> str:
    """sha256 of the bytes; of the link's target path for a symbolic link (never followed)."""
    if stat.S_ISLNK(info.st_mode):
        return hashlib.sha256(os.fsencode(os.readlink(path))).hexdigest()
    return sha256_of(path)


def _holds(stored: Path, sha: str) -> bool:
    """Whether the file at `stored` has this content hash (a link: its target path's)."""
    try:
        return _content_hash(stored, stored.lstat()) == sha
    except FileNotFoundError:
        return False


def _free_name(cur, folder: Path, name: str, file_id: int) -> Path:
    """Where in `folder` the file will be stored: its own name when that is free and fits
    (with room for `.reason.json`), else its name with its file id before the extension, cut
    short to fit.

    A name is taken when a file has it or a row names it (stored, or still to be moved there);
    a transaction lock on the name keeps two processes from choosing it at once.
    """
    folder.mkdir(parents=True, exist_ok=True)
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = NAME_MAX_BYTES
    limit -= len(REASON_SUFFIX)
    tagged = fitted_name(name, str(file_id), limit)
    candidates = [name, tagged] if len(os.fsencode(name)) <= limit else [tagged]
    for candidate in candidates:
        path = folder / candidate
        cur.execute("select pg_advisory_xact_lock(hashtextextended(%s, 1))", (str(path),))
        if not os.path.lexists(path) and not raw_tables.names_stored(cur, str(path)):
            return path
    raise FileExistsError(f"{folder / tagged} exists; file ids are unique, so it should not")
