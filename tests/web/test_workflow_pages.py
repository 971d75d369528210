"""The workbench in a browser: a clerk's todo, the task page, the diagram with the
current nodes highlighted, and a case moving through a parallel review to approval."""

from __future__ import annotations

from tests.web.conftest import screenshot
from tests.web.test_pages import login


def _open_first_task(page, base: str, name: str) -> None:
    page.goto(f"{base}/workflow/tasks")
    page.locator("#task-list a", has_text=name).first.click()
    page.wait_for_selector("h1")


def test_case_moves_through_the_workbench(page, live_server) -> None:
    login(page, live_server, "scjg.clerk")
    page.wait_for_url(f"{live_server}/")
    page.goto(f"{live_server}/workflow/tasks")
    assert "受理" in page.locator("#task-list").inner_text()
    screenshot(page, "workflow-todo")

    _open_first_task(page, live_server, "受理")
    page.fill("#opinion", "材料齐全，予以受理")
    page.click("#complete-form button[type=submit]")
    page.wait_for_url(f"{live_server}/workflow/tasks")
    assert "办理成功" in page.locator(".alert.success").inner_text()

    # the clerk also holds 审核: both parallel reviews are now on the list
    todo = page.locator("#task-list").inner_text()
    assert "材料审核" in todo and "现场核查" in todo
    _open_first_task(page, live_server, "材料审核")
    instance_link = page.locator(".page-header a").first.get_attribute("href")
    page.fill("#opinion", "材料审核通过")
    page.click("#complete-form button[type=submit]")
    page.wait_for_url(f"{live_server}/workflow/tasks")

    page.goto(f"{live_server}{instance_link}")
    page.wait_for_selector("#bpmn-canvas[data-rendered=true]")
    # one branch waits at the join, the other is at 现场核查
    current = page.locator("[data-node]").all_inner_texts()
    assert sorted(current) == sorted(["汇合", "现场核查"])
    assert page.locator(".current-node").count() >= 1
    screenshot(page, "workflow-instance")


def test_send_back_and_bad_operation(page, live_server) -> None:
    login(page, live_server, "scjg.clerk")
    page.wait_for_url(f"{live_server}/")
    _open_first_task(page, live_server, "受理")
    page.fill("#opinion", "受理")
    page.click("#complete-form button[type=submit]")
    page.wait_for_url(f"{live_server}/workflow/tasks")
    _open_first_task(page, live_server, "现场核查")
    form = page.locator("form[data-op=send_back]")
    assert "受理" in form.locator("select").inner_text()
    form.locator("button").click()
    page.wait_for_url(f"{live_server}/workflow/tasks")
    assert "退回成功" in page.locator(".alert.success").inner_text()
    screenshot(page, "workflow-after-send-back")


def test_definition_page_draws_the_diagram(page, live_server) -> None:
    login(page, live_server, "admin")
    page.wait_for_url(f"{live_server}/")
    page.goto(f"{live_server}/workflow")
    page.click("text=business_license_review")
    page.wait_for_selector("#bpmn-canvas[data-rendered=true]")
    assert page.locator(".djs-element").count() > 8
    screenshot(page, "workflow-definition")
