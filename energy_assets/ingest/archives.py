"""Compressed drops (gzip, zip), recognised by content and unpacked by streaming to files.

Plain functions over files, no database, no Dagster. The loader unpacks an archive with
`unpack` into a folder of the home, then loads each member as a file of its own. The bounds on
the unpacked size, and on its ratio to the archive's size, are enforced while streaming (and,
for zip, first against the sizes the archive declares), so a bomb is refused after writing at
most the bound, and never held in memory.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from energy_assets.ingest.dropbox import fitted_name, not_for_ingest
from energy_assets.ingest.readers import is_workbook
from energy_assets.ingest.rejections import Rejected

KINDS = ("gzip", "zip")
"""The `format` of an archive's row in raw.files."""
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # an archive with members; an empty one
RATIO_FLOOR_BYTES = 1 << 20
"""The ratio bound applies to at least this many archive bytes: a small archive of a very
regular CSV may compress far better than a large one."""
BLOCK = 1 << 20
_UNREADABLE = (
    gzip.BadGzipFile,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    zipfile.BadZipFile,
    RuntimeError,
    NotImplementedError,
)
"""What the zip and gzip modules raise for a damaged, encrypted or unsupported archive (a full
disk, say, is no fault of the archive's and fails the run instead)."""


@dataclass(frozen=True)
class Bounds:
    """How far an archive may unpack: in bytes, and as a multiple of its own size."""

    max_bytes: int
    max_ratio: float

    def limit(self, archive_bytes: int) -> int:
        return int(min(self.max_bytes, self.max_ratio * max(archive_bytes, RATIO_FLOOR_BYTES)))


@dataclass(frozen=True)
class Member:
    """One file of an archive: its name there and its unpacked copy."""

    name: str
    path: Path

    @property
    def file_name(self) -> str:
        """The member's own file name, without the folders it sits in inside the archive."""
        return PurePosixPath(self.name).name


@dataclass(frozen=True)
class Unpacked:
    members: list[Member]
    skipped: list[str]
    """Entries that are not files to load (folders, macOS resource forks), named with why."""


def archive_kind(path: Path) -> str | None:
    """`gzip` or `zip` when the content is such an archive (an .xlsx workbook is not), else None."""
    with path.open("rb") as file:
        head = file.read(4)
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZIP_MAGIC) and not is_workbook(path):
        return "zip"
    return None


def unpack(path: Path, kind: str, name: str, folder: Path, bounds: Bounds) -> Unpacked:
    """Unpack every member of the archive at `path` into `folder` (which must be empty).

    `name` is the archive's name for messages. Raises `Rejected` with rule `archive_bomb` when
    the members unpack beyond `bounds`, `unreadable_archive` when the archive is damaged,
    encrypted or uses a compression that cannot be read.
    """
    limit = bounds.limit(path.stat().st_size)
    budget = _Budget(name, path.stat().st_size, limit)
    try:
        if kind == "gzip":
            return _gunzip(path, name, folder, budget)
        return _unzip(path, folder, budget)
    except _UNREADABLE as exc:
        raise Rejected(
            "unreadable_archive",
            f"{name} looks like a {kind} archive but cannot be unpacked: {exc}; "
            "pack it again, without a password",
        ) from exc


class _Budget:
    """Unpacked bytes so far against the limit; refuses the archive the moment it is passed."""

    def __init__(self, name: str, archive_bytes: int, limit: int) -> None:
        self.name, self.archive_bytes, self.limit, self.used = name, archive_bytes, limit, 0

    def spend(self, count: int) -> None:
        self.used += count
        if self.used > self.limit:
            raise Rejected(
                "archive_bomb",
                f"{self.name} unpacks to more than {self.limit:,} bytes from {self.archive_bytes:,}"
                " (ENERGY_MAX_UNPACKED_BYTES, ENERGY_MAX_UNPACK_RATIO); refused as an archive"
                " bomb. Drop its files unpacked if they are genuine",
                sample=f"more than {self.limit:,} bytes unpacked",
            )


def _copy(source: BinaryIO, target: Path, budget: _Budget) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        for block in iter(lambda: source.read(BLOCK), b""):
            budget.spend(len(block))
            out.write(block)


def _gunzip(path: Path, name: str, folder: Path, budget: _Budget) -> Unpacked:
    inner = name[:-3] if name.lower().endswith(".gz") else name
    member = Member(inner, folder / "0" / fitted_name(PurePosixPath(inner).name or "member"))
    with gzip.open(path, "rb") as source:
        _copy(source, member.path, budget)
    return Unpacked([member], [])


def _unzip(path: Path, folder: Path, budget: _Budget) -> Unpacked:
    members, skipped = [], []
    with zipfile.ZipFile(path) as archive:
        entries = []
        for info in archive.infolist():
            why = _not_a_member(info)
            if why:
                skipped.append(f"{info.filename} ({why})")
            else:
                entries.append(info)
        declared = sum(info.file_size for info in entries)
        if declared > budget.limit:
            budget.spend(declared)  # refused before a byte is written
        for number, info in enumerate(entries):
            member = Member(info.filename, folder / str(number) / fitted_name(_base(info.filename)))
            with archive.open(info) as source:
                _copy(source, member.path, budget)
            members.append(member)
    return Unpacked(members, skipped)


def _not_a_member(info: zipfile.ZipInfo) -> str | None:
    if info.is_dir():
        return "a folder"
    if info.filename.startswith("__MACOSX/") or not_for_ingest(_base(info.filename)):
        return "a hidden or temporary file"
    return None


def _base(member: str) -> str:
    return PurePosixPath(member.replace("\\", "/")).name or "member"


def remove(folder: Path) -> None:
    """Delete an unpacking folder and everything in it."""
    shutil.rmtree(folder, ignore_errors=True)
