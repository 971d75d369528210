"""A live server with the demo city, and a headless Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from tests.conftest import require
from xietong.app import create_app
from xietong.config import Settings
from xietong.demo import load_demo
from xietong.kernel.calendar import WorkCalendar
from xietong.kernel.context import Context
from xietong.kernel.db import Database
from xietong.kernel.keys import Keys, ensure_keys
from xietong.plugins import plugin_manager

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(live_platform: tuple[str, Context]) -> str:
    return live_platform[0]


def _open(data: Path) -> Context:
    settings = Settings(data_dir=data, database_url=f"sqlite:///{data / 'xietong.db'}")
    db = Database(settings.sqlalchemy_url)
    ctx = Context(
        settings=settings, db=db, keys=Keys.load(settings.keys_dir), hooks=plugin_manager().hook
    )
    ctx.calendar = WorkCalendar(db)
    return ctx


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo city loaded once per test session; each module serves a copy of it.

    The dispatch model is trained beforehand on the project's own demo messages: the
    demo would otherwise train on the shared corpus, which takes minutes — the pages do
    not need a good model, only a real one.
    """
    from xietong.apps.hotline.classifier import models_dir, read_messages, train_model
    from xietong.apps.hotline.classifier.demo import DEMO_MESSAGES
    from xietong.migrate import upgrade

    data = tmp_path_factory.mktemp("demo-template")
    settings = Settings(data_dir=data, database_url=f"sqlite:///{data / 'xietong.db'}")
    ensure_keys(settings.keys_dir)
    train_model(read_messages(DEMO_MESSAGES, labelled=True)).save(models_dir(settings))
    upgrade(Database(settings.sqlalchemy_url).engine)
    ctx = _open(data)
    load_demo(ctx)
    ctx.close()
    return data


@pytest.fixture(scope="module")
def live_platform(
    tmp_path_factory: pytest.TempPathFactory, demo_template: Path
) -> Iterator[tuple[str, Context]]:
    """The demo city served on a free port, and its context (to arrange what a page shows)."""
    data = tmp_path_factory.mktemp("live") / "data"
    shutil.copytree(demo_template, data)
    ctx = _open(data)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "server did not start"
    yield f"http://127.0.0.1:{port}", ctx
    server.should_exit = True
    thread.join(timeout=10)
    ctx.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    require(os.path.exists(CHROMIUM), f"Chromium not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    yield page
    context.close()


def screenshot(page: object, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path
