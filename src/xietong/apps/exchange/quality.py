"""Checking the provider's rows against the catalogue's declared items (数据质量).

Every row coming back through the gateway must carry each requested item, with a value
of the item's declared data type (or null). Lossless readings are accepted — a CSV cell
``"42"`` for an 整型 item, an ISO text for a date — and normalised, so every consumer
sees one representation; anything else (text where a number is declared, a missing
item, an impossible date) is a data-quality failure: the query is answered 502 and the
failure is logged and counted for the provider.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

_INTEGER = re.compile(r"^[+-]?\d+$")
_TRUE = {"true", "1", "是", "y", "yes"}
_FALSE = {"false", "0", "否", "n", "no"}


class _Wrong(ValueError):
    pass


def _string(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # a code stored as a number in a spreadsheet
    raise _Wrong


def _integer(value: Any) -> Any:
    if isinstance(value, bool):
        raise _Wrong
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        return int(value)
    raise _Wrong


def _decimal(value: Any) -> Any:
    if isinstance(value, bool):
        raise _Wrong
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):  # NaN or Infinity: no JSON number carries it
            raise _Wrong
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _Wrong
        return float(value)
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation as bad:
            raise _Wrong from bad
        if not number.is_finite():
            raise _Wrong
        return float(number)
    raise _Wrong


def _date(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10]).isoformat()
        except ValueError as bad:
            raise _Wrong from bad
    raise _Wrong


def _datetime(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip()).isoformat()
        except ValueError as bad:
            raise _Wrong from bad
    raise _Wrong


def _boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | str) and str(value).strip().lower() in _TRUE | _FALSE:
        return str(value).strip().lower() in _TRUE
    raise _Wrong


def _binary(value: Any) -> Any:
    if isinstance(value, str):
        return value  # base64 text, as the REST contract carries it
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode("ascii")
    raise _Wrong


READERS: dict[str, Callable[[Any], Any]] = {
    "string": _string,
    "integer": _integer,
    "decimal": _decimal,
    "date": _date,
    "datetime": _datetime,
    "boolean": _boolean,
    "binary": _binary,
}


@dataclass(frozen=True)
class QualityProblem:
    row: int
    item: str
    problem: str  # missing · wrong_type
    expected: str
    found: str


# One column of a page: the item's name, the provider's field it is read from, the
# item's declared type, and what is done to a value that passed (the grant's masking,
# given the value's text), or None.
Column = tuple[str, str, str, Callable[[str], str] | None]


def normalise(
    rows: list[dict[str, Any]], types: Mapping[str, str], limit: int = 20
) -> tuple[list[dict[str, Any]], list[QualityProblem]]:
    """Rows by item name with normalised values, and the problems (at most ``limit``)."""
    return shape(rows, [(item, item, data_type, None) for item, data_type in types.items()], limit)


def shape(
    rows: list[dict[str, Any]], columns: Sequence[Column], limit: int = 20
) -> tuple[list[dict[str, Any]], list[QualityProblem]]:
    """``normalise`` for the gateway, in one pass over the provider's rows: each item
    read from its provider field, checked and normalised, then masked — instead of a
    renamed copy, a normalised copy and a masked copy of every row. A text value of a
    text item is taken as it is (what ``_string`` would return)."""
    problems: list[QualityProblem] = []
    result: list[dict[str, Any]] = []
    specs = [
        (item, source, READERS[data_type], data_type, then)
        for item, source, data_type, then in columns
    ]
    for number, row in enumerate(rows):
        clean: dict[str, Any] = {}
        for item, source, reader, data_type, then in specs:
            if source not in row:
                problems.append(QualityProblem(number, item, "missing", data_type, "—"))
                continue
            value = row[source]
            if value is None:
                clean[item] = None
                continue
            if reader is not _string or value.__class__ is not str:
                try:
                    value = reader(value)
                except _Wrong:
                    found = type(value).__name__
                    problems.append(QualityProblem(number, item, "wrong_type", data_type, found))
                    continue
            clean[item] = value if then is None else then(str(value))
        result.append(clean)
        if len(problems) >= limit:
            break
    return result, problems
