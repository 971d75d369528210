"""The trained category model: load, predict, save.

On disk a model is one directory, ``<models>/<version>/``, holding ``manifest.json`` and
plain arrays (``.npy``) and term lists (``.json``) — no pickle, so loading a model file
never runs code, and the same training data gives byte-identical files. The manifest
lists every file with its sha256; a missing or altered file makes ``load_model`` raise
``ModelUnavailable`` (tickets then wait for a human dispatcher).

Scoring: every *head* is a linear model over some feature blocks; the *combiner* (a
multinomial logistic regression trained on the heads' out-of-fold scores) turns the
heads' scores into calibrated class probabilities.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xietong.kernel.errors import InvalidInput, XietongError

from .features import Block, BlockSpec, stack

MANIFEST = "manifest.json"
CURRENT = "CURRENT"
FORMAT = 1
MAX_TEXT_CHARS = 20_000  # longer input is cut: the category shows in the first pages


class ModelUnavailable(XietongError):
    status = 503
    code = "hotline_model_unavailable"


@dataclass(frozen=True)
class Prediction:
    category: str
    confidence: float
    auto: bool
    top3: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Head:
    name: str
    blocks: list[int]
    weights: np.ndarray  # (classes, columns)
    bias: np.ndarray  # (classes,)
    scale: float = 1.0

    def scores(self, features: Sequence[Any]) -> np.ndarray:
        # Per block, against a C-contiguous (columns, classes) slice of the weights, made
        # once: ``sparse @ weights.T`` would copy the whole transposed matrix every call.
        parts = getattr(self, "_parts", None)
        if parts is None:
            parts, start = [], 0
            for i in self.blocks:
                width = features[i].shape[1]
                parts.append((i, np.ascontiguousarray(self.weights[:, start : start + width].T)))
                start += width
            self._parts = parts
        raw = sum((features[i] @ w for i, w in parts), start=np.zeros(self.bias.shape))
        return standardise(np.asarray(raw) + self.bias, self.scale)


def standardise(scores: np.ndarray, scale: float) -> np.ndarray:
    """Scores relative to the row mean, in units of ``scale``.

    Heads speak different units (SVM margins near ±1, naive Bayes log-likelihoods in the
    thousands); the combiner learns from them all, so each is centred and scaled.
    """
    centred = scores - scores.mean(axis=1, keepdims=True)
    return centred / scale


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def check_messages(messages: Sequence[Any]) -> list[dict[str, str]]:
    """Validate ``{"title", "text"}`` dicts; the error names the first bad one."""
    clean: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidInput(
                f"第 {index + 1} 条留言不是对象",
                f"message {index + 1} is not an object",
                details={"index": index},
            )
        title, text = message.get("title") or "", message.get("text")
        if not isinstance(title, str) or not isinstance(text, str):
            raise InvalidInput(
                f"第 {index + 1} 条留言缺少文本（text 必须是字符串）",
                f"message {index + 1}: 'text' must be a string (and 'title' a string or absent)",
                details={"index": index},
            )
        if not (title.strip() or text.strip()):
            raise InvalidInput(
                f"第 {index + 1} 条留言的标题和正文都为空",
                f"message {index + 1}: title and text are both empty",
                details={"index": index},
            )
        clean.append({"title": title[:MAX_TEXT_CHARS], "text": text[:MAX_TEXT_CHARS]})
    return clean


class Model:
    def __init__(
        self,
        *,
        classes: Sequence[str],
        blocks: Sequence[Block],
        heads: Sequence[Head],
        combiner_weights: np.ndarray,
        combiner_bias: np.ndarray,
        threshold: float,
        version: str,
        manifest: dict[str, Any] | None = None,
    ) -> None:
        self.classes = list(classes)
        self.blocks = list(blocks)
        self.heads = list(heads)
        self.combiner_weights = np.asarray(combiner_weights, dtype=np.float64)
        self.combiner_bias = np.asarray(combiner_bias, dtype=np.float64)
        self.threshold = float(threshold)
        self.version = version
        self.manifest = dict(manifest or {})
        self.path: Path | None = None
        # Set by training only: out-of-fold results and how long training took.
        self.cv: Any = None
        self.training_seconds: float | None = None

    # --- scoring -----------------------------------------------------------------------
    def head_scores(self, messages: Sequence[dict[str, str]]) -> np.ndarray:
        features = [block.transform(messages) for block in self.blocks]
        return np.hstack([head.scores(features) for head in self.heads])

    def probabilities(self, messages: Sequence[Any]) -> np.ndarray:
        clean = check_messages(messages)
        if not clean:
            return np.zeros((0, len(self.classes)))
        scores = self.head_scores(clean)
        return softmax(scores @ self.combiner_weights.T + self.combiner_bias)

    def predict(self, messages: Sequence[Any]) -> list[Prediction]:
        probabilities = self.probabilities(messages)
        predictions = []
        for row in probabilities:
            order = np.argsort(-row, kind="stable")[:3]
            top3 = [(self.classes[i], round(float(row[i]), 6)) for i in order]
            confidence = float(row[order[0]])
            predictions.append(
                Prediction(
                    category=top3[0][0],
                    confidence=round(confidence, 6),
                    auto=confidence >= self.threshold,
                    top3=top3,
                )
            )
        return predictions

    # --- persistence -------------------------------------------------------------------
    def _arrays(self) -> dict[str, Any]:
        files: dict[str, Any] = {}
        for block in self.blocks:
            files[f"block-{block.spec.name}.terms.json"] = block.terms
            files[f"block-{block.spec.name}.idf.npy"] = block.idf
        for head in self.heads:
            files[f"head-{head.name}.weights.npy"] = head.weights.astype(np.float32)
            files[f"head-{head.name}.bias.npy"] = head.bias
        files["combiner.weights.npy"] = self.combiner_weights
        files["combiner.bias.npy"] = self.combiner_bias
        return files

    def describe(self) -> dict[str, Any]:
        """The manifest without its file list."""
        return {
            **self.manifest,
            "format": FORMAT,
            "version": self.version,
            "classes": self.classes,
            "threshold": self.threshold,
            "blocks": [block.spec.to_dict() for block in self.blocks],
            "heads": [{"name": h.name, "blocks": h.blocks, "scale": h.scale} for h in self.heads],
        }

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``directory/<version>/`` atomically and point ``directory/CURRENT`` at it.

        Files go to a temporary directory that is renamed into place, so a process that
        dies mid-way leaves no half-written model; ``CURRENT`` is replaced the same way.
        """
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        target = root / self.version
        self.manifest = self.describe()
        if not target.exists():
            staging = root / f".staging-{self.version}-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            digests: dict[str, str] = {}
            for name, value in self._arrays().items():
                path = staging / name
                if name.endswith(".json"):
                    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
                else:
                    with path.open("wb") as handle:
                        np.save(handle, np.ascontiguousarray(value), allow_pickle=False)
                digests[name] = _sha256(path)
            manifest = {**self.manifest, "files": digests}
            (staging / MANIFEST).write_text(
                json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
                encoding="utf-8",
            )
            _fsync_dir_files(staging)
            os.replace(staging, target)
        pointer = root / f".{CURRENT}.{os.getpid()}"
        pointer.write_text(self.version + "\n", encoding="utf-8")
        os.replace(pointer, root / CURRENT)
        self.path = target
        return target


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fsync_dir_files(directory: Path) -> None:
    for path in directory.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())


