"""接诉即办 in a browser: a citizen's request through intake, automatic or manual
dispatch, the department's acceptance and reply, to the citizen's rating; the
centre's overview with hotspot charts; the routing table.

The server is the demo city with a small model trained beforehand on the project's own
demo messages (``ensure_demo_model`` then finds it instead of training on the shared
data, which takes minutes)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from tests.web.conftest import _free_port, screenshot
from tests.web.test_pages import login
from xietong.app import create_app
from xietong.config import Settings
from xietong.demo import load_demo
from xietong.demo.city import DEPARTMENTS
from xietong.kernel.calendar import WorkCalendar
from xietong.kernel.context import Context
from xietong.kernel.db import Database
from xietong.kernel.keys import Keys, ensure_keys

CLERKS = {d.short_name: f"{d.key}.clerk" for d in DEPARTMENTS} | {"岳麓区住建局": "ylzj.clerk"}


@pytest.fixture(scope="module")
def hotline_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from xietong.apps.hotline.classifier import models_dir, read_messages, train_model
    from xietong.apps.hotline.classifier.demo import DEMO_MESSAGES
    from xietong.migrate import upgrade
    from xietong.plugins import plugin_manager

    data = tmp_path_factory.mktemp("hotline-live")
    settings = Settings(data_dir=data, database_url=f"sqlite:///{data / 'xietong.db'}")
    ensure_keys(settings.keys_dir)
    train_model(read_messages(DEMO_MESSAGES, labelled=True)).save(models_dir(settings))
    db = Database(settings.sqlalchemy_url)
    upgrade(db.engine)
    ctx = Context(
        settings=settings, db=db, keys=Keys.load(settings.keys_dir), hooks=plugin_manager().hook
    )
    ctx.calendar = WorkCalendar(db)
    load_demo(ctx)
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
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    ctx.close()


def _logout(page) -> None:
    page.context.clear_cookies()


def test_request_from_intake_to_rating(page, hotline_server) -> None:
    base = hotline_server
    # 1. a citizen, not signed in, fills the form
    page.goto(f"{base}/hotline/new")
    page.fill("#text", "")
    page.fill("#contact_phone", "13912345678")
    page.click("#ticket-form button[type=submit]")
    assert "请填写诉求内容" in page.locator("#form-error").inner_text()
    page.fill("#title", "夜间施工噪音扰民")
    page.fill(
        "#text", "雨花区某工地每天晚上十一点以后还在施工，噪音很大，严重影响休息，请环保部门处理。"
    )
    page.select_option("#district_code", "430111")
    page.fill("#contact_name", "张晓明")
    page.fill("#contact_phone", "13912345678")
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    page.set_input_files(
        "#files", files=[{"name": "现场.png", "mimeType": "image/png", "buffer": png}]
    )
    screenshot(page, "hotline-citizen-form")
    page.click("#ticket-form button[type=submit]")
    page.wait_for_selector("#ticket-number")
    number = page.locator("#ticket-number").inner_text()
    key = page.locator("#ticket-key").inner_text()
    status = page.locator("#ticket-status").inner_text()
    assert re.fullmatch(r"12345\d{14}", number) and key
    assert "139****5678" in page.content() and "13912345678" not in page.content()
    screenshot(page, "hotline-citizen-receipt")
    page.goto(f"{base}/hotline/my")
    assert number in page.locator("#my-tickets").inner_text()

    # 2. automatic dispatch, or the dispatcher picks a suggestion
    _logout(page)
    login(page, base, "dispatcher")
    page.wait_for_url(f"{base}/")
    if status == "待派单":
        page.goto(f"{base}/hotline/queue?q={number}")
        item = page.locator(f".queue-item[data-number='{number}']")
        screenshot(page, "hotline-dispatcher-queue")
        assert item.locator(".suggestions button").count() >= 1
        item.locator(".suggestions button:not([disabled])").first.click()
        page.wait_for_url(f"{base}/hotline/queue")
        assert "派单成功" in page.locator(".alert.success").inner_text()
    page.goto(f"{base}/hotline/tickets/{number}")
    assert page.locator("#ticket-status").inner_text() == "已派单"
    assert "139****5678" in page.locator("#contact").inner_text()  # masked for dispatchers
    department = page.locator("#ticket-department").inner_text()
    assert "现场.png" in page.content()
    screenshot(page, "hotline-dispatched")

    # 3. the department accepts and replies; it may reveal the full phone number
    _logout(page)
    login(page, base, CLERKS[department])
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/hotline/inbox")
    assert number in page.locator("#inbox").inner_text()
    screenshot(page, "hotline-inbox")
    page.click(f"#inbox a:text('{number}')")
    assert page.locator("#contact").inner_text() == "139****5678"
    page.click("#reveal-contact")  # an audited reveal, shown on that page only
    assert page.locator("#contact").inner_text() == "13912345678"
    assert page.locator("#contact-name").inner_text() == "张晓明"
    screenshot(page, "hotline-contact-revealed")
    page.click("#accept-form button[type=submit]")
    page.wait_for_selector("#reply-form")
    assert page.locator("#ticket-status").inner_text() == "办理中"
    page.fill("#reply-text", "")
    page.click("#reply-form button[type=submit]")
    assert "请填写答复内容" in page.locator("#op-error").inner_text()
    page.fill("#reply-text", "您好，经现场核查，该工地未办理夜间施工许可，已责令停止夜间施工。")
    screenshot(page, "hotline-reply")
    page.click("#reply-form button[type=submit]")
    page.wait_for_selector(".alert.success")
    assert page.locator("#ticket-status").inner_text() == "已答复"

    # 4. the citizen rates the reply with the key from the receipt
    _logout(page)
    page.goto(f"{base}/hotline/my/{number}?key={key}")
    assert "已责令停止夜间施工" in page.locator("#reply").inner_text()
    page.check("#rate-form input[value=satisfied]")
    page.click("#rate-form button[type=submit]")
    page.wait_for_selector("#ticket-rating")
    assert page.locator("#ticket-rating").inner_text() == "满意"
    assert page.locator("#ticket-status").inner_text() == "已办结"
    steps = page.locator("#timeline li").evaluate_all("els => els.map(e => e.dataset.step)")
    assert steps[0] == "intake" and steps[-1] == "rating" and "reply" in steps
    screenshot(page, "hotline-rated")


def test_centre_overview_and_routing_table(page, hotline_server) -> None:
    base = hotline_server
    login(page, base, "supervisor")
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/hotline")
    page.wait_for_selector("#hotspot-chart[data-rendered=true]")
    assert int(page.locator("#overdue-count").inner_text()) >= 1
    assert page.locator("#hotspots tbody tr").count() >= 1
    assert page.locator("#hotspot-chart canvas").count() == 1
    screenshot(page, "hotline-centre")
    _logout(page)
    login(page, base, "dispatcher")
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/hotline/queue")
    assert page.locator(".queue-item").count() >= 1
    assert page.locator(".queue-item .suggestions button").count() >= 1
    screenshot(page, "hotline-queue")
    _logout(page)
    login(page, base, "admin")
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/hotline/routes")
    assert "岳麓区住建局" in page.locator("#routes").inner_text()
    page.select_option("#route-form #category", "交通运输")
    page.select_option("#route-form #district_code", "430112")
    page.select_option("#route-form #department_code", "430100-zj")
    page.click("#route-form button[type=submit]")
    page.wait_for_selector(".alert.success")
    assert "望城区" in page.locator("#routes").inner_text()
    screenshot(page, "hotline-routes")
