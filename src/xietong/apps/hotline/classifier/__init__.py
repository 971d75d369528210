"""The hotline's category model (分类模型): which of the 7 categories a message is about.

Public API (the hotline app and the CLI use only this)::

    from xietong.apps.hotline.classifier import load_model, train_model, Prediction

    model = load_model(path)            # a model dir, or a models root with CURRENT
    model.predict([{"title": ..., "text": ...}]) -> list[Prediction]
    model.version, model.threshold, model.classes
    train_model(rows, unlabelled=None, seed=0) -> Model;  model.save(dir) -> Path
    ensure_demo_model(settings) -> Path

A missing or corrupt model raises ``ModelUnavailable`` (tickets then go to a human
dispatcher). See docs/apps/hotline-classifier.md.
"""

from __future__ import annotations

from .data import read_messages
from .demo import ensure_demo_model, models_dir
from .model import Model, ModelUnavailable, Prediction, load_model
from .training import DEFAULT_CONFIG, TrainConfig, train_model

__all__ = [
    "DEFAULT_CONFIG",
    "Model",
    "ModelUnavailable",
    "Prediction",
    "TrainConfig",
    "ensure_demo_model",
    "load_model",
    "models_dir",
    "read_messages",
    "train_model",
]
