"""Formats read back with real readers: csv, openpyxl, json; formula injection neutralised (OWASP)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import openpyxl

from exports.formats import csv_cell_escape, iso_instant, write_csv, write_csv_blocks, write_jsonl, write_xlsx

COLUMNS = (("name", "text"), ("price", "decimal"), ("stock", "int"), ("active", "bool"), ("at", "datetime"),
           ("tags", "json"))  # fmt: skip
AT = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
ROWS = [
    ("plain", Decimal("9.50"), 3, True, AT, ["a"]),
    ('comma, "quote"\nnewline', Decimal("0.01"), 0, False, None, None),
    ('=HYPERLINK("http://evil")', Decimal("1"), -1, None, AT, {"k": "v"}),
    ("ünïcødé ✓", None, None, True, AT, []),
]


def test_csv_is_rfc4180_with_crlf_and_reads_back():
    out = io.BytesIO()
    assert write_csv(columns=COLUMNS, rows=iter(ROWS), out=out) == 4
    data = out.getvalue()
    assert data.startswith(b"name,price,stock,active,at,tags\r\n")
    assert not data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert rows[1] == ["plain", "9.50", "3", "true", "2026-03-01T12:30:00+00:00", '["a"]']
    assert rows[2] == ['comma, "quote"\nnewline', "0.01", "0", "false", "", ""]
    assert rows[3][0] == '\'=HYPERLINK("http://evil")'
    assert rows[3][2] == "-1"  # numbers are typed values, not text a user typed: left alone
    assert rows[4][:3] == ["ünïcødé ✓", "", ""]


def test_csv_bom_for_spreadsheets():
    out = io.BytesIO()
    write_csv(columns=COLUMNS, rows=iter(ROWS[:1]), out=out, bom=True)
    assert out.getvalue().startswith(b"\xef\xbb\xbfname,")


def test_every_formula_trigger_is_escaped_and_nothing_else():
    for trigger in ("=", "+", "-", "@", "\t", "\r"):
        assert csv_cell_escape(f"{trigger}1+1") == f"'{trigger}1+1"
    for safe in ("1+1", "a=b", "", " =1", "'quoted"):
        assert csv_cell_escape(safe) == safe


def test_jsonl_parses_back_with_types():
    out = io.BytesIO()
    assert write_jsonl(columns=COLUMNS, rows=iter(ROWS), out=out) == 4
    lines = [json.loads(line) for line in out.getvalue().decode().splitlines()]
    assert lines[0] == {"name": "plain", "price": "9.50", "stock": 3, "active": True,
                        "at": "2026-03-01T12:30:00+00:00", "tags": ["a"]}  # fmt: skip
    assert lines[2]["name"] == '=HYPERLINK("http://evil")'  # not a spreadsheet format: the value as it is
    assert lines[2]["tags"] == {"k": "v"}
    assert lines[1]["at"] is None


def test_xlsx_opens_with_openpyxl_and_keeps_text_as_text():
    out = io.BytesIO()
    counted = []
    assert write_xlsx(columns=COLUMNS, rows=iter(ROWS), out=out, on_rows=counted.append) == 4
    sheet = openpyxl.load_workbook(io.BytesIO(out.getvalue()), read_only=True).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ("name", "price", "stock", "active", "at", "tags")
    assert rows[1] == ("plain", 9.5, 3, True, "2026-03-01T12:30:00+00:00", '["a"]')
    assert counted == [4]
    cell = openpyxl.load_workbook(io.BytesIO(out.getvalue())).active["A4"]
    assert (cell.value, cell.data_type) == ('=HYPERLINK("http://evil")', "s")  # a string cell, never a formula


def test_copy_blocks_get_crlf_record_ends_and_keep_newlines_inside_fields():
    # One block per record, as PostgreSQL sends COPY rows; a quoted field may hold a newline.
    blocks = [b"name,n\n", b'"multi\nline",1\n', b"plain,2\n", memoryview(b'"a ""q""",3\n')]
    out = io.BytesIO()
    assert write_csv_blocks(blocks=iter(blocks), out=out, bom=True) == 3
    assert out.getvalue() == b'\xef\xbb\xbfname,n\r\n"multi\nline",1\r\nplain,2\r\n"a ""q""",3\r\n'
    assert list(csv.reader(io.StringIO(out.getvalue().decode("utf-8-sig"), newline="")))[1] == ["multi\nline", "1"]


def test_instants_are_utc_rfc3339_with_only_significant_fraction_digits_whatever_their_zone():
    from datetime import date, timedelta, timezone

    berlin = datetime(2026, 3, 1, 13, 30, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    assert iso_instant(berlin) == "2026-03-01T12:30:00.000005+00:00"
    expected = {0: "2026-03-01T12:30:00+00:00", 100000: "2026-03-01T12:30:00.1+00:00",
                120000: "2026-03-01T12:30:00.12+00:00", 123000: "2026-03-01T12:30:00.123+00:00",
                123400: "2026-03-01T12:30:00.1234+00:00", 123450: "2026-03-01T12:30:00.12345+00:00",
                123456: "2026-03-01T12:30:00.123456+00:00", 10: "2026-03-01T12:30:00.00001+00:00"}  # fmt: skip
    for microsecond, text in expected.items():
        instant = AT.replace(microsecond=microsecond)
        assert iso_instant(instant) == text
        assert datetime.fromisoformat(text) == instant  # Python reads it back, offset included
    assert iso_instant(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00+00:00"
    assert iso_instant(date(2026, 3, 1)) == "2026-03-01"  # dates stay dates


def test_copy_blocks_batches_with_and_without_newlines_in_fields_read_the_same():
    # A batch with one LF per record is converted in one go; one with a newline inside a field record by record.
    blocks = [b"h\n"] + [b"%d,x\n" % n for n in range(2500)]
    blocks[1500] = b'1499,"two\nlines"\n'
    out = io.BytesIO()
    counted: list[int] = []
    assert write_csv_blocks(blocks=iter(blocks), out=out, on_rows=counted.append) == 2500
    assert out.getvalue() == b"".join(block[:-1] + b"\r\n" for block in blocks)
    assert counted == [999, 1999]
