"""Chinese text for similarity: jieba tokens, TF-IDF vectors and cosine similarity.

Duplicate detection, hotspots, reply suggestions and FAQ search all compare short
Chinese texts. jieba segments them into words (``cut_for_search`` also yields the
shorter words inside long ones, so 物业管理费 meets 物业费); scikit-learn's
``TfidfVectorizer`` weights them, and cosine similarity compares the vectors.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity

from xietong.kernel.search import segmenter

# Words that carry no topic in citizens' messages (politeness, the letter's frame).
_STOPWORD_TEXT = """的 了 是 在 我 我们 你 你们 他 她 它 们 和 与 及 或 也 都 就 还 又
    被 把 对 从 向 给 让
    这 那 这个 那个 一个 一些 有 没有 不 没 很 非常 请 请问 您好 你好 谢谢 感谢 希望 能否 能 可以
    是否 怎么 如何 什么 为什么 哪里 问题 情况 反映 相关 部门 领导 政府 市民 本人 我家 现在 目前
    已经 一直 至今 多次 今年 去年 日 月 年 号 时 后 前 上 下 中 里 等
    啊 吧 呢 吗 呀 哦 嗯"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_KEEP = re.compile(r"[\u4e00-\u9fffA-Za-z0-9]")


@lru_cache(maxsize=4096)
def _tokens(text: str) -> tuple[str, ...]:
    return tuple(
        word
        for word in segmenter().cut_for_search(text)
        if len(word) > 1 and word not in STOPWORDS and _KEEP.search(word) and not word.isdigit()
    )


def tokens(text: str) -> list[str]:
    """The topic words of ``text`` (two characters or more, stopwords removed)."""
    return list(_tokens(text or ""))


def _vectorizer() -> TfidfVectorizer:
    return TfidfVectorizer(analyzer=tokens, sublinear_tf=True, norm="l2", dtype=np.float32)


def similarity_matrix(queries: Sequence[str], corpus: Sequence[str]) -> list[list[float]]:
    """Cosine similarity of each query to each corpus text (TF-IDF fitted on both)."""
    if not queries or not corpus:
        return [[] for _ in queries]
    vectorizer = _vectorizer()
    try:
        matrix = vectorizer.fit_transform([*corpus, *queries])
    except ValueError:  # every text was stopwords only: nothing to compare
        return [[0.0] * len(corpus) for _ in queries]
    scores = cosine_similarity(matrix[len(corpus) :], matrix[: len(corpus)])
    return [[float(value) for value in row] for row in scores]


def most_similar(
    query: str, corpus: Sequence[str], *, limit: int = 5, minimum: float = 0.0
) -> list[tuple[int, float]]:
    """(index, score) of the corpus texts closest to ``query``, best first."""
    row = similarity_matrix([query], corpus)[0]
    ranked = sorted(enumerate(row), key=lambda pair: -pair[1])
    return [(index, score) for index, score in ranked[:limit] if score > minimum]
