"""Chinese full-text search with jieba, the same on SQLite and PostgreSQL.

Each searchable row keeps ``search_text``: its words segmented by jieba's search mode
(which also emits the shorter words inside long ones: 出生医学证明 → 出生 / 医学 / 证明 /
出生医学证明), lower-cased and space-separated. A query is segmented the same way and
every word must occur. A catalogue holds thousands of matters, not millions, so a
LIKE per word over an indexed-by-status table answers in milliseconds; see ADR 0040.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import jieba
from sqlalchemy import and_
from sqlalchemy.sql.elements import ColumnElement

jieba.setLogLevel(logging.WARNING)
MAX_QUERY_WORDS = 10
_SKIP = set(" \t\r\n,，。.;；:：、/()（）《》【】[]-—")


def words(text: str) -> list[str]:
    """Search words of ``text`` (deduplicated, in order of appearance)."""
    seen: dict[str, None] = {}
    for word in jieba.cut_for_search(text or ""):
        word = word.strip().lower()
        if word and not all(ch in _SKIP for ch in word):
            seen.setdefault(word, None)
    return list(seen)


def document(parts: Iterable[str | None]) -> str:
    """The ``search_text`` of a row made of these texts."""
    return " " + " ".join(words(" ".join(p for p in parts if p))) + " "


def condition(column: ColumnElement[str], query: str) -> ColumnElement[bool] | None:
    """Every word of ``query`` occurs in ``column``; None for an empty query."""
    found = words(query)[:MAX_QUERY_WORDS]
    if not found:
        return None
    escaped = [w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for w in found]
    return and_(*(column.like(f"%{w}%", escape="\\") for w in escaped))
