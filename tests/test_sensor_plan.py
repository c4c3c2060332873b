"""Pure unit tests for the dropbox sensor's planning and the month grouping of `energy run`."""

import json
import os
from datetime import date

from energy_assets.ingest.dropbox import RETRY_AFTER_SECONDS, dropbox_listing, plan_dropbox_tick
from energy_assets.months import month_ranges

STABLE = 5
MTIME = 1_700_000_000.0
T0 = MTIME + 60  # the file was last written a minute before the first look


def tick(listing, cursor, now):
    """One sensor tick; the cursor goes through JSON as it does between real ticks."""
    ready, cursor = plan_dropbox_tick(listing, cursor, now, STABLE)
    return ready, json.loads(json.dumps(cursor))


def requested_once(name="a.csv", size=100):
    """Tick until `name` is requested; return the listing, cursor and time of the request."""
    listing = {name: [size, MTIME]}
    ready, cursor = tick(listing, {}, T0)
    assert ready == []
    ready, cursor = tick(listing, cursor, T0 + 2)
    assert ready == [name]
    return listing, cursor, T0 + 2


def test_first_sight_is_not_ready():
    listing = {"a.csv": [100, MTIME]}
    ready, cursor = tick(listing, {}, T0)
    assert ready == []
    assert cursor == {"seen": {"a.csv": [100, MTIME]}, "requested": {}}


def test_same_signature_twice_and_old_enough_is_ready():
    listing, cursor, now = requested_once()
    assert cursor["requested"] == {"a.csv": [100, MTIME, now]}


def test_recently_modified_file_waits_for_stable_seconds():
    listing = {"a.csv": [100, T0 - 1]}
    _, cursor = tick(listing, {}, T0)
    ready, cursor = tick(listing, cursor, T0 + STABLE - 2)
    assert ready == []
    ready, cursor = tick(listing, cursor, T0 - 1 + STABLE)
    assert ready == ["a.csv"]


def test_changed_size_or_mtime_is_not_ready():
    _, cursor = tick({"a.csv": [100, MTIME]}, {}, T0)
    ready, cursor = tick({"a.csv": [200, MTIME]}, cursor, T0 + 2)
    assert ready == []
    ready, cursor = tick({"a.csv": [200, MTIME + 1]}, cursor, T0 + 4)
    assert ready == []
    ready, cursor = tick({"a.csv": [200, MTIME + 1]}, cursor, T0 + 6)
    assert ready == ["a.csv"]


def test_only_stable_files_are_ready_in_name_order():
    _, cursor = tick({"b.csv": [1, MTIME], "a.csv": [2, MTIME], "c.csv": [3, MTIME]}, {}, T0)
    listing = {"c.csv": [4, MTIME], "b.csv": [1, MTIME], "a.csv": [2, MTIME]}
    ready, _ = tick(listing, cursor, T0 + 2)
    assert ready == ["a.csv", "b.csv"]


def test_requested_file_is_not_requested_again_while_unchanged():
    listing, cursor, requested_at = requested_once()
    for now in (requested_at + 2, requested_at + 4, requested_at + RETRY_AFTER_SECONDS - 1):
        ready, cursor = tick(listing, cursor, now)
        assert ready == []
        assert cursor["requested"] == {"a.csv": [100, MTIME, requested_at]}


def test_requested_file_is_requested_again_after_retry_delay():
    listing, cursor, requested_at = requested_once()
    ready, cursor = tick(listing, cursor, requested_at + 2)
    assert ready == []
    retry_at = requested_at + RETRY_AFTER_SECONDS
    ready, cursor = tick(listing, cursor, retry_at)
    assert ready == ["a.csv"]
    assert cursor["requested"] == {"a.csv": [100, MTIME, retry_at]}
    ready, _ = tick(listing, cursor, retry_at + 2)
    assert ready == []


def test_requested_file_rewritten_is_requested_again_once_stable():
    _, cursor, requested_at = requested_once()
    rewritten = {"a.csv": [150, MTIME + 30]}
    ready, cursor = tick(rewritten, cursor, requested_at + 2)
    assert ready == []
    ready, cursor = tick(rewritten, cursor, requested_at + 4)
    assert ready == ["a.csv"]


def test_vanished_file_leaves_the_cursor():
    listing, cursor, requested_at = requested_once()
    _, cursor = tick({**listing, "b.csv": [5, MTIME]}, cursor, requested_at + 2)
    assert set(cursor["seen"]) == {"a.csv", "b.csv"}
    ready, cursor = tick({"b.csv": [5, MTIME]}, cursor, requested_at + 4)
    assert ready == ["b.csv"]
    assert cursor["seen"] == {"b.csv": [5, MTIME]}
    assert set(cursor["requested"]) == {"b.csv"}
    ready, cursor = tick({}, cursor, requested_at + 6)
    assert ready == []
    assert cursor == {"seen": {}, "requested": {}}


def test_dropbox_listing(tmp_path):
    dropbox = tmp_path / "dropbox"
    dropbox.mkdir()
    (dropbox / "M1_2024-01.csv").write_text("abc")
    os.utime(dropbox / "M1_2024-01.csv", (MTIME, MTIME))
    (dropbox / ".partial.csv").write_text("hidden")
    (dropbox / "subdir").mkdir()
    (dropbox / "subdir" / "inner.csv").write_text("x")
    target = tmp_path / "elsewhere.csv"
    target.write_text("x" * 5000)
    (dropbox / "link.csv").symlink_to(target)
    (dropbox / "dangling.csv").symlink_to(tmp_path / "missing.csv")

    listing = dropbox_listing(dropbox)
    assert sorted(listing) == ["M1_2024-01.csv", "dangling.csv", "link.csv"]
    assert listing["M1_2024-01.csv"] == [3, MTIME]
    link = os.lstat(dropbox / "link.csv")
    assert listing["link.csv"] == [link.st_size, link.st_mtime]
    assert listing["link.csv"][0] == len(str(target)) != 5000


def test_dropbox_listing_empty(tmp_path):
    assert dropbox_listing(tmp_path) == {}


def test_month_ranges():
    jan, feb, mar = date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)
    assert month_ranges([]) == []
    assert month_ranges([feb]) == [(feb, feb)]
    assert month_ranges([mar, jan, feb, jan]) == [(jan, mar)]
    assert month_ranges([date(2023, 12, 1), jan]) == [(date(2023, 12, 1), jan)]
    assert month_ranges([date(2023, 11, 1), jan, mar, feb]) == [
        (date(2023, 11, 1), date(2023, 11, 1)),
        (jan, mar),
    ]
    assert month_ranges([jan, mar]) == [(jan, jan), (mar, mar)]
    assert month_ranges([date(2024, 12, 1), date(2025, 1, 1), date(2025, 3, 1)]) == [
        (date(2024, 12, 1), date(2025, 1, 1)),
        (date(2025, 3, 1), date(2025, 3, 1)),
    ]
