"""Why a file is refused: a rule, a message a person can act on, the lines, a sample; and the one
list of every rule, what it means and whether it refuses the file or only flags rows."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    name: str
    refuses: bool
    """True: the file goes to quarantine and nothing of it loads. False: its rows load, and
    the marts or the anomalies flag them."""
    meaning: str


RULES = (
    Rule("empty_file", True, "nothing in it: 0 bytes, blank lines, a workbook without data"),
    Rule("header_only", True, "a header and no data rows"),
    Rule("no_values", True, "data rows with every value blank"),
    Rule(
        "binary_file",
        True,
        "binary content under a text name (an old .xls, a PDF, NUL bytes); gzip and zip are"
        " unpacked instead",
    ),
    Rule(
        "archive_bomb",
        True,
        "a .gz / .zip that would unpack past `ENERGY_MAX_UNPACKED_BYTES` (4 GiB) or"
        " `ENERGY_MAX_UNPACK_RATIO` (200) times its size (of 1 MiB for smaller archives)",
    ),
    Rule(
        "unreadable_archive",
        True,
        "a damaged or password-protected archive, or one in a compression that cannot be read",
    ),
    Rule("nested_archive", True, "an archive inside an archive (unpack it and drop its files)"),
    Rule("bad_encoding", True, "UTF-16, or text whose encoding changes part-way"),
    Rule("unknown_header", True, "no format matches the header"),
    Rule("missing_column", True, "a format nearly matches but lacks a required column"),
    Rule("bad_header", True, "a header column without a name"),
    Rule("duplicate_column", True, "a column name twice in the header"),
    Rule("header_too_long", True, "a header line over 64 KiB (no header of meter data is)"),
    Rule("line_too_long", True, "a line over 1 MiB (no record of meter data is that long)"),
    Rule("bad_row", True, "more fields than the header has columns (an unquoted delimiter)"),
    Rule("truncated_last_line", True, "the last line is cut off: the file is incomplete"),
    Rule("unclosed_quote", True, "a quoted value that never closes"),
    Rule("multiple_sheets", True, "an Excel workbook with data on several sheets"),
    Rule("formula_error", True, "an Excel error cell such as #DIV/0!"),
    Rule(
        "workbook_bomb",
        True,
        "an Excel workbook part over 1 MiB that unpacks to more than 100 times its packed"
        " size, or over 128 MiB of shared strings: a zip bomb",
    ),
    Rule("unreadable", True, "a damaged workbook, or a file the CSV parser cannot read"),
    Rule("symlink", True, "a symbolic link (never followed)"),
    Rule("missing_meter_id", True, "a row without a meter id, or a file name that names none"),
    Rule(
        "meter_id_too_long",
        True,
        "a meter id over 200 characters (from a meter column, the file name or metadata)",
    ),
    Rule("unknown_channel", True, "a channel code the format does not list"),
    Rule("non_numeric", True, "a value that is not a number (blank, NaN, Null are gaps)"),
    Rule("non_finite", True, "an infinite value: inf, Infinity, 1e999"),
    Rule(
        "implausible_value",
        True,
        "beyond what any meter reads: a power factor outside [-1, 1], more than 1e7 kW, kWh,"
        " kVA or kvar, 2e6 V, 1e6 A, or 1e10 of any other quantity",
    ),
    Rule("bad_timestamp", True, "a timestamp that is not a time"),
    Rule("mixed_timezones", True, "timestamps with and without a UTC offset in one file"),
    Rule("bad_local_time", True, "a local time skipped when daylight saving time starts"),
    Rule(
        "timestamp_out_of_range",
        True,
        "before `ENERGY_FIRST_MONTH` (2000-01) or more than a day in the future",
    ),
    Rule(
        "conflicting_duplicate",
        True,
        "one meter, channel and time twice with different values (both lines named)",
    ),
    Rule("off_interval_grid", True, "a timestamp off the meter's interval grid (step per meter)"),
    Rule("duplicate_meter", True, "meter metadata that lists a meter twice"),
    Rule("bad_multiplier", True, "a meter multiplier that is not a number in (0, 1e6]"),
    Rule("bad_timezone", True, "a meter time zone that is not a tz database name"),
    Rule(
        "timezone_correction",
        True,
        "metadata gives a meter another time zone, but a file loaded earlier cannot be read"
        " again in it (its stored copy is missing or changed, or a local time does not exist)",
    ),
    Rule("unloadable", True, "the database refused a value of the file"),
    Rule(
        "negative_reading",
        False,
        "negative delivered or imported energy or demand (a reversed CT, another sign"
        " convention): loaded as it is, `quality = 'suspect'` in marts.fct_intervals_clean,"
        " and the anomalies report `negative_import`",
    ),
)
"""Every rule, in the order the README's table lists them."""


class Rejected(Exception):
    """The file breaks a rule (one of `RULES`); it goes to quarantine with this explanation."""

    def __init__(
        self, rule: str, message: str, lines: list[int] | None = None, sample: str = ""
    ) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.lines = lines or []
        self.sample = sample

    def as_dict(self) -> dict:
        return {
            "rule": self.rule,
            "message": self.message,
            "lines": self.lines,
            "sample": self.sample,
        }
