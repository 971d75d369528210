"""Kernel Chinese search: jieba words for documents, query terms and LIKE conditions."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import jieba
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, or_, select
from sqlalchemy.engine import Connection

from xietong.kernel import search

_meta = MetaData()
_docs = Table(
    "docs",
    _meta,
    Column("id", Integer, primary_key=True),
    Column("title", String),
    Column("words", String),
)


@pytest.fixture()
def conn() -> Iterator[Connection]:
    engine = create_engine("sqlite://")
    _meta.create_all(engine)
    rows = [
        (1, "出生医学证明办理"),
        (2, "户籍人口基本信息"),
        (3, "100%_折扣 说明"),
        (4, "企业开办登记"),
    ]
    with engine.begin() as connection:
        connection.execute(
            _docs.insert(),
            [{"id": i, "title": t, "words": search.document([t, None])} for i, t in rows],
        )
        yield connection
    engine.dispose()


def _ids(conn: Connection, condition: object) -> list[int]:
    stmt = select(_docs.c.id).order_by(_docs.c.id)
    if condition is not None:
        stmt = stmt.where(condition)  # type: ignore[arg-type]
    return list(conn.scalars(stmt))


def test_document_words_use_search_mode_and_drop_punctuation() -> None:
    words = search.document_words("中华人民共和国（ABC）、人民")
    assert {"中华", "人民", "共和国", "中华人民共和国", "abc"} <= set(words)
    assert words.count("人民") == 1  # deduplicated
    assert not any(w in {"（", "）", "、"} for w in words)
    assert search.document_words(None) == []
    assert search.document(["出生", None, ""]) == " 出生 "


def test_query_terms_precise_mode_stop_words_and_codes() -> None:
    assert search.query_terms("户籍人口信息") == ["户籍", "人口", "信息"]
    assert search.query_terms("101001/000001 的") == ["101001/000001"]
    assert search.query_terms("的 和") == []
    assert search.query_terms("%") == ["%"]  # taken literally, not dropped
    assert search.query_terms(None) == []
    assert search.query_terms("户籍 户籍 人口", limit=1) == ["户籍"]


def test_contains_escapes_like_wildcards() -> None:
    assert search.contains("a%b_c\\d") == "%a\\%b\\_c\\\\d%"


def test_condition_every_query_word_in_the_document(conn: Connection) -> None:
    assert _ids(conn, search.condition(_docs.c.words, "医学证明")) == [1]
    assert _ids(conn, search.condition(_docs.c.words, "出生 户籍")) == []
    assert search.condition(_docs.c.words, " ，。 ") is None
    assert _ids(conn, search.condition(_docs.c.words, "100%")) == [3]


def test_all_terms_with_literal_wildcards(conn: Connection) -> None:
    def anywhere(pattern: str) -> object:
        return or_(
            _docs.c.title.like(pattern, escape=search.ESCAPE),
            _docs.c.words.like(pattern, escape=search.ESCAPE),
        )

    # "%" and "_" match themselves only, so a lone wildcard does not match every row
    assert _ids(conn, search.all_terms(["%"], anywhere)) == [3]  # type: ignore[arg-type]
    assert _ids(conn, search.all_terms(["_"], anywhere)) == [3]  # type: ignore[arg-type]
    assert _ids(conn, search.all_terms(["户籍", "信息"], anywhere)) == [2]  # type: ignore[arg-type]
    assert search.all_terms([], anywhere) is None  # type: ignore[arg-type]


def test_segmenter_loads_the_dictionary_once_across_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    def slow_initialize(*args: object, **kwargs: object) -> None:
        calls.append(1)
        time.sleep(0.05)  # widen the race a missing lock would lose

    monkeypatch.setattr(search, "_ready", False)
    monkeypatch.setattr(jieba, "initialize", slow_initialize)
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(search.segmenter())) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1]
    assert results == [jieba] * 8
