"""A dropped file (CSV or .xlsx, judged by content, not name) as a header and chunks of text.

Users' exports fight back, so anything that is not a clean table is refused here with `Rejected`
naming physical lines. CSV streams through pandas' C parser, memory bounded by `chunk_rows` (and
`CHUNK_CELLS`, for wide headers); the slow csv module re-reads a file only to name the line of
an error. What would make the parser hold more than that is refused before it does: a header
line over `HEAD_BYTES`, any line over `LINE_BYTES`, a workbook part that unpacks far beyond its
packed size (a zip bomb).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path

import openpyxl
import pandas as pd
from openpyxl.cell.cell import ERROR_CODES
from openpyxl.utils import get_column_letter

from energy_assets.ingest.rejections import Rejected

HEAD_BYTES = 64 * 1024
"""Read to judge a file; the header line must end within it (no real header is that long)."""
LINE_BYTES = 1024 * 1024
"""The longest line a CSV file may have: a record of meter data is a few hundred bytes."""
CHUNK_CELLS = 4_000_000
"""Cells of a chunk at most: a header of thousands of columns gets chunks of fewer rows."""
WORKBOOK_RATIO = 100
"""The most a workbook part over `WORKBOOK_RATIO_FLOOR` may unpack to, times its packed size:
sheets of meter data unpack 10 to 25 times, a zip bomb of repeated bytes about 1000 times."""
WORKBOOK_RATIO_FLOOR = 1024 * 1024
SHARED_STRINGS_BYTES = 128 * 1024 * 1024
"""The largest shared strings part: openpyxl holds all of it in memory, several times over."""
DELIMITERS = (";", "\t", "|", ",")  # a tie goes to the first: `Wert (kW, netto)` in a `;` file
SAMPLE_CHARS = 200
MAGIC = (
    (b"PK\x03\x04", "a zip archive", "unpack it and drop the files it contains"),
    (b"\x1f\x8b", "a gzip archive", "decompress it and drop the file it contains"),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls workbook", "save it as .xlsx or as CSV"),
    (b"%PDF", "a PDF document", "export the data as CSV instead"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_COMMA_NUMBER = re.compile(r" *[+-]?[0-9]*,[0-9]+(?:[eE][+-]?[0-9]+)? *")
_POINT_NUMBER = re.compile(r" *[+-]?[0-9]*\.[0-9]+(?:[eE][+-]?[0-9]+)? *")
# No \s or \d: pandas then runs the replacement in pyarrow (RE2) instead of per cell in Python.
_DECIMAL_COMMA = r"^( *[+-]?[0-9]*),([0-9]+(?:[eE][+-]?[0-9]+)? *)$"

Record = tuple[int, list[str]]  # (1-based first physical line, fields)


@dataclass
class Table:
    """A CSV file's header and dialect; `chunks` streams its records as text."""

    header: list[str]
    encoding: str
    delimiter: str | None
    decimal: str
    path: Path
    chunk_rows: int = 100_000
    header_line: int = 1

    def chunks(self) -> Iterator[pd.DataFrame]:
        """Records as str DataFrames indexed by record number, so callers can name lines.

        Records with every field empty (the `;;;` lines Excel leaves) are dropped; decimal
        commas become points so callers parse one number format.
        """
        last = None
        try:
            with (
                self.path.open("rb") as raw,
                pd.read_csv(
                    io.BufferedReader(_LineGuard(raw, self.path.name, self.encoding)),
                    sep=self.delimiter,
                    encoding=self.encoding,
                    dtype=str,
                    keep_default_na=False,
                    skipinitialspace=True,
                    index_col=False,
                    chunksize=self.rows_per_chunk,
                    engine="c",
                ) as reader,
            ):
                for chunk in reader:
                    if chunk.empty:
                        continue
                    last = int(chunk.index[-1])
                    kept = chunk[chunk.ne("").any(axis=1)].set_axis(self.header, axis=1)
                    if not kept.empty:
                        yield _decimal_points(kept) if self.decimal == "," else kept
        except pd.errors.ParserError as exc:
            raise self._parser_rejection(exc) from exc
        except UnicodeDecodeError as exc:
            line, text = _undecodable_line(self.path, self.encoding)
            raise Rejected(
                "bad_encoding",
                f"{self.path.name}: line {line} is not {self.encoding}"
                " text like the lines before it; save the file again in one encoding, "
                "preferably UTF-8",
                [line],
                text[:SAMPLE_CHARS],
            ) from exc
        self._check_end(last)

    @property
    def rows_per_chunk(self) -> int:
        return max(1, min(self.chunk_rows, CHUNK_CELLS // len(self.header)))

    def line_of(self, record: int) -> int:
        """1-based physical line where data record `record` starts (re-reads the file)."""
        found = next(islice(self._records(), record + 1, None), None)
        if found is None:
            raise IndexError(f"{self.path.name} has no record {record}")
        return found[0]

    def _records(self) -> Iterator[Record]:
        """Every record, header first, exactly as pandas splits them: slow, for errors only."""
        with self.path.open(encoding=self.encoding, errors="replace", newline="") as file:
            yield from _parse(file, self.delimiter)

    def _parser_rejection(self, exc: pd.errors.ParserError) -> Rejected:
        """Name what pandas choked on: an open quote at the end, or a record that is too wide."""
        name = self.path.name
        if "EOF inside string" in str(exc):
            line, fields = deque(self._records(), maxlen=1)[0]
            if not _tail(self.path, self.encoding).endswith(("\n", "\r")):
                return _truncated(name, line, _sample(fields, self.delimiter))
            return Rejected(
                "unclosed_quote",
                f"{name}: the quoted value starting on line {line} "
                "is never closed, so the rest of the file would become one value; fix "
                "the quote or export the file again",
                [line],
                _sample(fields, self.delimiter),
            )
        for line, fields in islice(self._records(), 1, None):
            if len(fields) > len(self.header):
                return _bad_row(name, line, fields, len(self.header), self.delimiter)
        return Rejected("unreadable", f"{name} is not a readable CSV file: {exc}")

    def _check_end(self, last: int | None) -> None:
        """A file cut off mid-record: no final line break and a last record that is short."""
        if last is None:
            return
        tail = _tail(self.path, self.encoding)
        text = tail[max(tail.rfind("\n"), tail.rfind("\r")) + 1 :]
        if not text.strip():
            return  # ends with a line break (and maybe blanks): the last record is whole
        if text.count('"') % 2:  # the line may close a value opened lines before: parse exactly
            fields = deque(self._records(), maxlen=1)[0][1]
        else:
            fields = next(csv.reader([text], delimiter=self.delimiter, skipinitialspace=True))
        if len(fields) < len(self.header):
            raise _truncated(self.path.name, self.line_of(last), _sample(fields, self.delimiter))


@dataclass
class _Sheet(Table):
    """The one worksheet with data in an .xlsx file; a record is any row below the header."""

    sheet: str = ""

    def chunks(self) -> Iterator[pd.DataFrame]:
        """Rows as text like `Table.chunks`; empty rows are skipped, Excel errors refused."""
        rows: list[list[str]] = []
        index: list[int] = []
        for number, values in _sheet_rows(self.path, self.sheet, self.header_line + 1):
            texts = self._texts(number, values)
            if any(texts):
                rows.append(texts)
                index.append(number - self.header_line - 1)
            if len(rows) == self.rows_per_chunk:
                yield pd.DataFrame(rows, index=index, columns=self.header, dtype=str)
                rows, index = [], []
        if rows:
            yield pd.DataFrame(rows, index=index, columns=self.header, dtype=str)

    def line_of(self, record: int) -> int:
        """The sheet row number of record `record`."""
        return self.header_line + 1 + record

    def _texts(self, number: int, values: tuple) -> list[str]:
        width = len(self.header)
        texts = _row_texts(self.path.name, self.sheet, number, values)
        extra = next((i for i in range(width, len(texts)) if texts[i]), None)
        if extra is not None:
            raise Rejected(
                "bad_row",
                f"{self.path.name}: row {number} has a value in column "
                f"{get_column_letter(extra + 1)}, right of the {width} named header "
                "columns; name that column or delete the value",
                [number],
                texts[extra][:SAMPLE_CHARS],
            )
        return texts[:width] + [""] * (width - len(texts))


def open_table(path: Path, chunk_rows: int = 100_000) -> Table:
    """Judge `path` by its content, not its name, and return its header and dialect."""
    with path.open("rb") as file:
        head = file.read(HEAD_BYTES)
    if not head:
        raise Rejected("empty_file", f"{path.name} is empty (0 bytes)")
    if head.startswith(b"PK\x03\x04") and is_workbook(path):
        return _open_workbook(path, chunk_rows)
    for magic, what, advice in MAGIC:
        if head.startswith(magic):
            raise Rejected("binary_file", f"{path.name} is {what}, not a CSV file; {advice}")
    return _open_csv(path, head, chunk_rows)


def _open_csv(path: Path, head: bytes, chunk_rows: int) -> Table:
    complete = len(head) < HEAD_BYTES
    encoding, text = _decode(path.name, head, complete)
    if not complete:  # sniff whole lines only
        whole = text[: max(text.rfind("\n"), text.rfind("\r")) + 1]
        if not whole.strip():
            line = len(whole.splitlines()) + 1
            raise Rejected(
                "header_too_long",
                f"{path.name}: the header (line {line}) is longer than {HEAD_BYTES // 1024} KiB"
                " without a line break; no header of meter data is that long, so this is not"
                " a CSV export of meter data, or its line breaks were lost",
                [line],
                text.lstrip()[:SAMPLE_CHARS],
            )
        text = whole
    if not text.strip():
        raise Rejected("empty_file", f"{path.name} contains only blank lines")
    delimiter, ((line, fields), *rows) = _sniff(text)
    header = _names(fields)
    _check_header(path.name, header, line, delimiter)
    # pandas silently drops extra fields of the first data row: catch wide records here.
    wide = next(((n, f) for n, f in rows if len(f) > len(header)), None)
    if wide:
        raise _bad_row(path.name, *wide, len(header), delimiter)
    return Table(header, encoding, delimiter, _decimal(delimiter, rows), path, chunk_rows, line)


class _LineGuard(io.RawIOBase):
    """A file as pandas reads it, refusing it once a line runs past `LINE_BYTES`.

    pandas' parser would hold a line of any length (a gigabyte without a line break) in memory;
    this sees every byte it reads first. It hands out at most `LINE_BYTES` per read, so a line
    that is too long always spans reads, and only the bytes since the last line break count.
    """

    def __init__(self, raw: io.BufferedReader, name: str, encoding: str) -> None:
        self.raw, self.name, self.encoding = raw, name, encoding
        self.run = 0  # bytes since the last line break
        self.lines = 0  # line breaks before this read
        self.start = b""  # the start of the current line, for the sample
        self.newline: bytes | None = None  # b"\n", or b"\r" in a file of old Mac line breaks

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        with memoryview(buffer) as view:
            n = self.raw.readinto(view[:LINE_BYTES])
            block = bytes(view[:n])
        breaks = [i for i in (block.find(b"\n"), block.find(b"\r")) if i >= 0]
        if not breaks:
            self.run += n
            self.start += block[: SAMPLE_CHARS - len(self.start)]
        else:
            self.run += min(breaks)
        if self.run > LINE_BYTES:
            line = self.lines + 1
            raise Rejected(
                "line_too_long",
                f"{self.name}: line {line} is longer than {LINE_BYTES // 1024 // 1024} MiB"
                " without a line break; no record of meter data is that long, so the file is"
                " damaged or is not a meter export",
                [line],
                self.start.decode(self.encoding, errors="replace"),
            )
        if breaks:
            last = max(block.rfind(b"\n"), block.rfind(b"\r"))
            self.run, self.start = n - last - 1, block[last + 1 : last + 1 + SAMPLE_CHARS]
            self.newline = self.newline or (b"\n" if b"\n" in block else b"\r")
            self.lines += block.count(self.newline)
        return n


def _decode(name: str, head: bytes, complete: bool) -> tuple[str, str]:
    """UTF-8 (with or without BOM) if valid, else Windows-1252, what European Excel writes."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise Rejected("bad_encoding", f'{name} is UTF-16 text; save it again as "CSV UTF-8"')
    for encoding in ("utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8", "cp1252"):
        try:
            text = codecs.getincrementaldecoder(encoding)().decode(head, final=complete)
        except UnicodeDecodeError:
            continue
        control = _CONTROL.search(text)
        if control:
            char = control[0]
            what = "NUL bytes" if char == "\0" else f"the control byte 0x{ord(char):02X}"
            raise Rejected("binary_file", f"{name} is not a text file: it contains {what}")
        return encoding, text
    raise Rejected("binary_file", f"{name} is not a text file: it is neither UTF-8 nor cp1252")


def _parse(lines: Iterable[str], delimiter: str) -> Iterator[Record]:
    """Records with their first physical line, skipping whitespace-only lines as pandas does."""
    line = ""

    def remember() -> Iterator[str]:
        nonlocal line
        for text in lines:
            line = text
            yield text

    reader = csv.reader(remember(), delimiter=delimiter, skipinitialspace=True)
    end = 0
    for fields in reader:
        start, end = end + 1, reader.line_num
        if end > start or line.strip():
            yield start, fields


def _sniff(text: str) -> tuple[str, list[Record]]:
    """The delimiter giving the header most columns that the following records agree with."""
    parsed = {d: list(_parse(io.StringIO(text, newline=""), d)) for d in DELIMITERS}

    def score(delimiter: str) -> tuple[bool, int, int]:
        (_, header), *rows = parsed[delimiter]
        width = len(header)
        return width > 1, sum(len(fields) == width for _, fields in rows), width

    delimiter = max(DELIMITERS, key=score)
    return delimiter, parsed[delimiter]


def _decimal(delimiter: str, rows: list[Record]) -> str:
    """`,` if the sample's numbers mostly look like `1,5`; never when `,` is the delimiter."""
    if delimiter == ",":
        return "."
    cells = [cell for _, fields in rows for cell in fields]
    commas = sum(bool(_COMMA_NUMBER.fullmatch(cell)) for cell in cells)
    points = sum(bool(_POINT_NUMBER.fullmatch(cell)) for cell in cells)
    return "," if commas > points else "."


def _decimal_points(chunk: pd.DataFrame) -> pd.DataFrame:
    """`-0,25` -> `-0.25` in cells that are exactly a number; text and timestamps stay."""
    return chunk.apply(
        lambda column: (
            column.str.replace(_DECIMAL_COMMA, r"\1.\2", regex=True)
            if column.str.contains(",", regex=False).any()
            else column
        )
    )


def _names(fields: Iterable[str]) -> list[str]:
    return [field.replace("\ufeff", "").strip() for field in fields]


def _check_header(name: str, header: list[str], line: int, delimiter: str | None) -> None:
    """Columns are mapped by name, so each needs one, and a different one."""
    sample = _sample(header, delimiter)
    if "" in header:
        raise Rejected(
            "bad_header",
            f"{name}: column {header.index('') + 1} of the header "
            f"(line {line}) has no name; name it or delete the column",
            [line],
            sample,
        )
    seen: set[str] = set()  # a set: a header may have thousands of columns
    for column in header:
        if column in seen:
            raise Rejected(
                "duplicate_column",
                f"{name}: the header (line {line}) has the column "
                f"{column!r} twice; rename or delete one of them",
                [line],
                sample,
            )
        seen.add(column)


def _sample(fields: list[str], delimiter: str | None) -> str:
    return (delimiter or ",").join(fields)[:SAMPLE_CHARS]


def _bad_row(name: str, line: int, fields: list[str], width: int, delimiter: str) -> Rejected:
    return Rejected(
        "bad_row",
        f"{name}: line {line} has {len(fields)} fields but the header has "
        f"{width}; a value probably contains an unquoted {delimiter!r}",
        [line],
        _sample(fields, delimiter),
    )


def _truncated(name: str, line: int, sample: str) -> Rejected:
    return Rejected(
        "truncated_last_line",
        f"{name}: the last line ({line}) is incomplete and "
        "has no line break; the file looks cut off, export it again",
        [line],
        sample,
    )


def _tail(path: Path, encoding: str) -> str:
    """The last 64 KiB as text (a character cut at the start becomes U+FFFD)."""
    with path.open("rb") as file:
        file.seek(max(0, file.seek(0, io.SEEK_END) - HEAD_BYTES))
        return file.read().decode(encoding, errors="replace")


def _undecodable_line(path: Path, encoding: str) -> tuple[int, str]:
    """The first line that is not valid `encoding`: number and text with U+FFFD."""
    with path.open("rb") as file:
        for number, raw in enumerate(file, 1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError:
                return number, raw.decode(encoding, errors="replace").rstrip("\r\n")
    raise ValueError(f"every line of {path.name} decodes as {encoding}")


# --- Excel -------------------------------------------------------------------------------------


def is_workbook(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "xl/workbook.xml" in archive.namelist()
    except zipfile.BadZipFile:
        return False


@contextmanager
def _workbook(path: Path) -> Iterator[openpyxl.Workbook]:
    """The workbook, read-only with cached values; opened from a handle so any name works."""
    with path.open("rb") as file:
        try:
            workbook = openpyxl.load_workbook(file, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many types for a damaged workbook
            message = f"{path.name} looks like an .xlsx workbook but cannot be read: {exc}"
            raise Rejected("unreadable", message) from exc
        try:
            yield workbook
        finally:
            workbook.close()


def _check_unpacked_sizes(path: Path) -> None:
    """Refuse a workbook part that would unpack far beyond its packed size, before openpyxl
    unpacks anything. zipfile never unpacks more than a part's declared size, so the declared
    sizes are the bound."""
    with zipfile.ZipFile(path) as archive:
        for part in archive.infolist():
            ratio = part.file_size / max(part.compress_size, 1)
            strings = part.filename.lower().endswith("sharedstrings.xml")
            if strings and part.file_size > SHARED_STRINGS_BYTES:
                limit = f"at most {SHARED_STRINGS_BYTES // 1024 // 1024} MiB of shared strings"
            elif part.file_size > WORKBOOK_RATIO_FLOOR and ratio > WORKBOOK_RATIO:
                limit = f"at most {WORKBOOK_RATIO} times its packed size"
            else:
                continue
            raise Rejected(
                "workbook_bomb",
                f"{path.name}: the part {part.filename} unpacks to {part.file_size:,} bytes from"
                f" {part.compress_size:,} ({ratio:,.0f}:1), and a workbook of meter data holds"
                f" {limit}; reading it would exhaust memory. If the workbook is genuine, save"
                " its sheet as CSV and drop that instead",
                sample=part.filename,
            )


def _open_workbook(path: Path, chunk_rows: int) -> Table:
    _check_unpacked_sizes(path)
    firsts = _first_rows(path)
    if not firsts:
        raise Rejected("empty_file", f"{path.name} is a workbook without any data")
    if len(firsts) > 1:
        sheets = ", ".join(firsts)
        raise Rejected(
            "multiple_sheets",
            f"{path.name} has data on {len(firsts)} sheets "
            f"({sheets}); save each sheet as a file of its own",
            sample=sheets,
        )
    [(sheet, (line, values))] = firsts.items()
    header = _names(_row_texts(path.name, sheet, line, values))
    while not header[-1]:  # formatted but empty cells right of the header
        header.pop()
    _check_header(path.name, header, line, None)
    return _Sheet(header, "utf-8", None, ".", path, chunk_rows, line, sheet)


def _first_rows(path: Path) -> dict[str, tuple[int, tuple]]:
    """Row number and values of the first non-empty row of each worksheet that has one."""
    firsts = {}
    with _workbook(path) as workbook:
        for worksheet in workbook.worksheets:
            worksheet.reset_dimensions()  # the stored size is often wrong: read every row
            rows = enumerate(worksheet.iter_rows(values_only=True), 1)
            first = next(((n, row) for n, row in rows if any(map(_cell_text, row))), None)
            if first:
                firsts[worksheet.title] = first
    return firsts


def _sheet_rows(path: Path, sheet: str, first: int) -> Iterator[tuple[int, tuple]]:
    with _workbook(path) as workbook:
        worksheet = workbook[sheet]
        worksheet.reset_dimensions()
        yield from enumerate(worksheet.iter_rows(min_row=first, values_only=True), first)


def _row_texts(name: str, sheet: str, number: int, values: tuple) -> list[str]:
    """A worksheet row as text; a cached Excel error such as `#DIV/0!` refuses the file."""
    for column, value in enumerate(values, 1):
        if value in ERROR_CODES:
            where = sheet if re.fullmatch(r"\w+", sheet) else f"'{sheet}'"
            cell = f"{where}!{get_column_letter(column)}{number}"
            raise Rejected(
                "formula_error",
                f"{name}: cell {cell} holds the Excel error {value}; "
                "fix the formula or its inputs and save the workbook again",
                [number],
                value,
            )
    return [_cell_text(value) for value in values]


def _cell_text(value: object) -> str:
    """What a careful CSV export would write: ISO datetimes, `5` for 5.0, exact floats."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(" ", "milliseconds" if value.microsecond else "seconds")
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)
