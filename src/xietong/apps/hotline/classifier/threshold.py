"""Choosing the auto-dispatch threshold from out-of-fold predictions.

A message is dispatched automatically when the model's confidence is at least the
threshold. The threshold is the lowest confidence at which the messages the model would
dispatch (all those at or above it) are still right at least ``target`` of the time,
measured on predictions the model made for messages it was not trained on
(cross-validation). The lowest such value dispatches the most messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Above every probability: "never dispatch automatically".
NEVER = float(np.nextafter(1.0, 2.0))


@dataclass(frozen=True)
class Operating:
    threshold: float
    coverage: float  # share of messages dispatched automatically
    precision: float  # share of those whose category is right


def select_threshold(
    confidences: Sequence[float], correct: Sequence[bool], target: float = 0.97
) -> Operating:
    conf = np.asarray(confidences, dtype=np.float64)
    right = np.asarray(correct, dtype=bool)
    if conf.shape != right.shape or conf.ndim != 1:
        raise ValueError("confidences and correct must be 1-D and the same length")
    if not 0 < target <= 1:
        raise ValueError("target must be in (0, 1]")
    if conf.size == 0:
        return Operating(NEVER, 0.0, 1.0)
    order = np.argsort(-conf, kind="stable")
    conf, right = conf[order], right[order]
    precision = np.cumsum(right) / np.arange(1, conf.size + 1)
    # A threshold t selects every message with confidence >= t, so only the last of a
    # run of equal confidences is a position the threshold can stop at.
    last_of_run = np.r_[conf[1:] != conf[:-1], True]
    ok = np.flatnonzero(last_of_run & (precision >= target))
    if ok.size == 0:
        return Operating(NEVER, 0.0, 1.0)
    k = int(ok[-1])
    return Operating(float(conf[k]), (k + 1) / conf.size, float(precision[k]))


def operating_at(
    confidences: Sequence[float], correct: Sequence[bool], threshold: float
) -> Operating:
    """Coverage and precision of a given threshold (on other data, e.g. a test fold)."""
    conf = np.asarray(confidences, dtype=np.float64)
    right = np.asarray(correct, dtype=bool)
    chosen = conf >= threshold
    count = int(chosen.sum())
    precision = float(right[chosen].mean()) if count else 1.0
    return Operating(threshold, count / max(conf.size, 1), precision)
