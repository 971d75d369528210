"""Reading and writing xlsx uploads: the part every workbook import shares.

Administrators and data offices keep lists in spreadsheets (the organisation, the
resource catalogue, the matter catalogue). Each importer owns its layout — a
:class:`SheetSpec` per sheet, Chinese headers first, English keys and aliases accepted —
and this module turns an upload into plain rows of strings under the same rules:

- the file is refused above :data:`MAX_BYTES` (``file_too_large``) and opened with
  openpyxl in read-only mode; whatever a malformed file makes openpyxl or the XML
  parser raise becomes ``invalid_xlsx``;
- headers are matched after trimming, the first column wins when a header repeats, and
  required columns without a header are listed, not raised, so an importer can report
  them with the rows' errors (:class:`RowError`);
- cells read back as text (:func:`cell_text`), blank rows are skipped, and a sheet with
  more than ``max_rows`` rows is refused (``too_many_rows``).

:func:`write_workbook` writes sheets back; text starting with "=" stays text, so a
value typed by a user never becomes a formula in someone else's spreadsheet.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import openpyxl
from openpyxl.cell import WriteOnlyCell
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from xietong.kernel.errors import InvalidInput, XietongError

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 50_000

T = TypeVar("T")


@dataclass(frozen=True)
class Column:
    key: str  # the field it fills; also accepted as a header
    zh: str
    required: bool = False
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class SheetSpec:
    key: str  # also accepted as the sheet's name
    zh: str
    columns: tuple[Column, ...]

    def find(self, header: str) -> Column | None:
        for column in self.columns:
            if header in (column.zh, column.key, *column.aliases):
                return column
        return None

    def column(self, key: str) -> Column:
        return next(column for column in self.columns if column.key == key)

    def header(self) -> list[str]:
        return [column.zh for column in self.columns]


@dataclass(frozen=True)
class Row:
    number: int  # as Excel shows it: the header is row 1
    values: dict[str, str]  # column key -> cleaned text ("" when blank)


@dataclass
class Sheet:
    spec: SheetSpec
    headers: dict[str, str]  # column key -> header text as written in the file
    rows: list[Row]
    missing: list[Column]  # required columns without a header


@dataclass(frozen=True)
class RowError:
    """One problem of an import, where a person finds it in the spreadsheet."""

    sheet: str
    row: int  # 1-based, as Excel shows it (the header is row 1)
    column: str
    message_zh: str
    message_en: str


def cell_text(value: Any) -> str:
    """Cells typed as numbers (codes, phone numbers, passwords) read back as digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


def open_workbook(data: bytes, read: Callable[[Any], T], *, max_bytes: int = MAX_BYTES) -> T:
    """``read(book)`` over the workbook in ``data``; a broken file raises ``invalid_xlsx``.

    ``read`` must do all its reading inside the call: read-only parsing is lazy, so a
    malformed file fails while rows are read, and only then can it be reported as such.
    """
    if len(data) > max_bytes:
        mb = max_bytes // (1024 * 1024)
        raise InvalidInput(
            f"文件过大（最大 {mb} MB）", f"File too large ({mb} MB at most)", code="file_too_large"
        )
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            return read(book)
        finally:
            book.close()
    except XietongError:
        raise
    except Exception as bad:
        raise InvalidInput(
            "文件不是有效的 xlsx 工作簿",
            "The file is not a valid xlsx workbook",
            code="invalid_xlsx",
        ) from bad


def read_sheet(book: Any, spec: SheetSpec, *, max_rows: int = MAX_ROWS) -> Sheet | None:
    """The sheet named ``spec.zh`` or ``spec.key`` as rows of text; None when absent."""
    name = next((n for n in book.sheetnames if n.strip() in (spec.zh, spec.key)), None)
    if name is None:
        return None
    sheet = book[name]
    sheet.reset_dimensions()  # some writers store wrong dimensions; read what is there
    rows = sheet.iter_rows(min_row=1, values_only=True)
    positions: dict[str, int] = {}
    headers: dict[str, str] = {}
    for index, value in enumerate(next(rows, ())):
        text = cell_text(value)
        column = spec.find(text)
        if column is not None and column.key not in positions:
            positions[column.key] = index
            headers[column.key] = text
    missing = [column for column in spec.columns if column.required and column.key not in positions]
    parsed: list[Row] = []
    for number, values in enumerate(rows, start=2):
        if number > max_rows + 1:
            raise InvalidInput(
                f"工作表“{spec.zh}”超过 {max_rows} 行",
                f"Sheet {spec.zh} has more than {max_rows} rows",
                code="too_many_rows",
            )
        cells = {
            key: cell_text(values[index]) if index < len(values) else ""
            for key, index in positions.items()
        }
        if any(cells.values()):
            parsed.append(Row(number, cells))
    return Sheet(spec, headers, parsed, missing)


def read_sheets(
    data: bytes, specs: Sequence[SheetSpec], *, max_rows: int = MAX_ROWS
) -> dict[str, Sheet | None]:
    """Every spec's sheet by spec key (None when the workbook lacks it)."""
    return open_workbook(
        data, lambda book: {spec.key: read_sheet(book, spec, max_rows=max_rows) for spec in specs}
    )


def _cell(sheet: WriteOnlyWorksheet, value: Any) -> Any:
    if isinstance(value, str) and value.startswith("="):
        cell = WriteOnlyCell(sheet, value=value)
        cell.data_type = "s"
        return cell
    return value


def write_workbook(sheets: Iterable[tuple[str, Iterable[Sequence[Any]]]]) -> bytes:
    """An xlsx file with these sheets: (title, rows), the header being the first row."""
    book = openpyxl.Workbook(write_only=True)
    for title, rows in sheets:
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append([_cell(sheet, value) for value in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
