"""The layer rules import-linter enforces cover every app there is."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import xietong.apps

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_every_app_is_in_the_independence_contract() -> None:
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    (independence,) = [c for c in contracts if c["type"] == "independence"]
    apps = {
        f"xietong.apps.{info.name}"
        for info in pkgutil.iter_modules(xietong.apps.__path__)
        if info.ispkg
    }
    assert apps and apps == set(independence["modules"])
