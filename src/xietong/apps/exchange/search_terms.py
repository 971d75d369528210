"""Chinese search terms for the catalogue: a query is cut into words with jieba.

A plain substring match fails on the way people type: 户籍人口信息 finds nothing when
the entry is 户籍人口基本信息. The query is cut into words (jieba's precise mode), and
an entry matches when every word appears somewhere in it — name, summary, code or an
item name. Particles (的, 和 …) and punctuation are dropped; a code such as
``101001/000001`` stays one term.
"""

from __future__ import annotations

import logging
import re
import threading

STOP = {"的", "和", "与", "及", "或", "了", "在", "是", "等", "类"}
_CODE = re.compile(r"^[0-9A-Za-z/_.-]+$")
_lock = threading.Lock()
_ready = False


def _jieba():  # type: ignore[no-untyped-def]
    global _ready
    import jieba

    with _lock:
        if not _ready:
            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            _ready = True
    return jieba


def search_terms(text: str, limit: int = 8) -> list[str]:
    terms: list[str] = []
    for chunk in text.split():
        if _CODE.match(chunk):
            terms.append(chunk)
            continue
        words = [
            word.strip()
            for word in _jieba().cut(chunk)
            if word.strip() and word.strip() not in STOP and not re.fullmatch(r"\W+", word)
        ]
        terms.extend(words or ([] if chunk in STOP else [chunk]))  # "%" alone: literally
    return list(dict.fromkeys(terms))[:limit]
