"""Pure unit tests of the dropbox: its listing, when files are stable, the sensor's planning,
and the month grouping of `energy run`."""

import json
import os
import socket
from datetime import date

from energy_assets.backlog import month_priority, run_order
from energy_assets.ingest.dropbox import (
    RETRY_AFTER_SECONDS,
    dropbox_files,
    dropbox_listing,
    fitted_name,
    not_for_ingest,
    plan_dropbox_tick,
    stable_files,
    waiting_files,
)
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
    assert cursor == {"seen": {"a.csv": [100, MTIME, MTIME]}, "requested": {}}


def test_same_signature_twice_and_old_enough_is_ready():
    listing, cursor, now = requested_once()
    assert cursor["requested"] == {"a.csv": [100, MTIME, now, 1]}


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
    # Seen changing at T0 + 4, it waits the stability window from then, whatever its mtime
    # says (a copy that keeps the source's time is as fresh as one that does not).
    ready, cursor = tick({"a.csv": [200, MTIME + 1]}, cursor, T0 + 4 + STABLE - 1)
    assert ready == []
    ready, cursor = tick({"a.csv": [200, MTIME + 1]}, cursor, T0 + 4 + STABLE)
    assert ready == ["a.csv"]


def test_future_mtime_waits_the_window_from_first_sight_not_until_then():
    tomorrow = T0 + 86_400
    _, cursor = tick({"a.csv": [100, tomorrow]}, {}, T0)
    assert cursor["seen"]["a.csv"] == [100, tomorrow, T0]
    ready, cursor = tick({"a.csv": [100, tomorrow]}, cursor, T0 + STABLE - 1)
    assert ready == []
    ready, cursor = tick({"a.csv": [100, tomorrow]}, cursor, T0 + STABLE)
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
        assert cursor["requested"] == {"a.csv": [100, MTIME, requested_at, 1]}


def test_requested_file_is_requested_again_after_retry_delay():
    listing, cursor, requested_at = requested_once()
    ready, cursor = tick(listing, cursor, requested_at + 2)
    assert ready == []
    retry_at = requested_at + RETRY_AFTER_SECONDS
    ready, cursor = tick(listing, cursor, retry_at)
    assert ready == ["a.csv"]
    assert cursor["requested"] == {"a.csv": [100, MTIME, retry_at, 2]}  # a new attempt
    ready, _ = tick(listing, cursor, retry_at + 2)
    assert ready == []


def test_requested_file_rewritten_is_requested_again_once_stable():
    _, cursor, requested_at = requested_once()
    rewritten = {"a.csv": [150, MTIME + 30]}
    ready, cursor = tick(rewritten, cursor, requested_at + 2)
    assert ready == []
    ready, cursor = tick(rewritten, cursor, requested_at + 2 + STABLE)
    assert ready == ["a.csv"]
    assert cursor["requested"] == {"a.csv": [150, MTIME + 30, requested_at + 2 + STABLE, 1]}


def test_vanished_file_leaves_the_cursor():
    listing, cursor, requested_at = requested_once()
    _, cursor = tick({**listing, "b.csv": [5, MTIME]}, cursor, requested_at + 2)
    assert set(cursor["seen"]) == {"a.csv", "b.csv"}
    ready, cursor = tick({"b.csv": [5, MTIME]}, cursor, requested_at + 4)
    assert ready == ["b.csv"]
    assert cursor["seen"] == {"b.csv": [5, MTIME, MTIME]}
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


WRITING_NAMES = [
    "M2_2024-01.csv.part",
    "M3_2024-01.csv.PART",
    "M4_2024-01.csv.tmp",
    "M5_2024-01.csv.filepart",
    "M6_2024-01.csv.crdownload",
    "~$M7_2024-01.xlsx",
    ".M8_2024-01.csv.swp",
]


def test_names_of_files_being_written_are_not_for_ingest(tmp_path):
    for name in WRITING_NAMES:
        (tmp_path / name).write_text("Start Time,kW del\n")
    (tmp_path / "M1_2024-01.csv").write_text("Start Time,kW del\n")
    (tmp_path / "M9_2024-01.partial.csv").write_text("Start Time,kW del\n")  # ends in .csv

    assert [not_for_ingest(n) for n in WRITING_NAMES] == [True] * len(WRITING_NAMES)
    assert sorted(dropbox_listing(tmp_path)) == ["M1_2024-01.csv", "M9_2024-01.partial.csv"]
    assert sorted(p.name for p in dropbox_files(tmp_path)) == sorted(dropbox_listing(tmp_path))


