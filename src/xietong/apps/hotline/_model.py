"""The category model as the rest of the app sees it: loaded once, never fatal.

A missing or corrupt model must not lose a ticket: ``predict`` then returns ``None``
with the reason, the ticket waits for a human dispatcher and the intake raises an
alert (``hotline.classifier.unavailable``). Tests install their own predictor with
``use_predictor``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Guess:
    """One prediction, independent of the classifier's own classes."""

    category: str
    confidence: float
    auto: bool
    top3: list[tuple[str, float]]
    model_version: str


Predictor = Callable[[Sequence[dict[str, str]]], list[Guess]]

_lock = threading.Lock()
_override: Predictor | None = None
_cache: dict[Path, Any] = {}


def use_predictor(predictor: Predictor | None) -> None:
    """Replace the trained model (tests, or a deployment's own service); None restores it."""
    global _override
    with _lock:
        _override = predictor
        _cache.clear()


def reset() -> None:
    with _lock:
        _cache.clear()


def _model(settings: Any) -> Any:
    """The current model, reloaded when ``CURRENT`` names a newly trained version."""
    from xietong.apps.hotline.classifier import load_model, models_dir
    from xietong.apps.hotline.classifier.model import resolve_model_dir

    directory = resolve_model_dir(models_dir(settings))
    with _lock:
        cached = _cache.get(directory)
        if cached is not None:
            return cached
    model = load_model(directory)
    with _lock:
        _cache.clear()
        _cache[directory] = model
    return model


def predict(settings: Any, items: Sequence[dict[str, str]]) -> tuple[list[Guess] | None, str]:
    """Guesses for ``items`` ({"title", "text"}), or (None, why the model is unusable)."""
    if _override is not None:
        return _override(items), ""
    try:
        model = _model(settings)
        predictions = model.predict(list(items))
        version = str(model.version)
    except Exception as error:  # any failure of the model means manual dispatch
        log.warning("hotline classifier unavailable: %s", error)
        reset()  # try loading again next time: the model may be trained meanwhile
        return None, f"{type(error).__name__}: {error}"[:500]
    return [
        Guess(
            p.category,
            float(p.confidence),
            bool(p.auto),
            [(str(c), float(s)) for c, s in p.top3],
            version,
        )
        for p in predictions
    ], ""
