"""Feature blocks: how a message becomes sparse TF-IDF columns.

A block is fitted (vocabulary and IDF) on labelled *and* unlabelled text, then frozen.
It is saved as its vocabulary (terms in column order) and IDF weights, and rebuilt at
load time as a scikit-learn ``TfidfVectorizer`` with that fixed vocabulary, so a saved
model holds no pickled code.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from xietong.kernel.search import segmenter

Field = Literal["all", "title", "text"]

_DIGITS = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")
# A jieba token is kept only if it has a letter, a digit or a CJK character.
_WORDLIKE = re.compile(r"[0-9a-z\u3400-\u9fff]")


def normalise(text: str) -> str:
    """NFKC (full-width → half-width), lower case, digit runs → one '0', no whitespace.

    Numbers (dates, amounts, house numbers) carry no category signal but make many
    distinct n-grams; collapsing them keeps the vocabulary for words.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = _DIGITS.sub("0", text)
    return _SPACE.sub("", text)


def message_field(message: dict[str, Any], field: Field) -> str:
    title = message.get("title") or ""
    text = message.get("text") or ""
    if field == "title":
        return normalise(title)
    if field == "text":
        return normalise(text)
    return normalise(f"{title}。{text}" if title else text)


def words(text: str) -> list[str]:
    """jieba tokens (precise mode, no HMM: faster and deterministic for unseen words)."""
    return [token for token in segmenter().lcut(text, HMM=False) if _WORDLIKE.search(token)]


@dataclass(frozen=True)
class BlockSpec:
    name: str
    analyzer: Literal["char", "word"]
    ngram: tuple[int, int]
    field: Field = "all"
    min_df: int = 2
    max_df: float = 1.0
    sublinear_tf: bool = True
    weight: float = 1.0  # scales the block's columns when blocks are stacked

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ngram"] = list(self.ngram)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BlockSpec:
        return cls(**{**data, "ngram": tuple(data["ngram"])})

    def vectorizer(self, vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
        common: dict[str, Any] = {
            "ngram_range": self.ngram,
            "sublinear_tf": self.sublinear_tf,
            "lowercase": False,  # normalise() already did it
            "dtype": np.float64,
        }
        if vocabulary is None:
            common.update(min_df=self.min_df, max_df=self.max_df)
        else:
            common["vocabulary"] = vocabulary
        if self.analyzer == "char":
            return TfidfVectorizer(analyzer="char", **common)
        return TfidfVectorizer(analyzer="word", tokenizer=words, token_pattern=None, **common)


class Block:
    """A fitted block: spec + vocabulary + IDF."""

    def __init__(self, spec: BlockSpec, terms: Sequence[str], idf: np.ndarray) -> None:
        self.spec = spec
        self.terms = list(terms)
        self.idf = np.asarray(idf, dtype=np.float64)
        self._index = {term: i for i, term in enumerate(self.terms)}
        # The very analyzer scikit-learn used in training (same n-grams, same tokens).
        self._analyze = spec.vectorizer().build_analyzer()

    @classmethod
    def fit(cls, spec: BlockSpec, messages: Iterable[dict[str, Any]]) -> Block:
        return cls.fit_transform(spec, messages)[0]

    @classmethod
    def fit_transform(
        cls, spec: BlockSpec, messages: Iterable[dict[str, Any]]
    ) -> tuple[Block, sparse.csr_matrix]:
        """Fit and return the messages' rows too (tokenising once: jieba is the cost)."""
        texts = [message_field(m, spec.field) for m in messages]
        vectorizer = spec.vectorizer()
        try:
            matrix = vectorizer.fit_transform(texts)
        except ValueError:
            # No term occurs often enough (e.g. no message has a title): an empty block.
            return cls(spec, [], np.zeros(0)), sparse.csr_matrix((len(texts), 0))
        # Column order = sorted terms (scikit-learn sorts the vocabulary): deterministic.
        terms = vectorizer.get_feature_names_out().tolist()
        if spec.weight != 1.0:
            matrix = matrix * spec.weight
        return cls(spec, terms, vectorizer.idf_), sparse.csr_matrix(matrix)

    @property
    def width(self) -> int:
        return len(self.terms)

    def transform(self, messages: Sequence[dict[str, Any]]) -> sparse.csr_matrix:
        """TF-IDF rows exactly as ``TfidfVectorizer.transform`` computes them.

        Done by hand because scikit-learn's per-call validation costs more than the
        arithmetic for one message; ``test_block_transform_matches_scikit_learn`` checks
        that the numbers agree.
        """
        index, analyze = self._index, self._analyze
        indptr, indices, values = [0], [], []
        for message in messages:
            counts: dict[int, int] = {}
            for term in analyze(message_field(message, self.spec.field)):
                column = index.get(term)
                if column is not None:
                    counts[column] = counts.get(column, 0) + 1
            columns = sorted(counts)
            row = np.array([counts[c] for c in columns], dtype=np.float64)
            if self.spec.sublinear_tf:
                row = np.log(row) + 1.0
            row *= self.idf[columns]
            norm = float(np.sqrt(row @ row))
            if norm > 0:
                row /= norm
            indices.extend(columns)
            values.append(row * self.spec.weight)
            indptr.append(len(indices))
        data = np.concatenate(values) if values else np.zeros(0)
        return sparse.csr_matrix(
            (data, np.asarray(indices, dtype=np.int64), np.asarray(indptr, dtype=np.int64)),
            shape=(len(messages), self.width),
        )

    def reference_transform(self, messages: Sequence[dict[str, Any]]) -> sparse.csr_matrix:
        """scikit-learn's own transform with this block's vocabulary and IDF (for tests)."""
        vectorizer = self.spec.vectorizer(self._index)
        vectorizer.idf_ = self.idf
        texts = [message_field(m, self.spec.field) for m in messages]
        return sparse.csr_matrix(vectorizer.transform(texts) * self.spec.weight)


def stack(blocks: Sequence[Block], messages: Sequence[dict[str, Any]]) -> sparse.csr_matrix:
    return sparse.hstack([block.transform(messages) for block in blocks], format="csr")