def test_pipes_and_sockets_are_not_listed_and_never_opened(tmp_path):
    os.mkfifo(tmp_path / "M1_2024-01.csv")  # opening it would block until a writer comes
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "M2_2024-01.csv"))
        (tmp_path / "M3_2024-01.csv").write_text("x")
        assert list(dropbox_listing(tmp_path)) == ["M3_2024-01.csv"]
        assert [p.name for p in dropbox_files(tmp_path)] == ["M3_2024-01.csv"]


def test_a_name_that_is_not_utf8_is_listed_in_a_readable_form(tmp_path):
    raw = b"M\xff1_2024-01.csv"
    with open(os.path.join(os.fsencode(tmp_path), raw), "wb") as handle:
        handle.write(b"x")
    assert list(dropbox_listing(tmp_path)) == ["M\\xff1_2024-01.csv"]
    [waiting] = waiting_files(tmp_path)
    assert os.fsencode(waiting.path.name) == raw  # the real name, for moving the file
    json.dumps(dropbox_listing(tmp_path), ensure_ascii=False).encode()  # valid text throughout


def test_fitted_name_keeps_extension_and_tag_within_the_limit():
    assert fitted_name("M1_2024-01.csv") == "M1_2024-01.csv"
    assert fitted_name("M1_2024-01.csv", "17") == "M1_2024-01.17.csv"
    long = "M" + "x" * 300 + ".csv"
    assert fitted_name(long, "17", 243) == "M" + "x" * (243 - len(".17.csv") - 1) + ".17.csv"
    assert len(fitted_name("ä" * 200 + ".csv", "3", 101).encode()) == 100  # whole characters


class FakeClock:
    """Time that moves only when the code under test sleeps."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_stable_files_do_not_wait_for_a_file_stamped_in_the_future(tmp_path):
    clock = FakeClock(T0)
    old, future = tmp_path / "old.csv", tmp_path / "future.csv"
    for path, mtime in ((future, T0 + 86_400), (old, MTIME)):
        path.write_text("x")
        os.utime(path, (mtime, mtime))

    taken = [
        (path.name, clock.now)
        for path, _ in stable_files([future, old], STABLE, clock, clock.sleep)
    ]

    # The settled file at once; the one stamped tomorrow a stability window after first sight.
    assert taken == [("old.csv", T0), ("future.csv", T0 + STABLE)]
    assert sum(clock.slept) == STABLE


def test_stable_files_take_a_settled_file_while_another_is_still_written(tmp_path):
    clock = FakeClock(T0)
    growing, settled = tmp_path / "growing.csv", tmp_path / "settled.csv"
    settled.write_text("x")
    os.utime(settled, (MTIME, MTIME))
    growing.write_text("x")
    os.utime(growing, (T0, T0))
    taken = []

    def sleep(seconds: float) -> None:  # the writer appends while the ingest waits
        clock.sleep(seconds)
        if clock.now <= T0 + 3:
            with growing.open("a") as handle:
                handle.write("more")
            os.utime(growing, (clock.now, clock.now))

    for path, signature in stable_files([growing, settled], STABLE, clock, sleep):
        taken.append((path.name, clock.now, signature[0]))

    assert taken[0] == ("settled.csv", T0, 1)
    # The growing file, whole, once unchanged for the window after its last write (T0 + 3).
    assert taken[1] == ("growing.csv", T0 + 3 + STABLE, len("x" + "more" * 3))


def test_stable_files_drop_a_file_that_vanishes(tmp_path):
    clock = FakeClock(T0)
    gone = tmp_path / "gone.csv"
    gone.write_text("x")
    os.utime(gone, (T0, T0))

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        gone.unlink(missing_ok=True)

    assert list(stable_files([gone], STABLE, clock, sleep)) == []


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


def test_corrected_months_go_first_then_the_newest_history():
    jan, feb, mar, may, jun = (date(2024, m, 1) for m in (1, 2, 3, 5, 6))
    assert run_order([jan, feb, mar, may, jun], {feb, jun}) == [
        (jun, jun),
        (feb, feb),
        (may, may),
        (mar, mar),
        (jan, jan),
    ]
    assert run_order([jan, feb, mar, may], set()) == [(may, may), (jan, mar)]
    assert run_order([], {feb}) == []


def test_month_priorities_put_corrections_above_any_month_and_newer_months_above_older():
    history = [month_priority(date(y, m, 1), False) for y in (1999, 2024) for m in (1, 12)]
    assert history == sorted(history) and len(set(history)) == 4
    assert month_priority(date(2000, 1, 1), True) > month_priority(date(9999, 12, 1), False)
    assert month_priority(date(2024, 2, 1), True) > month_priority(date(2024, 1, 1), True)
