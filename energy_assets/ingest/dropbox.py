"""The dropbox folder: what waits in it, when a file is ready to load, and its content hash.

Plain functions over the file system, no database, no Dagster: the dropbox sensor plans its
ticks with `plan_dropbox_tick`, the ingest run and `energy run` list with `dropbox_files` and
take files as they settle with `stable_files`. All of them see the dropbox through
`waiting_files`, so they agree on what is there: regular files and symbolic links whose names
are not those of a file still being written (`not_for_ingest`).
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

RETRY_AFTER_SECONDS = 600  # a requested file still in the dropbox after this is requested again
WRITING_SUFFIXES = (".part", ".tmp", ".filepart", ".crdownload")
"""Names that copy tools, browsers and writers following the rename convention give a file
until it is complete."""

Signature = tuple[int, float]
"""(size, modification time) of a file as `lstat` gives them."""


def not_for_ingest(name: str) -> bool:
    """Hidden names, `~` lock files and the names of files still being written."""
    return name.startswith((".", "~")) or name.lower().endswith(WRITING_SUFFIXES)


def readable(text: str) -> str:
    """File-system text (a name, or a message quoting one) as valid text for the database,
    JSON and logs: bytes that are not UTF-8 become `\\xNN`, as does a NUL; the rest stays.

    The file system hands undecodable bytes over as surrogates, which those refuse.
    """
    return os.fsencode(text).decode("utf-8", "backslashreplace").replace("\0", "\\x00")


NAME_MAX_BYTES = 255
"""The longest file name (in bytes) of the file systems the platform runs on."""
_LONGEST_EXTENSION = 16


def fitted_name(name: str, tag: str = "", limit: int = NAME_MAX_BYTES) -> str:
    """`name` as it may be stored: with `.tag` before its extension when a tag is given, and
    its start cut short, keeping the extension and the tag, when it would pass `limit` bytes."""
    suffix = Path(name).suffix
    if len(os.fsencode(suffix)) > _LONGEST_EXTENSION:
        suffix = ""
    stem = name[: len(name) - len(suffix)]
    tail = (f".{tag}" if tag else "") + suffix
    room = limit - len(os.fsencode(tail))
    if len(os.fsencode(stem)) > room:  # cut whole characters: a cut one would be dropped
        stem = os.fsencode(stem)[:room].decode("utf-8", "ignore")
    return stem + tail


@dataclass(frozen=True)
class Waiting:
    """A dropbox entry that is for ingest: its path, readable name and signature."""

    path: Path
    name: str
    signature: Signature


def _for_ingest(mode: int) -> bool:
    """Regular files and symbolic links; never pipes, sockets or devices, which cannot be read
    to an end (a pipe blocks forever)."""
    return stat.S_ISREG(mode) or stat.S_ISLNK(mode)


def waiting_files(dropbox: Path) -> list[Waiting]:
    """Entries waiting in the dropbox, oldest first, judged from `lstat` alone (never opened)."""
    waiting = []
    with os.scandir(dropbox) as entries:
        for entry in entries:
            if not_for_ingest(entry.name):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if _for_ingest(info.st_mode):
                waiting.append(Waiting(Path(entry.path), readable(entry.name), signature_of(info)))
    return sorted(waiting, key=lambda w: (w.signature[1], w.name))


def dropbox_files(dropbox: Path) -> list[Path]:
    """Paths of the files waiting in the dropbox, oldest first."""
    return [w.path for w in waiting_files(dropbox)]


def dropbox_listing(dropbox: Path) -> dict[str, list[float]]:
    """Readable name -> [size, mtime] of every file waiting in the dropbox (links not followed)."""
    return {w.name: list(w.signature) for w in waiting_files(dropbox)}


def signature_of(info: os.stat_result) -> Signature:
    return info.st_size, info.st_mtime


def settled_at(signature: Signature, previous: list | None, now: float) -> float:
    """When a file last changed, as far as the looks at it tell.

    `previous` is the last look: [size, mtime, settled]. Unchanged since then: what that look
    said. Changed since: now. First look: its modification time, but never later than now, so a
    file stamped in the future (a clock ahead, a copied time) waits the stability window from
    now instead of until that time.
    """
    if previous is None or len(previous) < 3:
        return min(signature[1], now)
    if tuple(previous[:2]) == tuple(signature):
        return previous[2]
    return now


def stable_files(
    paths: list[Path],
    stable_seconds: float,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[tuple[Path, Signature]]:
    """Each of `paths` with its signature as soon as it has been unchanged `stable_seconds`.

    Files already settled come at once, in order; the others follow as they settle, so one file
    still being written (or stamped in the future) never holds back the files beside it. A
    path that vanishes or stops being a regular file or link is dropped.
    """
    looks: dict[Path, list] = {}
    waiting = list(paths)
    while waiting:
        due = []
        for path in waiting:
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue
            if not _for_ingest(info.st_mode):
                continue
            now, signature = clock(), signature_of(info)
            settled = settled_at(signature, looks.get(path), now)
            looks[path] = [*signature, settled]
            if now - settled >= stable_seconds:
                yield path, signature
            else:
                due.append((settled + stable_seconds, path))
        waiting = [path for _, path in due]
        if due:  # look again when the first is due, and at least every second for changes
            sleep(max(0.0, min(1.0, min(when for when, _ in due) - clock())))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def plan_dropbox_tick(
    listing: dict[str, list[float]], cursor: dict, now: float, stable_seconds: float
) -> tuple[list[str], dict]:
    """Which files to ingest now, and the next cursor.

    A file is ready once two looks in a row found the same size and modification time and it
    has been left alone for `stable_seconds` (`settled_at`); it is then requested once, and
    again only if it is still waiting after `RETRY_AFTER_SECONDS` (e.g. after a failed run).
    The cursor keeps, per file, [size, mtime, settled] of the last look (`seen`) and
    [size, mtime, requested at, attempt] of the last request (`requested`).
    """
    seen = cursor.get("seen", {})
    requested = cursor.get("requested", {})
    looks, ready, next_requested = {}, [], {}
    for name, signature in sorted(listing.items()):
        previous = seen.get(name)
        settled = settled_at(tuple(signature), previous, now)
        looks[name] = [*signature, settled]
        asked = requested.get(name)
        same_as_asked = asked is not None and asked[:2] == signature
        if same_as_asked and now - asked[2] < RETRY_AFTER_SECONDS:
            next_requested[name] = asked
            continue
        looked_twice = previous is not None and previous[:2] == signature
        if looked_twice and now - settled >= stable_seconds:
            ready.append(name)
            attempt = asked[3] + 1 if same_as_asked and len(asked) > 3 else 1
            next_requested[name] = [*signature, now, attempt]
        elif asked is not None:
            next_requested[name] = asked
    return ready, {"seen": looks, "requested": next_requested}
