"""Chinese search with jieba, the same on SQLite and PostgreSQL.

Neither store segments Chinese, so apps segment in Python and match words with ``LIKE``
(see docs/search.md and ADR 0040, 0013). Two ways of cutting text:

- **document words** (:func:`document_words`, :func:`document`): jieba's search mode,
  which also emits the shorter words inside long ones (出生医学证明 → 出生 / 医学 /
  证明 / 出生医学证明), lower-cased. An app stores them space-separated in a column
  and matches a query cut the same way with :func:`condition`.
- **query terms** (:func:`query_terms`): jieba's precise mode over a query typed by a
  person, matched as substrings of the app's own columns (:func:`contains`,
  :func:`all_terms`). Particles (的, 和 …) and punctuation are dropped; a code such as
  ``101001/000001`` stays one term.

jieba loads its dictionary (≈1 s) on first use; :func:`segmenter` does that once,
under a lock, so concurrent first requests do not load it twice.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from types import ModuleType

from sqlalchemy import and_
from sqlalchemy.sql.elements import ColumnElement

MAX_QUERY_WORDS = 10
QUERY_TERMS = 8
STOP = frozenset({"的", "和", "与", "及", "或", "了", "在", "是", "等", "类"})
# The escape character of every LIKE pattern made here: pass it as ``escape=ESCAPE``.
ESCAPE = "\\"

_SKIP = set(" \t\r\n,，。.;；:：、/()（）《》【】[]-—")
_CODE = re.compile(r"^[0-9A-Za-z/_.-]+$")
_PUNCTUATION = re.compile(r"\W+")
_lock = threading.Lock()
_ready = False


def segmenter() -> ModuleType:
    """The jieba module, its dictionary loaded (once, thread-safe) and its log quiet."""
    global _ready
    import jieba

    if not _ready:
        with _lock:
            if not _ready:
                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _ready = True
    return jieba


def document_words(text: str | None) -> list[str]:
    """Search-mode words of ``text``, lower-cased, deduplicated in order of appearance."""
    seen: dict[str, None] = {}
    for word in segmenter().cut_for_search(text or ""):
        word = word.strip().lower()
        if word and not all(ch in _SKIP for ch in word):
            seen.setdefault(word, None)
    return list(seen)


def document(parts: Iterable[str | None]) -> str:
    """The words column of a row made of these texts: `` w1 w2 … `` (padded by spaces)."""
    return " " + " ".join(document_words(" ".join(p for p in parts if p))) + " "


def query_terms(text: str | None, limit: int = QUERY_TERMS) -> list[str]:
    """Precise-mode terms of a typed query: stop words dropped, codes kept whole."""
    terms: list[str] = []
    for chunk in (text or "").split():
        if _CODE.match(chunk):
            terms.append(chunk)
            continue
        words = [
            word.strip()
            for word in segmenter().cut(chunk)
            if word.strip() and word.strip() not in STOP and not _PUNCTUATION.fullmatch(word)
        ]
        terms.extend(words or ([] if chunk in STOP else [chunk]))  # "%" alone: literally
    return list(dict.fromkeys(terms))[:limit]


def contains(value: str) -> str:
    """A LIKE pattern matching ``value`` anywhere, its ``%``/``_``/``\\`` taken literally."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def all_terms(
    terms: Iterable[str], match: Callable[[str], ColumnElement[bool]]
) -> ColumnElement[bool] | None:
    """Every term matches: ``match(contains(term))`` for each; None without terms."""
    conditions = [match(contains(term)) for term in terms]
    return and_(*conditions) if conditions else None


def condition(column: ColumnElement[str], query: str | None) -> ColumnElement[bool] | None:
    """Every document word of ``query`` occurs in the words ``column``; None if empty."""
    return all_terms(
        document_words(query)[:MAX_QUERY_WORDS],
        lambda pattern: column.like(pattern, escape=ESCAPE),
    )
