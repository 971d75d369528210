"""Benchmark the hotline category model against a character TF-IDF + linear SVM baseline.

    python bench/hotline.py [--data CSV] [--eval CSV] [--folds 5] [--seed 0]
                            [--rounds N] [--unlabelled CSV ...] [--no-unlabelled] [--json]

Without ``--eval``: stratified k-fold cross-validation inside ``--data`` (default
``../shared/data/gov-messages/train.csv``). In each fold both models are trained on the
other folds only and scored on the held-out fold; each chooses its auto-dispatch
threshold on its training part alone (inner cross-validation, target precision 97%), so
the held-out fold is never seen before it is scored. ``--rounds N`` stops after the
first N folds (each round trains both models once; ours takes minutes on a loaded
machine). With ``--eval``: train on
``--data``, score on ``--eval`` once.

Ours: ``train_model`` (with the unlabelled CSVs found beside ``--data``, as
``xietong hotline train`` uses them). Baseline, same folds, same run: scikit-learn
``TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)`` +
``LinearSVC`` calibrated by ``CalibratedClassifierCV`` (sigmoid, 3 folds); its threshold
is chosen the same way from inner 5-fold out-of-fold probabilities.

Reported per model: macro-F1, accuracy, auto-dispatch coverage and its precision (pooled
over the held-out folds, each fold at its own threshold), ms per message (batch
prediction of the held-out fold, one thread), single-message latency (p50/p95 over 200
messages predicted one at a time, all features included), and the same in CPU time of
the process (``time.process_time``, one thread): on a shared machine wall-clock time
counts the other jobs' turns too, so the 5 ms target is checked on CPU time. Ratios:
ours / baseline.
Progress goes to stderr, the result to stdout (a table, or one JSON object).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from xietong.apps.hotline.classifier import read_messages, train_model
from xietong.apps.hotline.classifier.demo import shared_messages_dir, unlabelled_beside
from xietong.apps.hotline.classifier.threshold import operating_at, select_threshold

TARGETS = {"macro_f1": 0.93, "auto_coverage": 0.90, "auto_precision": 0.97, "ms_per_message": 5.0}
LATENCY_SAMPLE = 200


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _text(row: dict[str, Any]) -> str:
    return f"{row['title']}。{row['text']}" if row["title"] else row["text"]


class Baseline:
    """Character 1–3-gram TF-IDF + calibrated linear SVM, threshold by inner CV."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def _calibrated(self) -> CalibratedClassifierCV:
        svm = LinearSVC(C=0.5, random_state=self.seed, max_iter=10_000)
        return CalibratedClassifierCV(svm, method="sigmoid", cv=3)

    def fit(self, rows: list[dict[str, Any]]) -> Baseline:
        self.vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
        matrix = self.vectorizer.fit_transform([_text(r) for r in rows])
        labels = np.array([r["label"] for r in rows])
        inner = StratifiedKFold(5, shuffle=True, random_state=self.seed)
        oof = cross_val_predict(
            self._calibrated(), matrix, labels, cv=inner, method="predict_proba"
        )
        self.model = self._calibrated().fit(matrix, labels)
        classes = self.model.classes_
        correct = classes[oof.argmax(axis=1)] == labels
        self.threshold = select_threshold(oof.max(axis=1), correct, 0.97).threshold
        return self

    def predict(self, rows: list[dict[str, Any]]) -> tuple[list[str], np.ndarray]:
        probabilities = self.model.predict_proba(
            self.vectorizer.transform([_text(r) for r in rows])
        )
        return list(self.model.classes_[probabilities.argmax(axis=1)]), probabilities.max(axis=1)


class Ours:
    def __init__(self, seed: int, unlabelled: list[dict[str, Any]]) -> None:
        self.seed, self.unlabelled = seed, unlabelled

    def fit(self, rows: list[dict[str, Any]]) -> Ours:
        self.model = train_model(rows, unlabelled=self.unlabelled or None, seed=self.seed)
        self.threshold = self.model.threshold
        return self

    def predict(self, rows: list[dict[str, Any]]) -> tuple[list[str], np.ndarray]:
        predictions = self.model.predict(rows)
        return [p.category for p in predictions], np.array([p.confidence for p in predictions])


