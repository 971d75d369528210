"""任务督办 in the browser: a task force decomposes a goal, a department reports
progress, the overview shows the warnings, the analysis answers what-if.

Screenshots go to test-artifacts/tasks-*.png.
"""

from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import expect
from sqlalchemy import select

from tests.kernel.test_files import PDF, PNG, XLSX
from tests.web.conftest import screenshot
from tests.web.test_pages import login
from xietong.apps.tasks import service
from xietong.apps.tasks.rules import TaskInput
from xietong.kernel import clock
from xietong.kernel.bus.relay import InProcessBus, relay_once
from xietong.kernel.org.models import User
from xietong.kernel.org.scopes import actor_for_user


def logout(page) -> None:
    page.click("form[action='/logout'] button")


def test_task_force_decomposes_reports_and_analyses(page, live_server) -> None:
    today = clock.local_now().date().isoformat()
    login(page, live_server, "supervisor")
    page.wait_for_url(f"{live_server}/")
    page.click("nav.nav >> text=任务督办")
    page.wait_for_url(f"{live_server}/tasks")
    assert "长沙市餐饮油烟和消防安全综合整治专班" in page.locator("#forces").inner_text()
    screenshot(page, "tasks-list")

    # the task force sets a goal ...
    page.click("#new-force summary")
    page.fill("#nf-title", "夜间经济街区食品安全提升专班")
    page.select_option("#nf-sup", "430100-dcs")
    page.fill("#nf-goal", "夜市摊点持证率")
    page.fill("#nf-unit", "%")
    page.fill("#nf-base", "60")
    page.fill("#nf-target", "98")
    page.fill("#nf-start", today)
    page.fill("#nf-days", "40")
    page.fill("#nf-basis", "长沙市夜间经济发展三年行动方案")
    page.click("#new-force button[type=submit]")
    page.wait_for_selector("#flash")
    assert "已创建专班任务" in page.locator("#flash").inner_text()
    assert page.locator("#task-title").inner_text() == "夜间经济街区食品安全提升专班"
    assert "夜市摊点持证率" in page.locator("#goal").inner_text()
    root_url = page.url

    # ... and decomposes it to the market regulator, with the health commission helping
    page.click("#decompose summary")
    page.fill("#d-title", "夜市摊点食品经营备案清理")
    page.select_option("#d-dept", "430100-scjg")
    page.select_option("#d-coop", ["430100-wjw"])
    page.fill("#d-owner", "scjg.approver")
    page.fill("#d-start", today)
    page.fill("#d-days", "15")
    page.click("#decompose button[type=submit]")
    page.wait_for_selector("#flash")
    assert "已分解任务" in page.locator("#flash").inner_text()
    child_url = page.url
    assert child_url != root_url
    assert "市市场监管局" in page.locator("main").inner_text()
    screenshot(page, "tasks-decomposed")
    page.goto(root_url.replace("/tasks/", "/tasks/") + "/tree")
    assert "夜市摊点食品经营备案清理" in page.locator("#tree").inner_text()
    assert "汇总 0%" in page.locator("#tree").inner_text()  # the parent rolls up its child
    screenshot(page, "tasks-tree")
    logout(page)

    # the department reports progress; going down without a reason is refused
    login(page, live_server, "scjg.clerk")
    page.wait_for_url(f"{live_server}/")
    page.goto(child_url)
    page.fill("#percent", "40")
    page.fill("#report-text", "已完成五一商圈、太平街夜市 86 个摊点备案核查")
    page.set_input_files(
        "#att-files", {"name": "备案核查台账.xlsx", "mimeType": "application/zip", "buffer": XLSX}
    )
    page.fill("#att-name", "OA 台账")
    page.fill("#att-ref", "https://oa.example.gov.cn/files/202603-taizhang.xlsx")
    page.click("#report-submit")
    page.wait_for_selector("#flash")
    assert "已报送进展" in page.locator("#flash").inner_text()
    assert "备案核查台账.xlsx" in page.locator("#reports a.attachment").first.inner_text()
    assert page.locator("#progress").inner_text() == "40%"
    page.fill("#percent", "20")
    page.fill("#report-text", "回退")
    page.click("#report-submit")
    page.wait_for_selector("#flash.error")
    assert "请说明原因" in page.locator("#flash").inner_text()
    assert page.locator("#progress").inner_text() == "40%"
    screenshot(page, "tasks-progress")
    page.goto(f"{live_server}/tasks/board/430100-scjg")
    assert "夜市摊点食品经营备案清理" in page.locator("[data-status=in_progress]").inner_text()
    screenshot(page, "tasks-board")
    logout(page)

    # the supervising office sees red and yellow on the demo task force's overview
    login(page, live_server, "supervisor")
    page.wait_for_url(f"{live_server}/")
    page.goto(f"{live_server}/tasks")
    page.click("#forces >> text=长沙市餐饮油烟和消防安全综合整治专班")
    demo_url = page.url
    page.goto(demo_url + "/overview")
    assert int(page.locator("#count-red").inner_text()) >= 2
    assert int(page.locator("#count-yellow").inner_text()) >= 1
    page.wait_for_selector("#chart-levels canvas")
    page.wait_for_selector("#chart-departments canvas")
    assert "油烟净化设施安装整改督导" in page.locator("#warning-list").inner_text()
    assert page.locator("#branches tbody tr").count() >= 1  # each branch's rolled-up progress
    screenshot(page, "tasks-overview")

    page.goto(demo_url + "/gantt")
    page.wait_for_selector("#gantt .bar-wrapper")
    assert page.locator("#gantt .bar-wrapper").count() == 11
    assert page.locator("#gantt .bar-wrapper.bar-red").count() >= 2
    screenshot(page, "tasks-gantt")

    # the analysis answers in the browser: what if the licence check slips 30 days?
    page.goto(demo_url.replace("/tasks/", "/tasks/analysis?root_id="))
    assert page.locator("#critical-path li").count() >= 1
    # the demo city loads no local days: the plan is counted in the nationwide calendar
    assert page.locator("#calendar").inner_text() == "按全国工作日历计算"
    assert (
        "无证经营餐饮单位查处" in page.locator("#blocking").inner_text()
        or page.locator("#blocking li").count() >= 1
    )
    page.select_option("#wi-task", label="从业人员健康证明核查（市卫健委）")
    page.fill("#wi-slip", "40")
    page.click("#what-if-submit")
    page.wait_for_selector("#what-if-answer")
    answer = page.locator("#what-if-answer").inner_text()
    assert "长沙市餐饮油烟和消防安全综合整治专班" in answer and "将逾期" in answer
    screenshot(page, "tasks-analysis")


