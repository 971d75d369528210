"""Training: fixed seeds, cross-validated calibration and threshold.

1. Feature blocks (vocabulary, IDF) are fitted on the labelled and the unlabelled text.
2. Each head (a linear model over some blocks) is trained in k folds; its scores on the
   held-out fold ("out-of-fold") are what the combiner learns from, so the combiner
   sees scores like those of messages the heads never saw.
3. The combiner (multinomial logistic regression on all heads' scores) gives calibrated
   probabilities; its own out-of-fold probabilities choose the auto-dispatch threshold
   (threshold.py) and give the metrics written into the manifest.
4. The heads are retrained on all labelled messages for the saved model.

Everything is deterministic: fold splits and solvers take ``seed``, no step uses
threads, and feature columns are in sorted-term order.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import ComplementNB
from sklearn.svm import LinearSVC

from xietong.kernel.errors import InvalidInput

from .features import Block, BlockSpec, normalise
from .model import Head, Model, check_messages, softmax, standardise
from .threshold import operating_at, select_threshold

ALGORITHM = "hl1"


@dataclass(frozen=True)
class HeadSpec:
    name: str
    blocks: tuple[str, ...]
    kind: Literal["svm", "lr", "cnb"] = "svm"
    C: float = 1.0  # regularisation for svm/lr; smoothing alpha for cnb


# Chosen by 5-fold cross-validation inside train.csv (docs/apps/hotline-classifier.md):
# one linear SVM over character 1–3-grams, jieba word 1–2-grams and the title's own
# character n-grams (so a title counts twice: alone and in the whole message), stacked
# with two complement naive Bayes heads, whose errors differ from the SVM's.
DEFAULT_BLOCKS = (
    BlockSpec("char", "char", (1, 3)),
    BlockSpec("word", "word", (1, 2)),
    BlockSpec("title", "char", (1, 3), field="title"),
)
DEFAULT_HEADS = (
    HeadSpec("svm", ("char", "word", "title"), "svm", 1.0),
    HeadSpec("word-cnb", ("word",), "cnb", 0.1),
    HeadSpec("char-cnb", ("char",), "cnb", 0.1),
)


@dataclass(frozen=True)
class TrainConfig:
    blocks: tuple[BlockSpec, ...] = DEFAULT_BLOCKS
    heads: tuple[HeadSpec, ...] = DEFAULT_HEADS
    folds: int = 5
    precision_target: float = 0.97
    combiner_C: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "blocks": [b.to_dict() for b in self.blocks],
            "heads": [asdict(h) for h in self.heads],
            "folds": self.folds,
            "precision_target": self.precision_target,
            "combiner_C": self.combiner_C,
            "extra": self.extra,
        }


DEFAULT_CONFIG = TrainConfig()


def _labelled(rows: Iterable[dict[str, Any]]) -> tuple[list[dict[str, str]], list[str]]:
    rows = list(rows)
    messages = check_messages(rows)
    labels = []
    for index, row in enumerate(rows):
        label = row.get("label")
        if not isinstance(label, str) or not label.strip():
            raise InvalidInput(
                f"第 {index + 1} 条训练留言缺少类别（label）",
                f"training row {index + 1} has no label",
                details={"index": index},
            )
        labels.append(label.strip())
    return messages, labels


def rows_sha256(messages: Sequence[dict[str, str]], labels: Sequence[str] | None = None) -> str:
    """A digest of the content (not the file), so CSV quoting does not change it."""
    digest = hashlib.sha256()
    for i, message in enumerate(messages):
        label = labels[i] if labels is not None else ""
        digest.update(f"{message['title']}\x1f{message['text']}\x1f{label}\x1e".encode())
    return digest.hexdigest()


def _fit_head(spec: HeadSpec, matrix: sparse.csr_matrix, y: np.ndarray, k: int, seed: int):
    if spec.kind == "svm":
        estimator = LinearSVC(C=spec.C, random_state=seed, max_iter=10_000, dual=True)
    elif spec.kind == "lr":
        estimator = LogisticRegression(C=spec.C, max_iter=2_000, random_state=seed)
    elif spec.kind == "cnb":
        # Complement naive Bayes scores are linear too: X @ feature_log_prob_.T.
        nb = ComplementNB(alpha=spec.C).fit(matrix, y)
        return np.asarray(nb.feature_log_prob_, dtype=np.float64), np.zeros(k)
    else:
        raise ValueError(f"unknown head kind {spec.kind!r}")
    estimator.fit(matrix, y)
    weights, bias = estimator.coef_, estimator.intercept_
    if weights.shape[0] == 1 and k == 2:  # binary: one row of scores → two columns
        weights = np.vstack([-weights[0] / 2, weights[0] / 2])
        bias = np.array([-bias[0] / 2, bias[0] / 2])
    return np.asarray(weights, dtype=np.float64), np.asarray(bias, dtype=np.float64)


def _head_matrix(spec: HeadSpec, names: list[str], features: list[sparse.csr_matrix]):
    return sparse.hstack([features[names.index(b)] for b in spec.blocks], format="csr")


def _fit_combiner(scores: np.ndarray, y: np.ndarray, C: float, seed: int):
    combiner = LogisticRegression(C=C, max_iter=5_000, random_state=seed)
    combiner.fit(scores, y)
    return combiner.coef_, combiner.intercept_


@dataclass
class CrossValidation:
    """Out-of-fold results of one training run (what the manifest reports)."""

    probabilities: np.ndarray
    labels: np.ndarray
    folds: np.ndarray

    def metrics(self, classes: Sequence[str], target: float) -> dict[str, Any]:
        predicted = self.probabilities.argmax(axis=1)
        confidence = self.probabilities.max(axis=1)
        correct = predicted == self.labels
        chosen = select_threshold(confidence, correct, target)
        per_fold = []
        for fold in np.unique(self.folds):
            mask = self.folds == fold
            at = operating_at(confidence[mask], correct[mask], chosen.threshold)
            per_fold.append({"coverage": at.coverage, "precision": at.precision})
        return {
            "macro_f1": float(f1_score(self.labels, predicted, average="macro")),
            "accuracy": float(accuracy_score(self.labels, predicted)),
            "threshold": chosen.threshold,
            "auto_coverage": chosen.coverage,
            "auto_precision": chosen.precision,
            "precision_target": target,
            "per_fold": per_fold,
            "messages": int(self.labels.size),
            "classes": list(classes),
        }


def train_model(
    rows: Iterable[dict[str, Any]],
    *,
    unlabelled: Iterable[dict[str, Any]] | None = None,
    seed: int = 0,
    config: TrainConfig = DEFAULT_CONFIG,
) -> Model:
    """Train on ``{"title", "text", "label"}`` rows; unlabelled rows feed the features."""
    started = time.perf_counter()
    messages, labels = _labelled(rows)
    extra = check_messages(list(unlabelled)) if unlabelled is not None else []
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise InvalidInput("训练数据至少需要两个类别", "training data needs at least two classes")
    counts = {c: labels.count(c) for c in classes}
    if min(counts.values()) < config.folds:
        raise InvalidInput(
            f"每个类别至少需要 {config.folds} 条留言：{counts}",
            f"every class needs at least {config.folds} messages for cross-validation: {counts}",
            details=counts,
        )
    y = np.array([classes.index(label) for label in labels])
    k = len(classes)

    fitted = [Block.fit_transform(spec, [*messages, *extra]) for spec in config.blocks]
    blocks = [block for block, _ in fitted]
    names = [b.spec.name for b in blocks]
    features = [matrix[: len(messages)] for _, matrix in fitted]

    splitter = StratifiedKFold(n_splits=config.folds, shuffle=True, random_state=seed)
    folds = np.zeros(len(y), dtype=int)
    oof = np.zeros((len(y), k * len(config.heads)))
    for fold, (train, test) in enumerate(splitter.split(np.zeros(len(y)), y)):
        folds[test] = fold
        for h, spec in enumerate(config.heads):
            matrix = _head_matrix(spec, names, features)
            w, b = _fit_head(spec, matrix[train], y[train], k, seed)
            oof[test, h * k : (h + 1) * k] = standardise(matrix[test] @ w.T + b, 1.0)
    scales = [float(oof[:, h * k : (h + 1) * k].std()) or 1.0 for h in range(len(config.heads))]
    for h, scale in enumerate(scales):
        oof[:, h * k : (h + 1) * k] /= scale

    # Out-of-fold probabilities of the combiner itself, on the same folds.
    probabilities = np.zeros((len(y), k))
    for fold in range(config.folds):
        train, test = folds != fold, folds == fold
        cw, cb = _fit_combiner(oof[train], y[train], config.combiner_C, seed)
        probabilities[test] = softmax(oof[test] @ cw.T + cb)
    cv = CrossValidation(probabilities, y, folds)
    metrics = cv.metrics(classes, config.precision_target)

    combiner_weights, combiner_bias = _fit_combiner(oof, y, config.combiner_C, seed)
    heads = []
    for spec, scale in zip(config.heads, scales, strict=True):
        matrix = _head_matrix(spec, names, features)
        w, b = _fit_head(spec, matrix, y, k, seed)
        heads.append(Head(spec.name, [names.index(n) for n in spec.blocks], w, b, scale))

    data_sha256 = rows_sha256(messages, labels)
    unlabelled_sha256 = rows_sha256(extra)
    fingerprint = json.dumps(
        [ALGORITHM, data_sha256, unlabelled_sha256, seed, config.to_dict()], sort_keys=True
    )
    version = f"{ALGORITHM}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:12]}"
    manifest = {
        "algorithm": ALGORITHM,
        "data_sha256": data_sha256,
        "unlabelled_sha256": unlabelled_sha256,
        "labelled_messages": len(messages),
        "unlabelled_messages": len(extra),
        "class_counts": counts,
        "seed": seed,
        "config": config.to_dict(),
        "cv": metrics,
        # Wall-clock time is the one field that differs between two identical runs; it is
        # kept out of the manifest so that same data → same bytes.
    }
    model = Model(
        classes=classes,
        blocks=blocks,
        heads=heads,
        combiner_weights=combiner_weights,
        combiner_bias=combiner_bias,
        threshold=metrics["threshold"],
        version=version,
        manifest=manifest,
    )
    model.cv = cv
    model.training_seconds = time.perf_counter() - started
    return model


__all__ = ["DEFAULT_CONFIG", "HeadSpec", "TrainConfig", "normalise", "train_model"]