def _latency(model: Any, rows: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of predicting one message at a time."""
    wall, cpu = [], []
    for row in rows[:LATENCY_SAMPLE]:
        started, started_cpu = time.perf_counter(), time.process_time()
        model.predict([row])
        cpu.append((time.process_time() - started_cpu) * 1000)
        wall.append((time.perf_counter() - started) * 1000)
    return wall, cpu


def run(
    train_rows: list[dict[str, Any]],
    eval_rows: list[dict[str, Any]] | None,
    unlabelled: list[dict[str, Any]],
    folds: int,
    seed: int,
    max_rounds: int | None = None,
) -> dict[str, Any]:
    if eval_rows is None:
        labels = np.array([r["label"] for r in train_rows])
        splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(labels, labels))
        rounds = [([train_rows[i] for i in tr], [train_rows[i] for i in te]) for tr, te in splits]
    else:
        rounds = [(train_rows, eval_rows)]
    rounds = rounds[:max_rounds] if max_rounds else rounds
    results: dict[str, Any] = {}
    for name, factory in (
        ("xietong", lambda: Ours(seed, unlabelled)),
        ("baseline", lambda: Baseline(seed)),
    ):
        truth: list[str] = []
        predicted: list[str] = []
        auto_count = auto_right = 0
        predict_s = fit_s = 0.0
        latencies: list[float] = []
        cpu_latencies: list[float] = []
        predict_cpu_s = 0.0
        thresholds = []
        for number, (train, test) in enumerate(rounds, start=1):
            started = time.perf_counter()
            model = factory().fit(train)
            fit_s += time.perf_counter() - started
            started, started_cpu = time.perf_counter(), time.process_time()
            categories, confidences = model.predict(test)
            predict_s += time.perf_counter() - started
            predict_cpu_s += time.process_time() - started_cpu
            wall, cpu = _latency(model, test)
            latencies += wall
            cpu_latencies += cpu
            gold = [r["label"] for r in test]
            correct = np.array(categories) == np.array(gold)
            at = operating_at(confidences, correct, model.threshold)
            auto_count += round(at.coverage * len(test))
            auto_right += int(correct[confidences >= model.threshold].sum())
            truth += gold
            predicted += categories
            thresholds.append(model.threshold)
            log(
                f"{name} round {number}/{len(rounds)}: macro-F1 "
                f"{f1_score(gold, categories, average='macro'):.4f}, auto {at.coverage:.1%} "
                f"at {at.precision:.1%} (training {fit_s:.0f}s so far)"
            )
        results[name] = {
            "macro_f1": round(float(f1_score(truth, predicted, average="macro")), 4),
            "accuracy": round(float(accuracy_score(truth, predicted)), 4),
            "auto_coverage": round(auto_count / len(truth), 4),
            "auto_precision": round(auto_right / max(auto_count, 1), 4),
            "ms_per_message": round(predict_s * 1000 / len(truth), 3),
            "cpu_ms_per_message": round(predict_cpu_s * 1000 / len(truth), 3),
            "single_cpu_ms_mean": round(statistics.mean(cpu_latencies), 3),
            "single_ms_p50": round(statistics.median(latencies), 3),
            "single_ms_p95": round(float(np.percentile(latencies, 95)), 3),
            "thresholds": [round(t, 4) for t in thresholds],
            "fit_s_per_round": round(fit_s / len(rounds), 1),
            "messages": len(truth),
        }
    ours, base = results["xietong"], results["baseline"]
    results["ratios"] = {
        key: round(ours[key] / base[key], 3) if base[key] else None
        for key in ("macro_f1", "accuracy", "auto_coverage", "single_cpu_ms_mean")
    }
    results["errors_ratio"] = round((1 - ours["macro_f1"]) / max(1 - base["macro_f1"], 1e-9), 3)
    results["targets"] = TARGETS
    results["met"] = {
        "macro_f1": ours["macro_f1"] >= TARGETS["macro_f1"],
        "auto_coverage": ours["auto_coverage"] >= TARGETS["auto_coverage"],
        "auto_precision": ours["auto_precision"] >= TARGETS["auto_precision"],
        "ms_per_message": ours["single_cpu_ms_mean"] <= TARGETS["ms_per_message"],
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="labelled CSV (id,title,text,label)")
    parser.add_argument("--eval", type=Path, help="labelled CSV to score on instead of CV")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, help="stop after this many folds")
    parser.add_argument("--unlabelled", type=Path, action="append", help="unlabelled CSV")
    parser.add_argument("--no-unlabelled", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    data = args.data
    if data is None:
        shared = shared_messages_dir()
        if shared is None:
            parser.error("no --data and no ../shared/data/gov-messages/train.csv")
        data = shared / "train.csv"
    sources = [] if args.no_unlabelled else (args.unlabelled or unlabelled_beside(data))
    unlabelled = [row for path in sources for row in read_messages(path, labelled=False)]
    train_rows = read_messages(data, labelled=True)
    eval_rows = read_messages(args.eval, labelled=True) if args.eval else None
    log(f"data {data}: {len(train_rows)} labelled, {len(unlabelled)} unlabelled")
    with threadpool_limits(1):  # one CPU core, as the target says
        results = run(train_rows, eval_rows, unlabelled, args.folds, args.seed, args.rounds)
    results["setup"] = {
        "data": str(data),
        "eval": str(args.eval) if args.eval else f"{args.folds}-fold stratified CV",
        "rounds": len(results["xietong"]["thresholds"]),
        "unlabelled": [str(p) for p in sources],
        "seed": args.seed,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    if args.json:
        print(json.dumps(results, ensure_ascii=False))
        return
    rows = [
        ("macro-F1", "macro_f1"),
        ("accuracy", "accuracy"),
        ("auto-dispatch coverage", "auto_coverage"),
        ("auto-dispatch precision", "auto_precision"),
        ("ms/message (batch)", "ms_per_message"),
        ("CPU ms/message (batch)", "cpu_ms_per_message"),
        ("CPU ms, one message, mean", "single_cpu_ms_mean"),
        ("ms, one message p50", "single_ms_p50"),
        ("ms, one message p95", "single_ms_p95"),
        ("training s per round", "fit_s_per_round"),
    ]
    print(f"{'':26}{'xietong':>10}{'baseline':>10}{'ratio':>8}")
    for label, key in rows:
        ours, base = results["xietong"][key], results["baseline"][key]
        ratio = f"{ours / base:.3f}" if base else "-"
        print(f"{label:26}{ours:>10}{base:>10}{ratio:>8}")
    print(f"targets met: {results['met']}")


if __name__ == "__main__":
    main()