def _actor(ctx, username: str):
    with ctx.db.read() as session:
        user = session.scalars(select(User).where(User.username == username)).one()
        return actor_for_user(session, user)


def test_owner_closes_a_task_with_uploaded_evidence(page, live_platform) -> None:
    base, ctx = live_platform
    today = clock.local_now().date()
    supervisor = _actor(ctx, "supervisor")
    force = service.create_task(
        ctx,
        supervisor,
        TaskInput(
            title="农贸市场冷链食品溯源专班",
            department_code="430100-dcs",
            supervising_department_code="430100-dcs",
            planned_start=today,
            planned_end=today + timedelta(days=30),
        ),
    )
    task = service.create_task(
        ctx,
        supervisor,
        TaskInput(
            title="冷链食品经营户溯源码张贴核查",
            department_code="430100-scjg",
            parent_id=force.id,
            owner="scjg.approver",
            planned_start=today,
            duration_days=10,
        ),
    )
    url = f"{base}/tasks/{task.id}"

    # the owner reports the work done, with the ledger attached
    login(page, base, "scjg.approver")
    page.wait_for_url(f"{base}/")
    page.goto(url)
    page.fill("#percent", "100")
    page.fill("#report-text", "全市 312 户冷链经营户溯源码张贴核查完毕")
    page.set_input_files(
        "#att-files", {"name": "溯源核查台账.xlsx", "mimeType": "application/zip", "buffer": XLSX}
    )
    page.click("#report-submit")
    expect(page.locator("#flash")).to_contain_text("已报送进展")
    expect(page.locator("#task-status")).to_have_text("已完成")

    # a picture named .pdf is refused as evidence, and nothing is requested
    page.set_input_files(
        "#ev-files", {"name": "验收报告.pdf", "mimeType": "application/pdf", "buffer": PNG}
    )
    page.click("#closure-submit")
    expect(page.locator("#flash.error")).to_contain_text("与内容（png）不符")
    expect(page.locator("#closure")).to_contain_text("尚未申请销号")

    # the real report goes up; the closure waits for the supervising office
    page.set_input_files(
        "#ev-files",
        {"name": "溯源码核查验收报告.pdf", "mimeType": "application/pdf", "buffer": PDF},
    )
    page.fill("#ev-note", "已逐户核查并抽查 30 户")
    page.click("#closure-submit")
    expect(page.locator("#flash")).to_contain_text("已提交销号申请")
    expect(page.locator("#closure")).to_contain_text("审批中")
    evidence = page.locator("#closure a.attachment", has_text="溯源码核查验收报告.pdf")
    with page.expect_download() as download:
        evidence.click()
    assert download.value.suggested_filename == "溯源码核查验收报告.pdf"
    screenshot(page, "tasks-closure-requested")
    logout(page)

    # the supervising office approves in its todo list, with an opinion
    login(page, base, "supervisor")
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/workflow/tasks")
    page.locator("#task-list a", has_text="督办部门审核销号").first.click()
    page.wait_for_selector("#complete-form")
    page.check("input[name=outcome][value=approve]")
    page.fill("#opinion", "佐证材料齐全，同意销号")
    page.click("#complete-form button[type=submit]")
    page.wait_for_url(f"{base}/workflow/tasks")
    bus = InProcessBus(ctx)  # what the worker does: deliver the decision to the app
    while relay_once(ctx, bus):
        pass
    page.goto(url)
    expect(page.locator("#task-status")).to_have_text("已销号")
    expect(page.locator("#closure")).to_contain_text("佐证材料齐全，同意销号")
    expect(page.locator("#closure")).to_contain_text("已同意")
    screenshot(page, "tasks-closed")
