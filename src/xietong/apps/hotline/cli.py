"""``xietong hotline …``: train the category model and classify messages.

Mounted by the hotline plugin through the ``cli_apps`` hook. Failures print zh-CN then
English on stderr and exit 2 (bad input) or 1 (no usable model).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from xietong.kernel.errors import XietongError

app = typer.Typer(
    help="接诉即办 / hotline (12345): 分类模型 / category model",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

BATCH = 256


def _fail(error: XietongError) -> None:
    details = f"\n{json.dumps(error.details, ensure_ascii=False)}" if error.details else ""
    typer.echo(f"错误：{error.message_zh}\nerror: {error.message_en}{details}", err=True)
    raise typer.Exit(2 if 400 <= error.status < 500 else 1)


def _models_root() -> Path:
    from xietong.config import get_settings

    from .classifier import models_dir

    return models_dir(get_settings())


@app.command()
def train(
    data: Annotated[Path, typer.Option("--data", help="labelled CSV: id,title,text,label")],
    out: Annotated[
        Path | None, typer.Option(help="models root (default: <data_dir>/models/hotline)")
    ] = None,
    unlabelled: Annotated[
        list[Path] | None,
        typer.Option(
            help="unlabelled CSV (id,title,text); default: hot-issues.csv and "
            "replies.csv beside --data when present"
        ),
    ] = None,
    no_unlabelled: Annotated[
        bool, typer.Option("--no-unlabelled", help="use no unlabelled text")
    ] = False,
    seed: Annotated[int, typer.Option(help="random seed (same data + seed → same model)")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print the manifest as JSON")] = False,
) -> None:
    """训练分类模型（交叉验证选择自动派单阈值）/ train the category model."""
    from .classifier import read_messages, train_model
    from .classifier.demo import unlabelled_beside

    try:
        rows = read_messages(data, labelled=True)
        if no_unlabelled:
            sources: list[Path] = []
        elif unlabelled:
            sources = list(unlabelled)
        else:
            sources = unlabelled_beside(data)
        extra = [row for path in sources for row in read_messages(path, labelled=False)]
        model = train_model(rows, unlabelled=extra or None, seed=seed)
        path = model.save(out if out is not None else _models_root())
    except XietongError as error:
        _fail(error)
    cv = model.manifest["cv"]
    if as_json:
        typer.echo(json.dumps({**model.manifest, "path": str(path)}, ensure_ascii=False))
        return
    typer.echo(f"model {model.version} -> {path}")
    typer.echo(
        f"labelled {len(rows)}, unlabelled {len(extra)} ({', '.join(p.name for p in sources)})"
    )
    typer.echo(
        f"{model.manifest['config']['folds']}-fold CV: macro-F1 {cv['macro_f1']:.4f}, "
        f"accuracy {cv['accuracy']:.4f}, auto-dispatch {cv['auto_coverage']:.1%} at "
        f"precision {cv['auto_precision']:.1%} (threshold {model.threshold:.4f})"
    )


def _parse(lines: list[str]) -> list[dict[str, Any]]:
    """Every line must be a JSON object with a string ``text``; all or nothing."""
    from xietong.kernel.errors import InvalidInput

    items = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue  # blank lines (e.g. a trailing newline) are not messages
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise InvalidInput(
                f"第 {number} 行不是 JSON：{error.msg}",
                f"line {number} is not JSON: {error.msg}",
                details={"line": number},
            ) from error
        if not isinstance(item, dict):
            raise InvalidInput(
                f"第 {number} 行不是 JSON 对象",
                f"line {number} is not a JSON object",
                details={"line": number},
            )
        title, text = item.get("title"), item.get("text")
        if not isinstance(text, str) or not (isinstance(title, str) or title is None):
            raise InvalidInput(
                f"第 {number} 行缺少 text（字符串）",
                f"line {number}: 'text' must be a string ('title' a string or absent)",
                details={"line": number},
            )
        if not (text.strip() or (title or "").strip()):
            raise InvalidInput(
                f"第 {number} 行的标题和正文都为空",
                f"line {number}: title and text are both empty",
                details={"line": number},
            )
        items.append(item)
    return items


@app.command()
def classify(
    model_path: Annotated[
        Path | None,
        typer.Option("--model", help="model dir or models root (default: current model)"),
    ] = None,
) -> None:
    """从标准输入读取 JSON 行并输出分类结果 / classify JSON lines from stdin.

    In: {"id", "title", "text"} per line. Out, in the same order:
    {"id", "category", "confidence", "auto", "top3": [{"category", "confidence"}, …]}.
    A bad line stops the run before anything is written (exit 2).
    """
    from .classifier import load_model

    try:
        model = load_model(model_path if model_path is not None else _models_root())
        items = _parse(sys.stdin.read().splitlines())
    except XietongError as error:
        _fail(error)
    out = sys.stdout
    for start in range(0, len(items), BATCH):
        batch = items[start : start + BATCH]
        for item, prediction in zip(batch, model.predict(batch), strict=True):
            record = {
                "id": item.get("id"),
                "category": prediction.category,
                "confidence": prediction.confidence,
                "auto": prediction.auto,
                "top3": [{"category": c, "confidence": p} for c, p in prediction.top3],
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()