def resolve_model_dir(path: str | os.PathLike[str]) -> Path:
    """A model directory, or a models root whose ``CURRENT`` names one."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return path
    pointer = path / CURRENT
    if pointer.is_file():
        version = pointer.read_text(encoding="utf-8").strip()
        if version and "/" not in version and (path / version / MANIFEST).is_file():
            return path / version
    raise ModelUnavailable(
        f"找不到分类模型：{path}（请先运行 xietong hotline train）",
        f"no category model at {path} (run `xietong hotline train` first)",
        details={"path": str(path)},
    )


def load_model(path: str | os.PathLike[str]) -> Model:
    """Load and verify a model; ``ModelUnavailable`` if it is missing or corrupt."""
    directory = resolve_model_dir(path)
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            raise ValueError(f"unsupported model format {manifest.get('format')!r}")
        for name, digest in manifest["files"].items():
            if _sha256(directory / name) != digest:
                raise ValueError(f"checksum mismatch: {name}")

        def array(name: str) -> np.ndarray:
            return np.load(directory / name, allow_pickle=False)

        blocks = []
        for data in manifest["blocks"]:
            spec = BlockSpec.from_dict(data)
            terms = json.loads((directory / f"block-{spec.name}.terms.json").read_text("utf-8"))
            blocks.append(Block(spec, terms, array(f"block-{spec.name}.idf.npy")))
        heads = [
            Head(
                name=h["name"],
                blocks=list(h["blocks"]),
                weights=array(f"head-{h['name']}.weights.npy").astype(np.float64),
                bias=array(f"head-{h['name']}.bias.npy"),
                scale=float(h["scale"]),
            )
            for h in manifest["heads"]
        ]
        model = Model(
            classes=manifest["classes"],
            blocks=blocks,
            heads=heads,
            combiner_weights=array("combiner.weights.npy"),
            combiner_bias=array("combiner.bias.npy"),
            threshold=manifest["threshold"],
            version=manifest["version"],
            manifest={k: v for k, v in manifest.items() if k not in {"files"}},
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelUnavailable(
            f"分类模型已损坏：{directory}（{error}）",
            f"the category model at {directory} is corrupt: {error}",
            details={"path": str(directory)},
        ) from error
    model.path = directory
    return model


__all__ = ["Head", "Model", "ModelUnavailable", "Prediction", "load_model", "stack"]
