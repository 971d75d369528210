"""Experiments on the hotline category model that were tried and not adopted (ADR 0062).

    python bench/hotline_experiments.py [--data DIR] [--only NAME ...] [--json]

Protocol — the one the model's own training reports (``train_model``'s manifest ``cv``):
stratified 5-fold cross-validation inside ``train.csv`` (seed 0, the folds of
``bench/hotline.py``); the feature blocks (vocabulary, IDF) and the word vectors are
fitted once on all labelled and unlabelled text, which uses no label; every head is
trained on the training folds only (pseudo-labels and weak labels included: they come
from a model of the training folds, and unlabelled messages whose text is also in
train.csv are left out); the heads' out-of-fold scores are stacked by a logistic
regression that is itself cross-validated; "auto" is the share of messages at or above
the confidence that keeps 97% precision on the pooled out-of-fold predictions.

Experiments (``--only``): ``base`` (the adopted model), ``w2v`` (word2vec trained here on
all 12,913 texts, IDF-weighted mean vectors, a logistic-regression head), ``weak``
(replies.csv's answering department mapped to a category as a weak label),
``weak-agree`` (only the weak labels the fold's SVM agrees with), ``self`` (self-training
on the 20% most confident unlabelled messages), ``combiners`` (gradient-boosted
combiner; auto-dispatch ranked by a correctness model), ``knn`` (a cosine k-NN head),
``views`` (extra heads on the title alone, and on the message without the title block),
``min-df`` (the same model over terms seen in at least 3 or 5 texts: a smaller file).
``w2v`` needs gensim (``pip install gensim``; its vectors vary slightly from run to
run unless PYTHONHASHSEED is fixed), the others only the project's own dependencies.
All of them take 30–60 minutes of one core.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import normalize
from threadpoolctl import threadpool_limits

from xietong.apps.hotline.classifier import read_messages
from xietong.apps.hotline.classifier.demo import shared_messages_dir
from xietong.apps.hotline.classifier.features import Block, message_field, words
from xietong.apps.hotline.classifier.model import softmax, standardise
from xietong.apps.hotline.classifier.threshold import select_threshold
from xietong.apps.hotline.classifier.training import (
    DEFAULT_BLOCKS,
    DEFAULT_HEADS,
    HeadSpec,
    _fit_combiner,
    _fit_head,
)

SEED, FOLDS, TARGET = 0, 5, 0.97

# The answering department named in a reply → the category it handles. Domain knowledge
# written for this experiment, not fitted: on the 41 replies whose message is also in
# train.csv it is right 34 times (83%) — below the model's own accuracy.
DEPARTMENTS = {
    "教育文体": ["教育局", "教育厅", "教育体育局", "教体局", "体育局", "教育部门", "招生"],
    "劳动和社会保障": [
        "人力资源和社会保障",
        "人社局",
        "人社厅",
        "人社部门",
        "劳动监察",
        "社保局",
        "社会保险",
    ],
    "卫生计生": ["卫生健康委", "卫健委", "卫生局", "卫计委", "卫生和计划生育", "卫生健康局"],
    "交通运输": ["交通运输局", "交通运输厅", "交通局", "交警", "运管", "公交公司", "交通部门"],
    "环境保护": ["环保局", "生态环境", "环境保护局", "环保部门"],
    "城乡建设": [
        "住建局",
        "住房和城乡建设",
        "城乡规划",
        "规划局",
        "城管",
        "住房保障",
        "自然资源",
        "国土",
        "不动产",
        "城乡建设局",
        "房产局",
    ],
    "商贸旅游": ["商务局", "市场监督管理", "市场监管", "工商局", "旅游局", "物价局", "文旅"],
}
_DEPARTMENT = re.compile("|".join(re.escape(w) for ws in DEPARTMENTS.values() for w in ws))
_CATEGORY_OF = {w: c for c, ws in DEPARTMENTS.items() for w in ws}


def weak_label(reply: str) -> str | None:
    """The category of the first department the reply's opening names, if any."""
    found = _DEPARTMENT.search(reply[:400])
    return _CATEGORY_OF[found.group(0)] if found else None


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Lab:
    def __init__(self, directory: Path) -> None:
        self.train = read_messages(directory / "train.csv", labelled=True)
        self.unlabelled = [
            row
            for name in ("hot-issues.csv", "replies.csv")
            for row in read_messages(directory / name, labelled=False)
        ]
        csv.field_size_limit(16 * 1024 * 1024)
        with (directory / "replies.csv").open(encoding="utf-8-sig", newline="") as handle:
            # in file order: the last len(replies) unlabelled rows are these messages
            self.replies = [row["reply"] for row in csv.DictReader(handle)]
        self.n = len(self.train)
        self.classes = sorted({row["label"] for row in self.train})
        self.y = np.array([self.classes.index(row["label"]) for row in self.train])
        self.k = len(self.classes)
        self.texts = [*self.train, *self.unlabelled]
        log(f"fitting the feature blocks on {len(self.texts)} texts")
        self.blocks = {s.name: Block.fit_transform(s, self.texts)[1] for s in DEFAULT_BLOCKS}
        self.folds = list(
            StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(np.zeros(self.n), self.y)
        )
        self.fold_of = np.zeros(self.n, dtype=int)
        for fold, (_, test) in enumerate(self.folds):
            self.fold_of[test] = fold
        seen = {row["id"] for row in self.train}
        # rows of the stacked matrices (train first) of unlabelled texts not in train.csv
        self.fresh = np.array(
            [self.n + i for i, row in enumerate(self.unlabelled) if row["id"] not in seen]
        )
        self._base: list[np.ndarray] | None = None

    def matrix(self, names: tuple[str, ...]) -> sparse.csr_matrix:
        return sparse.hstack([self.blocks[name] for name in names], format="csr")

    def head(
        self,
        spec: HeadSpec,
        extra: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> np.ndarray:
        """Out-of-fold scores of one head; ``extra(train_rows)`` adds rows to a fold."""
        matrix, y = self.matrix(spec.blocks), self.y
        out = np.zeros((self.n, self.k))
        for fold, (train, test) in enumerate(self.folds):
            x_train, y_train = matrix[train], y[train]
            if extra is not None:
                rows, labels = extra(train)
                x_train = sparse.vstack([x_train, matrix[rows]], format="csr")
                y_train = np.r_[y_train, labels]
            w, b = _fit_head(spec, x_train, y_train, self.k, SEED)
            out[test] = standardise(matrix[test] @ w.T + b, 1.0)
            log(f"  {spec.name}: fold {fold + 1}/{FOLDS}")
        return out

    def base(self) -> list[np.ndarray]:
        if self._base is None:
            self._base = [self.head(spec) for spec in DEFAULT_HEADS]
        return self._base

    def stack(self, parts: list[np.ndarray]) -> np.ndarray:
        scores = np.hstack([p / (p.std() or 1.0) for p in parts])
        probabilities = np.zeros((self.n, self.k))
        for fold in range(FOLDS):
            train, test = self.fold_of != fold, self.fold_of == fold
            w, b = _fit_combiner(scores[train], self.y[train], 1.0, SEED)
            probabilities[test] = softmax(scores[test] @ w.T + b)
        return probabilities

    def score(
        self, name: str, probabilities: np.ndarray, rank: np.ndarray | None = None
    ) -> dict[str, Any]:
        predicted = probabilities.argmax(axis=1)
        correct = predicted == self.y
        ranking = probabilities.max(axis=1) if rank is None else rank
        chosen = select_threshold(ranking, correct, TARGET)
        result = {
            "experiment": name,
            "macro_f1": round(float(f1_score(self.y, predicted, average="macro")), 4),
            "accuracy": round(float(accuracy_score(self.y, predicted)), 4),
            "auto_coverage": round(chosen.coverage, 4),
            "auto_precision": round(chosen.precision, 4),
        }
        log(
            f"{name:64} F1 {result['macro_f1']:.4f}  acc {result['accuracy']:.4f}  "
            f"auto {chosen.coverage:.1%} at {chosen.precision:.1%}"
        )
        return result


SVM = DEFAULT_HEADS[0]


def run_base(lab: Lab) -> list[dict[str, Any]]:
    return [
        lab.score("the model: SVM + word CNB + char CNB, stacked", lab.stack(lab.base())),
        lab.score("its SVM head alone", lab.stack(lab.base()[:1])),
    ]


def run_w2v(lab: Lab) -> list[dict[str, Any]]:
    from gensim.models import Word2Vec

    texts = [*lab.train, *lab.unlabelled]
    tokens = [words(message_field(m, "all")) for m in texts]
    log("training word2vec (CBOW, 200 dimensions, 15 epochs, one thread)")
    vectors = Word2Vec(
        tokens, vector_size=200, window=5, min_count=2, sg=0, epochs=15, workers=1, seed=SEED
    ).wv
    frequency = Counter(t for ts in tokens for t in set(ts))
    idf = {t: np.log((1 + len(tokens)) / (1 + c)) + 1 for t, c in frequency.items()}
    unit = normalize(vectors.vectors)
    documents = np.zeros((lab.n, vectors.vector_size))
    for i, ts in enumerate(tokens[: lab.n]):
        known = [(vectors.key_to_index[t], idf[t]) for t in ts if t in vectors.key_to_index]
        if known:
            rows, weights = zip(*known, strict=True)
            documents[i] = np.asarray(weights) @ unit[list(rows)]
    documents = normalize(documents)
    out = np.zeros((lab.n, lab.k))
    for train, test in lab.folds:
        head = LogisticRegression(C=10, max_iter=3000).fit(documents[train], lab.y[train])
        out[test] = standardise(head.decision_function(documents[test]), 1.0)
    return [
        lab.score("word2vec (trained here) mean vectors + LR alone", lab.stack([out])),
        lab.score("the model + the word2vec head", lab.stack([*lab.base(), out])),
    ]


def _weak_rows(lab: Lab) -> tuple[np.ndarray, np.ndarray]:
    offset = lab.n + len(lab.unlabelled) - len(lab.replies)
    fresh = set(lab.fresh.tolist())
    rows, labels = [], []
    for i, reply in enumerate(lab.replies):
        category = weak_label(reply)
        if category and offset + i in fresh:
            rows.append(offset + i)
            labels.append(lab.classes.index(category))
    return np.array(rows), np.array(labels)


def run_weak(lab: Lab, *, agree: bool) -> list[dict[str, Any]]:
    rows, labels = _weak_rows(lab)
    log(f"{len(rows)} replies with a weak label")
    matrix = lab.matrix(SVM.blocks)

    def extra(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not agree:
            return rows, labels
        w, b = _fit_head(SVM, matrix[train], lab.y[train], lab.k, SEED)
        keep = (matrix[rows] @ w.T + b).argmax(axis=1) == labels
        return rows[keep], labels[keep]

    svm = lab.head(SVM, extra)
    which = "the weak labels the fold's SVM agrees with" if agree else "all weak labels"
    return [lab.score(f"the model, SVM trained with {which}", lab.stack([svm, *lab.base()[1:]]))]


def run_self(lab: Lab, share: float = 0.2) -> list[dict[str, Any]]:
    matrix = lab.matrix(SVM.blocks)

    def extra(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w, b = _fit_head(SVM, matrix[train], lab.y[train], lab.k, SEED)
        scores = np.asarray(matrix[lab.fresh] @ w.T + b)
        top2 = np.sort(scores, axis=1)[:, -2:]
        margin = top2[:, 1] - top2[:, 0]
        keep = margin >= np.quantile(margin, 1 - share)
        return lab.fresh[keep], scores[keep].argmax(axis=1)

    svm = lab.head(SVM, extra)
    return [
        lab.score(
            f"the model, SVM self-trained on the {share:.0%} most confident unlabelled",
            lab.stack([svm, *lab.base()[1:]]),
        )
    ]


def run_combiners(lab: Lab) -> list[dict[str, Any]]:
    parts = [p / p.std() for p in lab.base()]
    scores = np.hstack(parts)
    reference = lab.stack(lab.base())
    trees = np.zeros_like(reference)
    for fold in range(FOLDS):
        train, test = lab.fold_of != fold, lab.fold_of == fold
        model = HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, max_leaf_nodes=15, random_state=SEED
        ).fit(scores[train], lab.y[train])
        trees[test] = model.predict_proba(scores[test])
    # P(the top category is right | confidence, margin, entropy, which heads agree)
    ordered = np.sort(reference, axis=1)
    top = reference.argmax(axis=1)
    agree = np.stack([p.argmax(axis=1) == top for p in parts], axis=1).astype(float)
    entropy = -(reference * np.log(reference + 1e-12)).sum(axis=1)
    features = np.column_stack(
        [ordered[:, -1], ordered[:, -1] - ordered[:, -2], entropy, agree, agree.sum(axis=1)]
    )
    right = (top == lab.y).astype(int)
    correctness = np.zeros(lab.n)
    for fold in range(FOLDS):
        train, test = lab.fold_of != fold, lab.fold_of == fold
        model = LogisticRegression(max_iter=2000).fit(features[train], right[train])
        correctness[test] = model.predict_proba(features[test])[:, 1]
    return [
        lab.score("gradient-boosted trees as the combiner", trees),
        lab.score("mean of the LR and the trees combiners", (reference + trees) / 2),
        lab.score("the model, auto-dispatch ranked by a correctness model", reference, correctness),
    ]


def run_knn(lab: Lab, neighbours: int = 10) -> list[dict[str, Any]]:
    matrix = normalize(lab.matrix(SVM.blocks))
    out = np.zeros((lab.n, lab.k))
    for train, test in lab.folds:
        similarity = (matrix[test] @ matrix[train].T).toarray()
        nearest = np.argpartition(-similarity, neighbours, axis=1)[:, :neighbours]
        for row, columns in enumerate(nearest):
            np.add.at(out[test[row]], lab.y[train][columns], similarity[row, columns])
    out = standardise(out, 1.0)
    return [
        lab.score(f"cosine {neighbours}-NN over the three blocks alone", lab.stack([out])),
        lab.score(f"the model + the {neighbours}-NN head", lab.stack([*lab.base(), out])),
    ]


def run_views(lab: Lab) -> list[dict[str, Any]]:
    title_svm = lab.head(HeadSpec("title-svm", ("title",), "svm", 1.0))
    title_cnb = lab.head(HeadSpec("title-cnb", ("title",), "cnb", 0.1))
    body_svm = lab.head(HeadSpec("char-word-svm", ("char", "word"), "svm", 1.0))
    return [
        lab.score("the model + a title-only SVM head", lab.stack([*lab.base(), title_svm])),
        lab.score(
            "the model + title-only SVM and CNB heads",
            lab.stack([*lab.base(), title_svm, title_cnb]),
        ),
        lab.score(
            "the model + char+word SVM (no title block) + title-only SVM",
            lab.stack([*lab.base(), body_svm, title_svm]),
        ),
    ]


def run_min_df(lab: Lab) -> list[dict[str, Any]]:
    """The same model over a smaller vocabulary: terms seen in at least 3 or 5 texts."""
    results, full = [], lab.blocks
    try:
        for min_df in (3, 5):
            lab.blocks = {
                spec.name: Block.fit_transform(replace(spec, min_df=min_df), lab.texts)[1]
                for spec in DEFAULT_BLOCKS
            }
            columns = sum(m.shape[1] for m in lab.blocks.values())
            parts = [lab.head(spec) for spec in DEFAULT_HEADS]
            results.append(
                lab.score(
                    f"the model, terms in >= {min_df} texts ({columns:,} columns)", lab.stack(parts)
                )
            )
    finally:
        lab.blocks = full
    return results


EXPERIMENTS: dict[str, Callable[[Lab], list[dict[str, Any]]]] = {
    "base": run_base,
    "w2v": run_w2v,
    "weak": lambda lab: run_weak(lab, agree=False),
    "weak-agree": lambda lab: run_weak(lab, agree=True),
    "self": run_self,
    "combiners": run_combiners,
    "knn": run_knn,
    "views": run_views,
    "min-df": run_min_df,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="the gov-messages directory")
    parser.add_argument("--only", nargs="+", choices=sorted(EXPERIMENTS), help="experiments")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    directory = args.data or shared_messages_dir()
    if directory is None:
        parser.error("no --data and no ../shared/data/gov-messages")
    with threadpool_limits(1):
        lab = Lab(directory)
        results = [r for name in args.only or EXPERIMENTS for r in EXPERIMENTS[name](lab)]
    if args.json:
        print(json.dumps({"protocol": "5-fold CV in train.csv, seed 0", "results": results}))
        return
    for r in results:
        print(
            f"{r['experiment']:64} {r['macro_f1']:.4f} {r['accuracy']:.4f} "
            f"{r['auto_coverage']:.1%} at {r['auto_precision']:.1%}"
        )


if __name__ == "__main__":
    main()
