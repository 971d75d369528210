"""The category model on the project's own demo messages: API, persistence, CLI contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from xietong.apps.hotline.classifier import (
    ModelUnavailable,
    Prediction,
    ensure_demo_model,
    load_model,
    read_messages,
    train_model,
)
from xietong.apps.hotline.classifier import demo as demo_module
from xietong.apps.hotline.classifier.demo import DEMO_MESSAGES
from xietong.apps.hotline.classifier.threshold import NEVER, operating_at, select_threshold
from xietong.apps.hotline.cli import app
from xietong.kernel.errors import InvalidInput

CATEGORIES = {
    "城乡建设",
    "环境保护",
    "交通运输",
    "教育文体",
    "劳动和社会保障",
    "商贸旅游",
    "卫生计生",
}
runner = CliRunner()


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return read_messages(DEMO_MESSAGES, labelled=True)


@pytest.fixture(scope="module")
def saved(rows, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    train_model(rows, seed=0).save(root)
    return root


@pytest.fixture(scope="module")
def model(saved):
    return load_model(saved)


# --- threshold selection ------------------------------------------------------------------
def test_threshold_is_lowest_confidence_keeping_precision() -> None:
    # 100 messages, confidence falling 1.00 → 0.01; the 5 wrong ones sit at ranks 10, 40,
    # 60, 70, 80 (0-based). Precision of the top k: 39/40 at k=40 ... we want ≥ 0.97.
    confidences = np.linspace(1.0, 0.01, 100)
    correct = np.ones(100, dtype=bool)
    correct[[10, 40, 60, 70, 80]] = False
    chosen = select_threshold(confidences, correct, target=0.97)
    # Top 66 (ranks 0..65) hold 3 errors: 63/66 = 0.9545 < 0.97; top 40 hold 1: 39/40 =
    # 0.975 ≥ 0.97, top 41 hold 2: 39/41 = 0.951. Largest k with precision ≥ 0.97: 40.
    precisions = np.cumsum(correct) / np.arange(1, 101)
    expected_k = max(k for k in range(1, 101) if precisions[k - 1] >= 0.97)
    assert expected_k == 40
    assert chosen.threshold == pytest.approx(confidences[39])
    assert chosen.coverage == pytest.approx(0.40)
    assert chosen.precision == pytest.approx(39 / 40)
    # The same threshold applied again gives the same operating point.
    again = operating_at(confidences, correct, chosen.threshold)
    assert again.coverage == chosen.coverage and again.precision == chosen.precision


def test_threshold_never_splits_ties() -> None:
    # Two messages at 0.9 (one wrong): a threshold at 0.9 takes both, precision 0.5.
    chosen = select_threshold([0.95, 0.9, 0.9], [True, True, False], target=0.97)
    assert chosen.threshold == 0.95 and chosen.coverage == pytest.approx(1 / 3)


def test_threshold_when_nothing_is_precise_enough() -> None:
    chosen = select_threshold([0.9, 0.8], [False, False], target=0.97)
    assert chosen.threshold == NEVER > 1.0 and chosen.coverage == 0.0
    with pytest.raises(ValueError):
        select_threshold([0.9], [True, False])


# --- training and the saved model ----------------------------------------------------------
def test_training_is_reproducible(rows, saved, tmp_path) -> None:
    again = train_model(rows, seed=0).save(tmp_path)
    first = sorted(p.name for p in (saved / again.name).iterdir())
    assert first == sorted(p.name for p in again.iterdir())
    for name in first:
        assert (saved / again.name / name).read_bytes() == (again / name).read_bytes(), name
    other_seed = train_model(rows, seed=1)
    assert other_seed.version != again.name


def test_manifest_records_what_the_model_was_made_from(model) -> None:
    manifest = json.loads((model.path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["version"] == model.version == model.path.name
    assert set(manifest["classes"]) == CATEGORIES == set(model.classes)
    assert len(manifest["data_sha256"]) == 64
    assert manifest["threshold"] == model.threshold
    cv = manifest["cv"]
    assert cv["auto_precision"] >= cv["precision_target"] == 0.97
    assert 0 < cv["macro_f1"] <= 1 and len(cv["per_fold"]) == 5


def test_predictions(model) -> None:
    messages = [
        {
            "title": "拖欠工资",
            "text": "公司已经三个月没有发工资了，老板一直推脱，请劳动监察大队帮忙。",
        },
        {"text": "化工厂晚上偷排废气，气味刺鼻，请环保部门查处。"},
    ]
    predictions = model.predict(messages)
    assert [p.category for p in predictions] == ["劳动和社会保障", "环境保护"]
    for p in predictions:
        assert isinstance(p, Prediction)
        assert p.category == p.top3[0][0] and p.confidence == p.top3[0][1]
        assert [c for c, _ in p.top3] == list(dict.fromkeys(c for c, _ in p.top3))
        assert p.top3[0][1] >= p.top3[1][1] >= p.top3[2][1] > 0
        assert p.auto == (p.confidence >= model.threshold)
    assert model.predict([]) == []


@pytest.mark.parametrize(
    "bad", [{"title": "x"}, {"text": 3}, {"title": " ", "text": "  "}, "text", {"text": None}]
)
def test_bad_messages_are_refused(model, bad) -> None:
    with pytest.raises(InvalidInput):
        model.predict([{"text": "正常的留言"}, bad])


def test_training_refuses_bad_rows(rows) -> None:
    with pytest.raises(InvalidInput):
        train_model([{**rows[0], "label": ""}, *rows[1:]])
    with pytest.raises(InvalidInput):  # one class
        train_model([{**r, "label": "城乡建设"} for r in rows])


def test_missing_or_corrupt_model(saved, tmp_path) -> None:
    with pytest.raises(ModelUnavailable):
        load_model(tmp_path / "nothing")
    copy = tmp_path / "copy"
    version = (saved / "CURRENT").read_text().strip()
    copy.mkdir()
    for path in (saved / version).iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    load_model(copy)
    weights = next(copy.glob("head-*.weights.npy"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelUnavailable, match="checksum"):
        load_model(copy)
    weights.unlink()
    with pytest.raises(ModelUnavailable):
        load_model(copy)


def test_ensure_demo_model_uses_own_messages_without_shared_data(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(demo_module, "shared_messages_dir", lambda: None)

    class Settings:
        data_dir = tmp_path

    path = ensure_demo_model(Settings())
    assert path.parent == tmp_path / "models" / "hotline"
    assert load_model(tmp_path / "models" / "hotline").manifest["labelled_messages"] == 140
    # Present and loadable: returned as is, not retrained.
    monkeypatch.setattr(demo_module, "train_model", None)
    assert ensure_demo_model(Settings()) == path


# --- CLI contract --------------------------------------------------------------------------
def _lines(items: list) -> str:
    return "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items)


def test_classify_keeps_order_and_fields(model, saved, rows) -> None:
    items = [{"id": f"m{i}", "title": r["title"], "text": r["text"]} for i, r in enumerate(rows)]
    items.reverse()
    items.insert(3, {"id": 7, "text": "路灯坏了"})  # id of any JSON type, no title
    result = runner.invoke(app, ["classify", "--model", str(saved)], input=_lines(items) + "\n")
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["id"] for o in out] == [i["id"] for i in items]
    expected = model.predict(items)
    for record, prediction in zip(out, expected, strict=True):
        assert set(record) == {"id", "category", "confidence", "auto", "top3"}
        assert record["category"] == prediction.category in CATEGORIES
        assert record["confidence"] == prediction.confidence
        assert record["auto"] is prediction.auto
        assert record["top3"] == [{"category": c, "confidence": p} for c, p in prediction.top3]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("not json", "line 2 is not JSON"),
        ('["a list"]', "line 2 is not a JSON object"),
        ('{"id": 2, "title": "缺正文"}', "line 2: 'text' must be a string"),
        ('{"id": 2, "text": ""}', "line 2: title and text are both empty"),
    ],
)
def test_classify_refuses_bad_input_before_writing(saved, line, reason) -> None:
    good = json.dumps({"id": 1, "text": "公司拖欠工资"}, ensure_ascii=False)
    result = runner.invoke(app, ["classify", "--model", str(saved)], input=f"{good}\n{line}\n")
    assert result.exit_code == 2
    assert result.stdout == ""  # nothing written: the good first line is not emitted either
    assert reason in result.stderr and "错误" in result.stderr


def test_classify_without_model(tmp_path) -> None:
    result = runner.invoke(app, ["classify", "--model", str(tmp_path)], input="")
    assert result.exit_code == 1 and "no category model" in result.stderr


def test_train_command(tmp_path) -> None:
    result = runner.invoke(
        app, ["train", "--data", str(DEMO_MESSAGES), "--out", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert (tmp_path / "CURRENT").read_text().strip() == manifest["version"]
    assert manifest["unlabelled_messages"] == 0 and manifest["cv"]["macro_f1"] > 0
    missing = runner.invoke(app, ["train", "--data", str(tmp_path / "none.csv")])
    assert missing.exit_code == 2 and "cannot read" in missing.stderr


def test_training_without_titles(rows, tmp_path) -> None:
    untitled = [{**r, "title": ""} for r in rows]
    model = train_model(untitled)
    assert next(b for b in model.blocks if b.spec.name == "title").width == 0
    reloaded = load_model(model.save(tmp_path))
    prediction = reloaded.predict([{"title": "噪音", "text": "工地夜间施工噪音扰民"}])[0]
    assert prediction.category in CATEGORIES


def test_block_transform_matches_scikit_learn(model, rows) -> None:
    messages = [*rows[:30], {"title": "", "text": "完全没见过的词语组合ZZZ"}, {"text": "？？"}]
    for block in model.blocks:
        ours, reference = block.transform(messages), block.reference_transform(messages)
        assert ours.shape == reference.shape
        assert abs(ours - reference).max() < 1e-12, block.spec.name
