"""Reading dropped files into a header and text chunks: pure, no database, no Dagster."""

import gzip
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from datetime import datetime

import openpyxl
import pandas as pd
import pytest

from energy_assets.ingest.readers import (
    CHUNK_CELLS,
    HEAD_BYTES,
    LINE_BYTES,
    WORKBOOK_RATIO,
    open_table,
)
from energy_assets.ingest.rejections import Rejected


def write(tmp_path, data, name="M1001_2024-01.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return path


def rows(table):
    """All chunks as (record, values) pairs."""
    return [(i, list(row)) for chunk in table.chunks() for i, row in chunk.iterrows()]


def read(tmp_path, data, **kwargs):
    table = open_table(write(tmp_path, data, **kwargs))
    return table, rows(table)


def rejection(tmp_path, data, name="M1001_2024-01.csv"):
    with pytest.raises(Rejected) as info:
        rows(open_table(write(tmp_path, data, name)))
    return info.value.as_dict()


def workbook(tmp_path, sheets, name="export.xlsx"):
    """An .xlsx file with {sheet title: rows}; the first sheet replaces the default one."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, sheet_rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in sheet_rows:
            sheet.append(row)
    path = tmp_path / name
    book.save(path)
    return path


# --- empty files and headers -------------------------------------------------------------------


def test_zero_bytes_is_an_empty_file(tmp_path):
    assert rejection(tmp_path, b"") == {
        "rule": "empty_file",
        "message": "M1001_2024-01.csv is empty (0 bytes)",
        "lines": [],
        "sample": "",
    }


@pytest.mark.parametrize("text", ["\n", "\n\n\n", "  \r\n\t\n   "])
def test_blank_lines_only_is_an_empty_file(tmp_path, text):
    assert rejection(tmp_path, text) == {
        "rule": "empty_file",
        "message": "M1001_2024-01.csv contains only blank lines",
        "lines": [],
        "sample": "",
    }


@pytest.mark.parametrize("text", ["Start Time,kW del\n", "Start Time,kW del", "\nA,B\r\n\r\n"])
def test_header_only_yields_no_chunks(tmp_path, text):
    table, records = read(tmp_path, text)
    assert table.header == text.strip().split(",")
    assert records == []


def test_empty_header_name_is_a_bad_header(tmp_path):
    assert rejection(tmp_path, "Zeit;Wert;\n2024-01-01 00:00;1;\n") == {
        "rule": "bad_header",
        "message": "M1001_2024-01.csv: column 3 of the header (line 1) has no name; "
        "name it or delete the column",
        "lines": [1],
        "sample": "Zeit;Wert;",
    }


def test_duplicate_column_names_the_column(tmp_path):
    assert rejection(tmp_path, "\nStart Time,kW del, kW del \n2024-01-01 00:00,1,2\n") == {
        "rule": "duplicate_column",
        "message": "M1001_2024-01.csv: the header (line 2) has the column 'kW del' twice; "
        "rename or delete one of them",
        "lines": [2],
        "sample": "Start Time,kW del,kW del",
    }


# --- encodings ---------------------------------------------------------------------------------


def test_utf8_bom_is_removed_from_the_header(tmp_path):
    table, records = read(tmp_path, "\ufeffZähler,Wert\nM1,1\n")
    assert (table.header, table.encoding, records) == (
        ["Zähler", "Wert"],
        "utf-8-sig",
        [(0, ["M1", "1"])],
    )


def test_plain_utf8(tmp_path):
    table, records = read(tmp_path, "Zähler,Name\nM1,Müller\n")
    assert (table.header, table.encoding, records) == (
        ["Zähler", "Name"],
        "utf-8",
        [(0, ["M1", "Müller"])],
    )


def test_cp1252_text_is_decoded(tmp_path):
    table, records = read(tmp_path, "Zähler;Name;Preis\nM1;Müller;5 €\n", encoding="cp1252")
    assert table.encoding == "cp1252"
    assert table.header == ["Zähler", "Name", "Preis"]
    assert records == [(0, ["M1", "Müller", "5 €"])]


def test_cp1252_after_a_utf8_start_names_the_line(tmp_path):
    head = "Meter,Name\n" + "M1,Ann\n" * (HEAD_BYTES // 7 + 10)
    data = head.encode() + "M2,Müller\n".encode("cp1252")
    line = head.count("\n") + 1
    assert rejection(tmp_path, data) == {
        "rule": "bad_encoding",
        "message": f"M1001_2024-01.csv: line {line} is not utf-8 text like the lines before it; "
        "save the file again in one encoding, preferably UTF-8",
        "lines": [line],
        "sample": "M2,M\ufffdller",
    }


def test_utf16_is_refused_with_advice(tmp_path):
    assert rejection(tmp_path, "A\tB\r\n1\t2\r\n".encode("utf-16")) == {
        "rule": "bad_encoding",
        "message": 'M1001_2024-01.csv is UTF-16 text; save it again as "CSV UTF-8"',
        "lines": [],
        "sample": "",
    }


# --- binary files ------------------------------------------------------------------------------


def zipped(name, data):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data, message",
    [
        (
            zipped("readings.csv", "a,b\n1,2\n"),
            "is a zip archive, not a CSV file; unpack it and drop the files it contains",
        ),
        (
            gzip.compress(b"a,b\n1,2\n"),
            "is a gzip archive, not a CSV file; decompress it and drop the file it contains",
        ),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500),
            "is an old Excel .xls workbook, not a CSV file; save it as .xlsx or as CSV",
        ),
        (
            b"%PDF-1.7\n%\xe2\xe3\n",
            "is a PDF document, not a CSV file; export the data as CSV instead",
        ),
        (b"a,b\n1,2\x00\x00\n", "is not a text file: it contains NUL bytes"),
        (b"a,b\n1,\x81\x8d\x90\n", "is not a text file: it is neither UTF-8 nor cp1252"),
        (
            "a,b\n1,\x02\x03\n".encode("cp1252"),
            "is not a text file: it contains the control byte 0x02",
        ),
    ],
    # Named, not derived from the bytes: gzip writes the current time into its header.
    ids=["zip", "gzip", "xls", "pdf", "nul", "neither-utf8-nor-cp1252", "control-byte"],
)
def test_binary_content_is_refused(tmp_path, data, message):
    assert rejection(tmp_path, data) == {
        "rule": "binary_file",
        "message": f"M1001_2024-01.csv {message}",
        "lines": [],
        "sample": "",
    }


# --- delimiters, quotes and decimal commas -----------------------------------------------------


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_delimiter_is_detected(tmp_path, sep):
    others = "".join(d for d in ",;\t|" if d != sep)
    text = sep.join(["Start Time", "kW del", "Note"]) + "\n"
    text += sep.join(["2024-01-01 00:00", "1", f'"a{others}b"']) + "\n"
    text += sep.join(["2024-01-01 00:15", "2", f"{others[0]}"]) + "\n"
    table, records = read(tmp_path, text)
    assert (table.delimiter, table.header) == (sep, ["Start Time", "kW del", "Note"])
    assert records == [
        (0, ["2024-01-01 00:00", "1", f"a{others}b"]),
        (1, ["2024-01-01 00:15", "2", others[0]]),
    ]


def test_semicolon_wins_a_tie_with_commas_in_names_and_numbers(tmp_path):
    table, records = read(tmp_path, "Zeit;Bezug (kW, netto)\n2024-01-01 00:00;1,5\n")
    assert (table.delimiter, table.decimal) == (";", ",")
    assert records == [(0, ["2024-01-01 00:00", "1.5"])]


def test_single_column_file(tmp_path):
    table, records = read(tmp_path, "Meter ID\nM1\nM2\n")
    assert table.header == ["Meter ID"]
    assert records == [(0, ["M1"]), (1, ["M2"])]


@pytest.mark.parametrize("sep", [";", "\t"])
def test_decimal_comma_becomes_a_point_in_numbers_only(tmp_path, sep):
    lines = [
        ["Zeit", "Wert", "Name", "Blind"],
        ["2024-01-01 00:00:00,000", "1,5", "Müller, Hans", "-0,25"],
        ["2024-01-01 00:15:00,000", "2", "1,2,3", ",5"],
        ["2024-01-01 00:30:00,000", "1,5e-3", "x", "3,25 "],
    ]
    table, records = read(tmp_path, "".join(sep.join(line) + "\n" for line in lines))
    assert (table.delimiter, table.decimal) == (sep, ",")
    assert records == [
        (0, ["2024-01-01 00:00:00,000", "1.5", "Müller, Hans", "-0.25"]),
        (1, ["2024-01-01 00:15:00,000", "2", "1,2,3", ".5"]),
        (2, ["2024-01-01 00:30:00,000", "1.5e-3", "x", "3.25 "]),
    ]


def test_decimal_points_in_a_semicolon_file_stay(tmp_path):
    table, records = read(tmp_path, "Zeit;Wert\n2024-01-01 00:00;1.5\n2024-01-01 00:15;2.25\n")
    assert (table.delimiter, table.decimal) == (";", ".")
    assert records == [(0, ["2024-01-01 00:00", "1.5"]), (1, ["2024-01-01 00:15", "2.25"])]


def test_no_decimal_comma_with_comma_delimiter(tmp_path):
    table, records = read(tmp_path, 'Start Time,kW del\n2024-01-01 00:00,"1,5"\n')
    assert (table.delimiter, table.decimal) == (",", ".")
    assert records == [(0, ["2024-01-01 00:00", "1,5"])]


def test_quoted_delimiters_and_newlines_are_one_field(tmp_path):
    text = 'Start Time,kW del,Note\r\n2024-01-01 00:00,1,"two\r\nlines, and ""quotes"""\r\n'
    text += '\r\n2024-01-01 00:15,2,"three\n\nlines"\r\n2024-01-01 00:30, 3 ,plain\r\n'
    table, records = read(tmp_path, text)
    assert records == [
        (0, ["2024-01-01 00:00", "1", 'two\r\nlines, and "quotes"']),
        (1, ["2024-01-01 00:15", "2", "three\n\nlines"]),
        (2, ["2024-01-01 00:30", "3 ", "plain"]),
    ]
    assert [table.line_of(i) for i in range(3)] == [2, 5, 8]
    with pytest.raises(IndexError):
        table.line_of(3)


# --- rows: too wide, short, blank, truncated ---------------------------------------------------


def test_short_rows_get_empty_fields_and_blank_lines_are_skipped(tmp_path):
    text = "\n\nA;B;C\n1;2;3\n\n   \n4\n;;\n5;;6\n"
    table, records = read(tmp_path, text)
    assert records == [(0, ["1", "2", "3"]), (1, ["4", "", ""]), (3, ["5", "", "6"])]
    assert [table.line_of(i) for i in range(4)] == [4, 7, 8, 9]


def test_quoted_empty_line_is_a_record_and_whitespace_lines_are_not(tmp_path):
    table, records = read(tmp_path, 'A,B\n""\n \t \n1,2\n')
    assert records == [(1, ["1", "2"])]  # record 0 (`""`) is all empty, so dropped
    assert table.line_of(1) == 4


def test_old_mac_line_breaks(tmp_path):
    table, records = read(tmp_path, "A;B\r1;2,5\r\r3;4")
    assert (table.delimiter, records) == (";", [(0, ["1", "2.5"]), (1, ["3", "4"])])
    assert table.line_of(1) == 4


def test_chunks_are_bounded_and_numbered_across_chunks(tmp_path):
    path = write(tmp_path, "A,B\n" + "".join(f"{i},x\n" for i in range(5)))
    chunks = list(open_table(path, chunk_rows=2).chunks())
    assert [list(chunk.index) for chunk in chunks] == [[0, 1], [2, 3], [4]]
    assert all(list(chunk.columns) == ["A", "B"] for chunk in chunks)
    assert {str(dtype) for chunk in chunks for dtype in chunk.dtypes} == {"str"}


def test_too_many_fields_in_the_first_data_row(tmp_path):
    assert rejection(tmp_path, "Start Time,kW del\n2024-01-01 00:00,1,5\n") == {
        "rule": "bad_row",
        "message": "M1001_2024-01.csv: line 2 has 3 fields but the header has 2; "
        "a value probably contains an unquoted ','",
        "lines": [2],
        "sample": "2024-01-01 00:00,1,5",
    }


def test_too_many_fields_far_into_the_file_after_multiline_values(tmp_path):
    good = '2024-01-01 00:00;1;"a\nb"\n' * (HEAD_BYTES // 20)
    text = "Zeit;Wert;Notiz\n" + good + "2024-01-01 00:15;1;2;3\n" + good
    line = 2 + 2 * (HEAD_BYTES // 20)
    path = write(tmp_path, text)
    with pytest.raises(Rejected) as info:
        for _ in open_table(path, chunk_rows=1000).chunks():
            pass
    assert info.value.as_dict() == {
        "rule": "bad_row",
        "message": f"M1001_2024-01.csv: line {line} has 4 fields but the header has 3; "
        "a value probably contains an unquoted ';'",
        "lines": [line],
        "sample": "2024-01-01 00:15;1;2;3",
    }


@pytest.mark.parametrize(
    "text, line, sample",
    [
        ("A,B,C\n1,2,3\n4,5", 3, "4,5"),
        ('A,B,C\n1,2,"x\ny"\n4,"5\n6",', 4, "4,5\n6,"),  # complete: not cut off
        ('A,B,C\n1,2,"x\ny"\n4,"5\n6"', 4, "4,5\n6"),
        ('A,B,C\n1,2,3\n4,5,"six and', 3, "4,5,six and"),
        ('A,B,C\n1,2,3\n4,5,"six\nand', 3, "4,5,six\nand"),
    ],
)
def test_truncated_last_line(tmp_path, text, line, sample):
    if text.endswith(","):
        assert rows(open_table(write(tmp_path, text)))[-1] == (1, ["4", "5\n6", ""])
        return
    assert rejection(tmp_path, text) == {
        "rule": "truncated_last_line",
        "message": f"M1001_2024-01.csv: the last line ({line}) is incomplete and has no line "
        "break; the file looks cut off, export it again",
        "lines": [line],
        "sample": sample,
    }


@pytest.mark.parametrize("text", ["A,B\n1,2\n3,4", 'A,B\n1,"x\ny"\n3,"4"', "A,B\n1,2\n3,4\n  "])
def test_complete_last_line_without_line_break_is_fine(tmp_path, text):
    assert [i for i, _ in rows(open_table(write(tmp_path, text)))] == [0, 1]


def test_unclosed_quote_names_its_line(tmp_path):
    assert rejection(tmp_path, 'A,B\n1,2\n3,"4\n5,6\n7,8\n') == {
        "rule": "unclosed_quote",
        "message": "M1001_2024-01.csv: the quoted value starting on line 3 is never closed, so "
        "the rest of the file would become one value; fix the quote or export the file again",
        "lines": [3],
        "sample": "3,4\n5,6\n7,8\n",
    }


# --- Excel workbooks ---------------------------------------------------------------------------


def test_xlsx_values_become_text(tmp_path):
    path = workbook(
        tmp_path,
        {
            "Daten": [
                [None],
                ["\ufeffStart Time", " kW del ", "Meter", None],
                [datetime(2024, 1, 1), 5.0, "M1"],
                [datetime(2024, 1, 1, 0, 15, 0, 250000), 0.1, 1001],
                [None, None, None],
                [datetime(2024, 1, 1, 0, 30), None, "M2", None],
            ]
        },
        name="readings.csv",
    )
    table = open_table(path, chunk_rows=2)
    assert (table.header, table.delimiter, table.decimal) == (
        ["Start Time", "kW del", "Meter"],
        None,
        ".",
    )
    chunks = list(table.chunks())
    assert [list(chunk.index) for chunk in chunks] == [[0, 1], [3]]
    assert {str(dtype) for chunk in chunks for dtype in chunk.dtypes} == {"str"}
    assert rows(table) == [
        (0, ["2024-01-01 00:00:00", "5", "M1"]),
        (1, ["2024-01-01 00:15:00.250", "0.1", "1001"]),
        (3, ["2024-01-01 00:30:00", "", "M2"]),
    ]
    assert [table.line_of(i) for i in (0, 1, 3)] == [3, 4, 6]


def test_csv_named_xlsx_is_read_as_csv(tmp_path):
    table, records = read(tmp_path, "A;B\n1;2\n", name="export.xlsx")
    assert (table.delimiter, records) == (";", [(0, ["1", "2"])])


def test_xlsx_with_data_on_two_sheets(tmp_path):
    path = workbook(tmp_path, {"Readings": [["A"], [1]], "Empty": [], "Notes": [["x"]]})
    with pytest.raises(Rejected) as info:
        open_table(path)
    assert info.value.as_dict() == {
        "rule": "multiple_sheets",
        "message": "export.xlsx has data on 2 sheets (Readings, Notes); "
        "save each sheet as a file of its own",
        "lines": [],
        "sample": "Readings, Notes",
    }


def test_xlsx_without_data(tmp_path):
    with pytest.raises(Rejected) as info:
        open_table(workbook(tmp_path, {"Sheet1": []}))
    assert (info.value.rule, info.value.message) == (
        "empty_file",
        "export.xlsx is a workbook without any data",
    )


def test_xlsx_value_right_of_the_header(tmp_path):
    path = workbook(tmp_path, {"Sheet1": [["A", "B"], [1, 2], [3, 4, None, "x"]]})
    with pytest.raises(Rejected) as info:
        rows(open_table(path))
    assert info.value.as_dict() == {
        "rule": "bad_row",
        "message": "export.xlsx: row 3 has a value in column D, right of the 2 named header "
        "columns; name that column or delete the value",
        "lines": [3],
        "sample": "x",
    }


def with_cached_formula(path, cell, formula):
    """Give an error cell a formula, as Excel saves it: `<f>` plus the cached error `<v>`."""
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    old = f'<c r="{cell}" t="e"><v>'
    assert old in sheet
    parts["xl/worksheets/sheet1.xml"] = sheet.replace(
        old, old.replace("<v>", f"<f>{formula}</f><v>")
    )
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)


@pytest.mark.parametrize(
    "error", ["#DIV/0!", "#REF!", "#VALUE!", "#N/A", "#NAME?", "#NUM!", "#NULL!"]
)
def test_xlsx_cached_formula_error(tmp_path, error):
    path = workbook(tmp_path, {"Sheet1": [["A", "B", "C"]] + [[1, 2, 3]] * 5 + [[1, 2, error]]})
    with_cached_formula(path, "C7", "1/0")
    with pytest.raises(Rejected) as info:
        rows(open_table(path))
    assert info.value.as_dict() == {
        "rule": "formula_error",
        "message": f"export.xlsx: cell Sheet1!C7 holds the Excel error {error}; "
        "fix the formula or its inputs and save the workbook again",
        "lines": [7],
        "sample": error,
    }


def test_xlsx_error_in_a_sheet_name_with_spaces_is_quoted(tmp_path):
    path = workbook(tmp_path, {"Meter data": [["A", "#REF!"]]})
    with pytest.raises(Rejected) as info:
        open_table(path)
    assert (info.value.rule, info.value.lines) == ("formula_error", [1])
    assert "cell 'Meter data'!B1 holds the Excel error #REF!" in info.value.message


def test_damaged_workbook_is_unreadable(tmp_path):
    path = write(tmp_path, zipped("xl/workbook.xml", "<not a workbook"), name="export.xlsx")
    with pytest.raises(Rejected) as info:
        open_table(path)
    assert info.value.rule == "unreadable"
    assert info.value.message.startswith(
        "export.xlsx looks like an .xlsx workbook but cannot be read"
    )


def test_zip_named_xlsx_without_a_workbook_is_binary(tmp_path):
    with pytest.raises(Rejected) as info:
        open_table(write(tmp_path, zipped("data.csv", "a"), name="export.xlsx"))
    assert info.value.rule == "binary_file"


def test_chunk_frames_are_plain_text(tmp_path):
    table, _ = read(tmp_path, "A,B\n1,\n")
    chunk = next(table.chunks())
    pd.testing.assert_frame_equal(chunk, pd.DataFrame({"A": ["1"], "B": [""]}, dtype="str"))


# --- bombs: files that would make the reader hold far more than their size ---------------------

MiB = 1024 * 1024
BUDGET = 256 * MiB
"""Address space a child may add to what it holds after importing and warming up the readers."""
OPEN_IN_A_BOX = r"""
import io, json, re, resource, sys
from pathlib import Path
import pandas as pd
from energy_assets.ingest.readers import open_table
from energy_assets.ingest.rejections import Rejected

path, budget = Path(sys.argv[1]), int(sys.argv[2])
pd.read_csv(io.StringIO("a,b\n1,2\n"), dtype=str)  # the libraries' own allocations first
held = int(re.search(r"VmSize:\s+(\d+) kB", Path("/proc/self/status").read_text())[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (held + budget, held + budget))
try:
    table = open_table(path)
    chunk = next(table.chunks(), None)
    print(json.dumps({"header": len(table.header), "chunk": list(getattr(chunk, "shape", ()))}))
except Rejected as rejected:
    print(json.dumps(rejected.as_dict()))
except MemoryError:
    print(json.dumps({"rule": "MemoryError: the reader tried to hold the bomb"}))
"""


def open_in_a_box(path) -> dict:
    """`open_table` and its first chunk in a child process whose memory is capped, so a reader
    that tries to hold a bomb fails with MemoryError instead of taking the machine."""
    done = subprocess.run(
        [sys.executable, "-c", OPEN_IN_A_BOX, str(path), str(BUDGET)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MALLOC_ARENA_MAX": "2"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def repeated(size: int, byte: bytes = b"A"):
    """`size` bytes of one byte, a MiB at a time."""
    for start in range(0, size, MiB):
        yield byte * min(MiB, size - start)


def bomb_workbook(path, part: str, prefix: bytes, suffix: bytes, size: int, patch=None):
    """A small workbook whose `part` holds `prefix`, `size` repeated bytes and `suffix`: deflate
    packs them about 1000:1. `patch(name, data)` may rewrite the other parts."""
    book = openpyxl.Workbook()
    book.active.append(["Start Time", "kW del"])
    book.active.append(["2024-01-01 00:00", 1.0])
    small = io.BytesIO()
    book.save(small)
    with (
        zipfile.ZipFile(small) as source,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target,
    ):
        for item in source.infolist():
            if item.filename != part:
                data = source.read(item)
                target.writestr(item, patch(item.filename, data) if patch else data)
        with target.open(part, "w", force_zip64=True) as out:
            out.write(prefix)
            for block in repeated(size):
                out.write(block)
            out.write(suffix)
    return path


SST = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
SST_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"


def with_shared_strings(name: str, data: bytes) -> bytes:
    """Register xl/sharedStrings.xml and point cell A2 at its first string."""
    if name == "[Content_Types].xml":
        part = f'<Override PartName="/xl/sharedStrings.xml" ContentType="{SST}"/>'
        return data.replace(b"</Types>", part.encode() + b"</Types>")
    if name == "xl/_rels/workbook.xml.rels":
        rel = f'<Relationship Type="{SST_REL}" Target="sharedStrings.xml" Id="rId99"/>'
        return data.replace(b"</Relationships>", rel.encode() + b"</Relationships>")
    if name == "xl/worksheets/sheet1.xml":
        return re.sub(rb'<c r="A2"[^>]*>.*?</c>', b'<c r="A2" t="s"><v>0</v></c>', data)
    return data


def test_workbook_with_a_huge_shared_string_is_a_bomb(tmp_path):
    size = 512 * MiB
    path = bomb_workbook(
        tmp_path / "bomb.xlsx",
        "xl/sharedStrings.xml",
        b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
        b' count="1" uniqueCount="1"><si><t>',
        b"</t></si></sst>",
        size,
        with_shared_strings,
    )
    assert path.stat().st_size < MiB
    outcome = open_in_a_box(path)
    assert (outcome["rule"], outcome["sample"]) == ("workbook_bomb", "xl/sharedStrings.xml")
    unpacked = zipfile.ZipFile(path).getinfo("xl/sharedStrings.xml").file_size
    assert unpacked > size
    assert f"the part xl/sharedStrings.xml unpacks to {unpacked:,} bytes" in outcome["message"]


def test_workbook_with_a_huge_cell_is_a_bomb(tmp_path):
    size = 512 * MiB
    sheet = b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    path = bomb_workbook(
        tmp_path / "bomb.xlsx",
        "xl/worksheets/sheet1.xml",
        sheet + b'<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>',
        b"</t></is></c></row></sheetData></worksheet>",
        size,
    )
    outcome = open_in_a_box(path)
    assert (outcome["rule"], outcome["sample"]) == ("workbook_bomb", "xl/worksheets/sheet1.xml")
    assert f"at most {WORKBOOK_RATIO} times its packed size" in outcome["message"]


def test_workbook_that_packs_like_meter_data_is_read(tmp_path):
    book = openpyxl.Workbook()
    book.active.append(["Start Time", "kW del", "kW rec"])
    for i in range(40_000):  # about 2.5 MB of sheet XML, as repetitive as meter data gets
        book.active.append([datetime(2024, 1, 1, i // 4 % 24, i % 4 * 15), 0, 0])
    book.save(tmp_path / "zeros.xlsx")
    assert open_in_a_box(tmp_path / "zeros.xlsx") == {"header": 3, "chunk": [40_000, 3]}


def test_header_longer_than_the_head_is_refused(tmp_path):
    header = ",".join(f"c{i}" for i in range(HEAD_BYTES // 4)) + "\n"
    assert len(header) > HEAD_BYTES
    assert rejection(tmp_path, "\n\n" + header + "1,2\n") == {
        "rule": "header_too_long",
        "message": f"M1001_2024-01.csv: the header (line 3) is longer than {HEAD_BYTES // 1024}"
        " KiB without a line break; no header of meter data is that long, so this is not a CSV"
        " export of meter data, or its line breaks were lost",
        "lines": [3],
        "sample": header[:200],
    }


def test_header_just_inside_the_head_is_read(tmp_path):
    names, size = [], 0  # as many as fit, with their commas and the line break
    while size + len(f"c{len(names)},") <= HEAD_BYTES:
        size += len(f"c{len(names)},")
        names.append(f"c{len(names)}")
    header = ",".join(names) + "\n"
    assert HEAD_BYTES - 8 < len(header) == size <= HEAD_BYTES
    table, records = read(tmp_path, header + "1\n")
    assert (len(table.header), records[0][1][:2]) == (len(names), ["1", ""])


def test_a_100_mb_header_is_refused_in_bounded_memory(tmp_path):
    path = tmp_path / "wide.csv"
    with path.open("w") as out:  # 100 MB of distinct column names, cut anywhere still distinct
        for start in range(0, 10_000_000, 1_000_000):
            out.write("".join(f"c{i:08d}," for i in range(start, start + 1_000_000)))
        out.write("last\n1,2\n")
    assert path.stat().st_size > 100_000_000
    outcome = open_in_a_box(path)
    path.unlink()  # pytest keeps the temporary folders of recent runs
    assert outcome["rule"] == "header_too_long"


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_line_longer_than_the_bound_is_refused_with_its_number(tmp_path, newline):
    long = "2024-01-01 00:45," + "9" * (LINE_BYTES - 16)
    lines = ["Start Time,kW del", "2024-01-01 00:00,1", "", "2024-01-01 00:30,2", long, "x,3"]
    path = write(tmp_path, newline.join(lines) + newline)
    with pytest.raises(Rejected) as info:
        rows(open_table(path))
    assert (info.value.rule, info.value.lines) == ("line_too_long", [5])
    assert info.value.sample == long[:200]
    assert info.value.message == (
        "M1001_2024-01.csv: line 5 is longer than 1 MiB without a line break; no record of"
        " meter data is that long, so the file is damaged or is not a meter export"
    )


def test_line_as_long_as_the_bound_is_read(tmp_path):
    value = "9" * (LINE_BYTES - len("2024-01-01 00:15,"))
    text = "Start Time,kW del\n2024-01-01 00:00,1\n2024-01-01 00:15," + value + "\nx,3\n"
    _, records = read(tmp_path, text)
    assert [len(values[1]) for _, values in records] == [1, len(value), 1]


def test_a_300_mib_line_is_refused_in_bounded_memory(tmp_path):
    path = tmp_path / "long.csv"
    with path.open("wb") as out:
        out.write(b"Start Time,kW del\n2024-01-01 00:00,1\n2024-01-01 00:15,")
        for block in repeated(300 * MiB, b"9"):
            out.write(block)
        out.write(b"\n")
    outcome = open_in_a_box(path)
    path.unlink()  # pytest keeps the temporary folders of recent runs
    assert (outcome["rule"], outcome["lines"]) == ("line_too_long", [3])


def test_a_wide_header_gets_chunks_of_fewer_rows(tmp_path):
    names = [f"c{i}" for i in range(10_000)]
    path = tmp_path / "wide.csv"
    path.write_text(",".join(["Start Time", *names]) + "\n" + "2024-01-01 00:00,1\n" * 200_000)
    assert open_in_a_box(path) == {"header": 10_001, "chunk": [CHUNK_CELLS // 10_001, 10_001]}
