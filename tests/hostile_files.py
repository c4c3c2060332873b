"""Building blocks for hostile meter files: feeder-meter rows, CSV text, workbooks, expectations.

Expectations are computed here from the rows the test writes, never by the platform's parser.
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime, timedelta
from typing import NamedTuple

import openpyxl

HEADER = ["Start Time", "kW del", "kW rec", "kVA del", "kVA rec"]
STEP = timedelta(minutes=15)
MISSING = {"", "nan", "null"}  # gaps: no reading for that channel


class Link(NamedTuple):
    """A symbolic link in the dropbox, to a file with these bytes outside the dropbox."""

    target: bytes


class Case(NamedTuple):
    name: str
    data: bytes | Link
    status: str  # loaded | quarantined | duplicate
    rule: str | None = None
    rows: int | None = None  # rows the file must put in raw.readings
    lines: list[int] | None = None  # `lines` of the reason file, where a line is to blame
    meter: str | None = None  # meter_id of all its readings, for cases about naming
    kw_del: float | None = None  # sum of its kW del, for cases about reading numbers
    members: tuple[Case, ...] = ()  # an archive's members, each with its own verdict


def flattened(cases: list[Case]) -> list[Case]:
    """The cases and, after each archive, its members: every row raw.files must hold."""
    return [c for case in cases for c in (case, *case.members)]


def rows(n: int, base: float, start: str = "2024-01-01 00:00") -> list[list[str]]:
    """`n` consecutive 15-minute rows; no value is zero, so a gap stored as zero shows."""
    first = datetime.fromisoformat(start)
    out = []
    for i in range(n):
        kw, rec = base + i * 0.25, 0.1 * (i % 4 + 1)
        when = f"{first + i * STEP:%Y-%m-%d %H:%M}"
        out.append([when, f"{kw:.2f}", f"{rec:.2f}", f"{kw + 1:.2f}", f"{rec + 0.05:.2f}"])
    return out


def csv(data: list[list[str]], header: list[str] = HEADER, sep: str = ",") -> str:
    """Header and rows, every line ending in a newline."""
    return "".join(sep.join(row) + "\n" for row in [header, *data])


def count(data: list[list[str]]) -> int:
    """Readings expected: one per distinct row and channel with a value (identical rows once)."""
    distinct = {tuple(row) for row in data}
    return sum(value.strip().lower() not in MISSING for row in distinct for value in row[1:5])


def kw_sum(data: list[list[str]]) -> float:
    return sum(float(row[1]) for row in data)


def typed(data: list[list[str]]) -> list[list]:
    """Rows as a spreadsheet holds them: a datetime and numbers."""
    return [[datetime.fromisoformat(row[0]), *map(float, row[1:])] for row in data]


def workbook(*sheets: list[list]) -> bytes:
    """An .xlsx with one sheet per argument (rows of cells, header first)."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for number, cells in enumerate(sheets, 1):
        sheet = book.create_sheet(f"Sheet{number}")
        for row in cells:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def with_cached_errors(xlsx: bytes) -> bytes:
    """Give each `=1/0` cell the cached value Excel saves with it: the error `#DIV/0!`."""
    source, out, patched = zipfile.ZipFile(io.BytesIO(xlsx)), io.BytesIO(), 0
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.startswith("xl/worksheets/"):
                data, n = re.subn(
                    rb'<c r="(\w+)"><f>1/0</f><v ?/></c>',
                    rb'<c r="\1" t="e"><f>1/0</f><v>#DIV/0!</v></c>',
                    data,
                )
                patched += n
            target.writestr(item, data)
    assert patched, "no =1/0 cell to patch"
    return out.getvalue()
