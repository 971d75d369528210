"""The model ``make demo`` needs: real data when it is beside the repo, else our own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .data import read_messages
from .model import ModelUnavailable, load_model, resolve_model_dir
from .training import train_model

DEMO_MESSAGES = Path(__file__).with_name("demo_messages.csv")
UNLABELLED_FILES = ("hot-issues.csv", "replies.csv")


def models_dir(settings: Any) -> Path:
    """Where trained models live: ``<data_dir>/models/hotline/<version>/``."""
    return Path(settings.data_dir) / "models" / "hotline"


def shared_messages_dir() -> Path | None:
    """``gov-messages`` of the shared data: ``$XIETONG_HOTLINE_DATA`` or ``../shared``."""
    candidates = []
    if os.environ.get("XIETONG_HOTLINE_DATA"):
        candidates.append(Path(os.environ["XIETONG_HOTLINE_DATA"]))
    repo = Path(__file__).resolve().parents[5]
    for base in (repo.parent, Path.cwd().resolve().parent):
        candidates.append(base / "shared" / "data" / "gov-messages")
    for candidate in candidates:
        if (candidate / "train.csv").is_file():
            return candidate
    return None


def unlabelled_beside(train_csv: Path) -> list[Path]:
    return [train_csv.parent / n for n in UNLABELLED_FILES if (train_csv.parent / n).is_file()]


def ensure_demo_model(settings: Any, *, retrain: bool = False) -> Path:
    """The current model's directory; train one first if there is none (or ``retrain``).

    Trains on ``../shared/data/gov-messages`` (labelled + unlabelled messages) when it
    is there, otherwise on the project's own demo messages (``demo_messages.csv``).
    """
    root = models_dir(settings)
    if not retrain:
        try:
            path = resolve_model_dir(root)
            load_model(path)
            return path
        except ModelUnavailable:
            pass
    shared = shared_messages_dir()
    if shared is not None:
        train_csv = shared / "train.csv"
        unlabelled = [
            row
            for path in unlabelled_beside(train_csv)
            for row in read_messages(path, labelled=False)
        ]
    else:
        train_csv, unlabelled = DEMO_MESSAGES, []
    model = train_model(read_messages(train_csv, labelled=True), unlabelled=unlabelled or None)
    return model.save(root)
