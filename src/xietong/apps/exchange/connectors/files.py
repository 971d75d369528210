"""File connector: a CSV or XLSX file a provider drops in the platform's exchange folder.

Files are read as streams — ``csv`` row by row, ``openpyxl`` in read-only mode — and
reading stops once the page (plus one row, for the has-more flag) is full, so a large
file is never loaded whole. The first row holds the field names. Only files inside the
exchange folder (``<data dir>/exchange-files``) can be named: a path that resolves
anywhere else (``../``, a symlink out) is refused, so a connector cannot be made to
read the platform's keys or any other file on the server.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

from xietong.apps.exchange.connectors.base import (
    FetchRequest,
    FetchResult,
    ProviderError,
    ProviderUnavailable,
    page_of,
)
from xietong.kernel.errors import InvalidInput

SUFFIXES = {".csv", ".xlsx"}


def files_root(data_dir: Path) -> Path:
    return (data_dir / "exchange-files").resolve()


def checked_path(root: Path, name: str) -> Path:
    """``name`` inside ``root``, or InvalidInput."""
    path = (root / name).resolve()
    if not path.is_relative_to(root) or path.suffix.lower() not in SUFFIXES:
        raise InvalidInput(
            "文件须位于交换文件目录内，且为 .csv 或 .xlsx",
            "The file must be a .csv or .xlsx inside the exchange files folder",
            code="invalid_file_path",
            details={"root": str(root)},
        )
    return path


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return (
            value.isoformat() if value.time() != datetime.min.time() else value.date().isoformat()
        )
    if isinstance(value, date):
        return value.isoformat()
    return value


class FileConnector:
    def __init__(self, path: Path, *, sheet: str | None = None) -> None:
        self.path = path
        self.sheet = sheet

    def _records(self) -> Iterator[dict[str, Any]]:
        if not self.path.is_file():
            raise ProviderUnavailable(
                f"文件不存在：{self.path.name}", f"File not found: {self.path.name}"
            )
        if self.path.suffix.lower() == ".csv":
            with self.path.open(encoding="utf-8-sig", newline="") as handle:
                yield from csv.DictReader(handle)
            return
        from openpyxl import load_workbook

        book = load_workbook(self.path, read_only=True, data_only=True)
        try:
            sheet = book[self.sheet] if self.sheet else book.worksheets[0]
            rows = sheet.iter_rows(values_only=True)
            header = [str(name).strip() if name is not None else "" for name in next(rows, ())]
            for values in rows:
                if all(value is None for value in values):
                    continue
                yield {name: _cell(value) for name, value in zip(header, values, strict=False)}
        except KeyError as missing:
            raise ProviderError(
                f"工作簿中没有工作表：{self.sheet}", f"No sheet {self.sheet} in the workbook"
            ) from missing
        finally:
            book.close()

    def columns(self) -> list[str]:
        for record in self._records():
            return list(record)
        return []

    def fetch(self, request: FetchRequest) -> FetchResult:
        wanted = request.limit + 1
        skipped = 0
        rows: list[dict[str, Any]] = []
        checked = False
        for record in self._records():
            if not checked:
                needed = (*request.fields, *request.filters, *(request.after or ())[:1])
                missing = [name for name in needed if name not in record]
                if missing:
                    raise ProviderError(
                        f"文件中没有字段：{', '.join(missing)}",
                        f"The file has no column {', '.join(missing)}",
                    )
                checked = True
            # csv gives text: compare filters as text so 1 and "1" match alike
            if any(str(record.get(k)) != str(v) for k, v in request.filters.items()):
                continue
            if request.after is not None and not str(record.get(request.after[0])) > str(
                request.after[1]
            ):
                continue
            if skipped < request.offset:
                skipped += 1
                continue
            rows.append({name: record.get(name) for name in request.fields})
            if len(rows) >= wanted:
                break
        return page_of(rows, request.limit)

    def close(self) -> None:
        pass
