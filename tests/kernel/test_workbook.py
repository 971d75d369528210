"""Kernel xlsx reading and writing shared by the org, exchange and services imports."""

from __future__ import annotations

import io
from datetime import date, datetime
from typing import Any

import openpyxl
import pytest

from tests.kernel.test_org_import import workbook as _xlsx
from xietong.kernel import workbook
from xietong.kernel.errors import InvalidInput
from xietong.kernel.workbook import Column, SheetSpec

SPEC = SheetSpec(
    "people",
    "人员",
    (
        Column("code", "编码", True, ("人员编码",)),
        Column("name", "姓名", True),
        Column("note", "备注"),
    ),
)


def _read(data: bytes, max_rows: int = workbook.MAX_ROWS) -> dict[str, workbook.Sheet | None]:
    return workbook.read_sheets(data, [SPEC], max_rows=max_rows)


def test_headers_aliases_first_wins_and_blank_rows() -> None:
    data = _xlsx(
        {
            " people ": [
                [" 人员编码 ", "姓名", "姓名", "其他"],
                [1001.0, " 张三 ", "ignored", "x"],
                [None, None, None, "only an unknown column"],
                ["", "", "", ""],
                ["1003", "王五"],
            ]
        }
    )
    sheet = _read(data)["people"]
    assert sheet is not None
    assert sheet.headers == {"code": "人员编码", "name": "姓名"}
    assert sheet.missing == []
    assert [(row.number, row.values) for row in sheet.rows] == [
        (2, {"code": "1001", "name": "张三"}),
        (5, {"code": "1003", "name": "王五"}),
    ]


def test_missing_columns_are_listed_and_absent_sheets_are_none() -> None:
    sheet = _read(_xlsx({"人员": [["姓名", "备注"], ["张三", ""]]}))["people"]
    assert sheet is not None
    assert [column.key for column in sheet.missing] == ["code"]
    assert _read(_xlsx({"其他": [["编码"]]})) == {"people": None}


def test_cell_text() -> None:
    assert workbook.cell_text(None) == ""
    assert workbook.cell_text(13912345678.0) == "13912345678"
    assert workbook.cell_text(1.5) == "1.5"
    assert workbook.cell_text(True) == "True"
    assert workbook.cell_text(date(2026, 1, 2)) == "2026-01-02"
    assert workbook.cell_text(datetime(2026, 1, 2, 3, 4)) == "2026-01-02T03:04:00"
    assert workbook.cell_text("  a ") == "a"


def test_bad_files_are_refused_with_codes() -> None:
    with pytest.raises(InvalidInput) as broken:
        _read(b"PK\x03\x04 not really a zip")
    assert broken.value.code == "invalid_xlsx"
    with pytest.raises(InvalidInput) as big:
        workbook.open_workbook(b"0" * 11, lambda book: book, max_bytes=10)
    assert big.value.code == "file_too_large"
    rows = [["编码", "姓名"], *([str(n), "某"] for n in range(4))]
    with pytest.raises(InvalidInput) as many:
        _read(_xlsx({"人员": rows}), max_rows=3)
    assert many.value.code == "too_many_rows"
    assert len(_read(_xlsx({"人员": rows}), max_rows=4)["people"].rows) == 4  # type: ignore[union-attr]


def test_errors_raised_while_reading_pass_through() -> None:
    def read(book: Any) -> None:
        raise InvalidInput("坏", "bad", code="own_code")

    with pytest.raises(InvalidInput) as own:
        workbook.open_workbook(_xlsx({"人员": [["编码"]]}), read)
    assert own.value.code == "own_code"


def test_write_workbook_round_trip_keeps_formulas_as_text() -> None:
    data = workbook.write_workbook(
        [("人员", [SPEC.header(), ["=1+1", "张三", 3]]), ("说明", [["列", "说明"]])]
    )
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["人员", "说明"]
    assert book["人员"]["A2"].value == "=1+1"
    assert book["人员"]["A2"].data_type == "s"  # text, not a formula
    sheet = _read(data)["people"]
    assert sheet is not None
    assert sheet.rows[0].values == {"code": "=1+1", "name": "张三", "note": "3"}
