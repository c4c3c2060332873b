"""The dropbox folder: what waits in it, when a file is ready to load, and its content hash.

Plain functions over the file system, no database, no Dagster: the dropbox sensor plans its
ticks with `plan_dropbox_tick`, the ingest run and `energy run` list and wait with the rest.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

RETRY_AFTER_SECONDS = 600  # a requested file still in the dropbox after this is requested again


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


def dropbox_listing(dropbox: Path) -> dict[str, list[float]]:
    """name -> [size, mtime] for every entry waiting in the dropbox (symlinks not followed)."""
    listing = {}
    with os.scandir(dropbox) as entries:
        for entry in entries:
            if entry.name.startswith(".") or entry.is_dir(follow_symlinks=False):
                continue
            stat = entry.stat(follow_symlinks=False)
            listing[entry.name] = [stat.st_size, stat.st_mtime]
    return listing


def plan_dropbox_tick(
    listing: dict[str, list[float]], cursor: dict, now: float, stable_seconds: float
) -> tuple[list[str], dict]:
    """Which files to ingest now, and the next cursor.

    A file is ready once two looks in a row found the same size and modification time and it
    has been left alone for `stable_seconds`; it is then requested once (again only if it is
    still waiting after `RETRY_AFTER_SECONDS`, e.g. after a failed run).
    """
    seen = cursor.get("seen", {})
    requested = cursor.get("requested", {})
    ready = []
    for name, signature in sorted(listing.items()):
        previous = requested.get(name)
        if previous and previous[:2] == signature and now - previous[2] < RETRY_AFTER_SECONDS:
            continue
        if seen.get(name) == signature and now - signature[1] >= stable_seconds:
            ready.append(name)
    next_requested = {
        name: sig for name, sig in requested.items() if name in listing and name not in ready
    }
    next_requested.update({name: [*listing[name], now] for name in ready})
    return ready, {"seen": listing, "requested": next_requested}
