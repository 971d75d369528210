"""Data sharing in a browser: the 公安局 requests the 卫健委's 出生医学证明 (有条件共享),
the 卫健委 approves it in its inbox, the 公安局's system queries through the gateway,
gets masked rows, and verifies the inclusion proof of its own query."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from tests.web.conftest import _free_port, _open, screenshot
from tests.web.test_pages import login
from xietong.apps.exchange.demo_sharing import BIRTH
from xietong.apps.exchange.models import Resource
from xietong.apps.exchange.receipts import verify_receipt
from xietong.apps.exchange.sharing_models import Connector


@pytest.fixture(scope="module")
def sharing_server(
    tmp_path_factory: pytest.TempPathFactory, demo_template: Path
) -> Iterator[tuple[str, Any]]:
    """The demo city served with its background worker (approvals arrive as events)."""
    from xietong.app import create_app
    from xietong.kernel.bus.worker import start_background_worker

    data = tmp_path_factory.mktemp("exchange-live") / "data"
    shutil.copytree(demo_template, data)
    ctx = _open(data)
    stop_worker = start_background_worker(ctx, "exchange-test")
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}", ctx
    server.should_exit = True
    thread.join(timeout=10)
    stop_worker()
    ctx.close()


def _as(browser: Any, base: str, username: str) -> Any:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1360, "height": 900})
    page = context.new_page()
    login(page, base, username)
    page.wait_for_url(f"{base}/")
    return page


def test_request_approve_query_masked_and_verify(browser: Any, sharing_server: Any) -> None:
    base, ctx = sharing_server
    consumer = _as(browser, base, "ga.data")
    consumer.goto(f"{base}/exchange?q=出生医学证明")
    assert "出生医学证明信息" in consumer.locator("#catalogue").inner_text()
    screenshot(consumer, "exchange-catalogue")
    consumer.locator("#catalogue a", has_text="出生医学证明信息").first.click()
    consumer.wait_for_selector("#request-form")
    # keep five items: the number, the baby's and mother's names and the mother's ID
    for item in ("新生儿性别", "出生地点", "父亲姓名", "父亲公民身份号码", "签发机构", "签发日期"):
        consumer.locator(f"#request-form input[value='{item}']").uncheck()
    consumer.fill("#purpose", "出生一件事：新生儿户口登记时核验出生医学证明")
    consumer.fill("#legal_basis", "《国务院办公厅关于加快推进“一件事一次办”的指导意见》")
    screenshot(consumer, "exchange-request-form")
    consumer.click("#request-form button[type=submit]")
    consumer.wait_for_url(f"{base}/exchange/requests")
    assert "待审批" in consumer.locator("#flash").inner_text()
    screenshot(consumer, "exchange-my-requests")

    provider = _as(browser, base, "wjw.data")
    provider.goto(f"{base}/exchange/inbox")
    row = provider.locator("#inbox tr", has_text="长沙市公安局").filter(has_text="待审批")
    row.locator("textarea[name=opinion]").fill("同意。仅限户口登记核验使用。")
    screenshot(provider, "exchange-inbox")
    row.locator("button[value=approve]").click()
    provider.wait_for_url(f"{base}/exchange/inbox")
    assert "已提交审批意见" in provider.locator("#flash").inner_text()

    # the worker turns the workflow's event into the grant
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        consumer.goto(f"{base}/exchange/grants")
        received = (
            consumer.locator("#received").inner_text()
            if consumer.locator("#received").count()
            else ""
        )
        if "出生医学证明信息" in received:
            break
        time.sleep(0.5)
    assert "出生医学证明信息" in received and "有效" in received
    screenshot(consumer, "exchange-grants")

    keys = json.loads((ctx.settings.data_dir / "exchange-demo" / "systems.json").read_text())
    headers = {"X-API-Key": keys["ga-hjxt"], "X-Xietong-Client": "ga/hukou-birth-registration"}
    answer = httpx.post(
        f"{base}/api/v1/exchange/resources/{BIRTH}/query", json={"limit": 5}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["items"] == [
        "出生医学证明编号",
        "新生儿姓名",
        "出生时间",
        "母亲姓名",
        "母亲公民身份号码",
    ]
    assert data["masked"] == {
        "新生儿姓名": "name",
        "母亲姓名": "name",
        "母亲公民身份号码": "id_number",
    }
    first = data["rows"][0]
    assert first["母亲公民身份号码"][6:14] == "********" and "*" in first["新生儿姓名"]
    assert "父亲姓名" not in first
    index = int(answer.headers["X-Xietong-Audit-Index"])
    receipt = httpx.get(f"{base}/api/v1/exchange/receipts/{index}", headers=headers).json()
    payload = verify_receipt(receipt, ctx.keys.public_key_raw)
    assert payload["consumer_system"] == "ga-hjxt" and payload["row_count"] == 5
    assert payload["response_sha256"] == data["response_sha256"]
    # the rows came over HTTP from the demo's provider service, started with the server
    demo = ctx.settings.data_dir / "exchange-demo"
    port = json.loads((demo / "provider.json").read_text())["port"]
    assert httpx.get(f"http://127.0.0.1:{port}/health").text == "ok"
    with ctx.db.read() as session:
        connector = session.scalars(
            select(Connector)
            .join(Resource, Resource.id == Connector.resource_id)
            .where(Resource.code == BIRTH)
        ).one()
        kind, url = connector.kind, connector.config["url"]
    assert kind == "rest"
    assert url == f"http://127.0.0.1:{port}/wjw/cszm"

    provider.goto(f"{base}/exchange/stats")
    provider.wait_for_function("document.querySelector('#chart-queries canvas') !== null")
    screenshot(provider, "exchange-stats")
    consumer.goto(f"{base}/exchange/resources/{BIRTH}")
    provider.goto(f"{base}/exchange/resources/{BIRTH}")
    assert provider.locator("#connector").count() == 1  # the provider sees its connector
    screenshot(provider, "exchange-resource-provider")
    for path, text in (
        ("/exchange/inbox?lang=en", "Approval inbox"),
        ("/exchange?lang=en", "Resource catalogue"),
        ("/exchange/grants?lang=en", "Given by my department"),
        ("/exchange/stats?lang=en", "Sharing statistics"),
        (f"/exchange/resources/{BIRTH}?lang=en", "Test connection"),
    ):
        provider.goto(f"{base}{path}")
        assert text in provider.content(), path
    screenshot(provider, "exchange-resource-provider-en")
    for page in (consumer, provider):
        page.context.close()
