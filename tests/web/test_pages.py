"""The kernel's pages as a person uses them: log in, see one's home, organisation, audit."""

from __future__ import annotations

from sqlalchemy import select

from tests.web.conftest import screenshot
from xietong.kernel.notify import notify
from xietong.kernel.org.models import User


def login(page, base: str, username: str, password: str = "demo") -> None:
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")


def test_login_page_lists_demo_accounts(page, live_server) -> None:
    page.goto(f"{live_server}/login")
    assert page.locator("h1").inner_text() == "登录协同政务平台"
    table = page.locator(".demo-accounts")
    assert "admin" in table.inner_text()
    assert "市卫健委" in table.inner_text()
    assert "auditor" in table.inner_text()
    screenshot(page, "login")


def test_wrong_password_shows_a_chinese_error(page, live_server) -> None:
    login(page, live_server, "wjw.clerk", "wrong")
    assert "用户名或密码错误" in page.locator(".alert.error").inner_text()


def test_admin_home_and_organisation(page, live_server) -> None:
    login(page, live_server, "admin")
    page.wait_for_url(f"{live_server}/")
    assert "您好" in page.locator("h1").inner_text()
    assert "部门" in page.locator(".grid").inner_text()
    screenshot(page, "home-admin")
    page.goto(f"{live_server}/org")
    text = page.locator("main").inner_text()
    assert "长沙市卫生健康委员会" in text
    assert "长沙市12345政务服务便民热线中心" in text
    screenshot(page, "org")


def test_clerk_sees_own_roles_but_not_the_organisation(page, live_server) -> None:
    login(page, live_server, "ga.clerk")
    page.wait_for_url(f"{live_server}/")
    assert "长沙市公安局" in page.locator("main").inner_text()
    response = page.goto(f"{live_server}/org")
    assert response.status == 403
    assert "无权" in page.locator(".alert.error").inner_text()


def test_auditor_sees_the_signed_head(page, live_server) -> None:
    login(page, live_server, "auditor")
    page.wait_for_url(f"{live_server}/")
    page.goto(f"{live_server}/audit")
    size = int(page.locator("#tree-size").inner_text())
    assert size > 0
    # newest first: the apps' demo content comes after the city's org.import
    first = page.locator("main table tbody tr").first.locator("td").first.inner_text()
    assert int(first) == size - 1
    screenshot(page, "audit")


def test_auditor_pages_back_filters_and_opens_an_entry(page, live_server) -> None:
    login(page, live_server, "auditor")
    page.wait_for_url(f"{live_server}/")
    page.goto(f"{live_server}/audit")
    size = int(page.locator("#tree-size").inner_text())
    rows = page.locator("#audit-entries tbody tr")
    assert rows.count() == min(50, size)
    if size > 50:
        page.locator("#older").click()
        first = int(rows.first.locator("td").first.inner_text())
        assert first == size - 51
    # a filter keeps only matching leaves (the city's org import is in every demo)
    page.goto(f"{live_server}/audit?q=org.import")
    actions = [
        a.strip() for a in page.locator("#audit-entries tbody td:nth-child(4)").all_inner_texts()
    ]
    assert actions and all("org.import" in a for a in actions)
    page.locator("#audit-entries tbody a").first.click()
    assert "org.import" in page.locator("#entry-action").inner_text()
    assert page.locator("#entry-details").inner_text().strip().startswith("{")
    proof = page.request.get(live_server + page.locator("#proof-link").get_attribute("href"))
    assert proof.status == 200 and proof.json()["proof"] is not None
    screenshot(page, "audit-entry")
    # a filter matching nothing says so instead of an empty table
    page.goto(f"{live_server}/audit?q=no-such-action-anywhere")
    assert page.locator("#audit-entries").count() == 0
    assert page.locator("main").inner_text().count("没有匹配的条目") == 1
    assert page.goto(f"{live_server}/audit/999999999").status == 404


def test_english_is_available(page, live_server) -> None:
    page.goto(f"{live_server}/login?lang=en")
    assert page.locator("h1").inner_text() == "Log in to xietong"


def test_anonymous_is_sent_to_login(page, live_server) -> None:
    page.goto(f"{live_server}/audit")
    assert "/login" in page.url


def test_logout(page, live_server) -> None:
    login(page, live_server, "admin")
    page.wait_for_url(f"{live_server}/")
    page.click("text=退出")
    page.wait_for_url(f"{live_server}/login")
    page.goto(f"{live_server}/org")
    assert "/login" in page.url


def test_a_stale_link_shows_a_page_and_the_section_is_highlighted(page, live_server) -> None:
    login(page, live_server, "admin")
    page.wait_for_url(f"{live_server}/")
    response = page.goto(f"{live_server}/no-such-page")
    assert response.status == 404
    assert "页面不存在" in page.locator(".alert.error").inner_text()
    assert page.locator("nav.nav a").count() >= 4  # the navigation is still there
    page.goto(f"{live_server}/org")
    assert page.locator("nav.nav a[aria-current=page]").inner_text() == "组织机构"
    screenshot(page, "not-found")


def test_the_bell_counts_unread_messages_and_opening_one_follows_its_link(
    page, live_platform
) -> None:
    base, ctx = live_platform
    with ctx.db.read() as session:
        user_id = session.scalar(select(User.id).where(User.username == "wjw.clerk"))
    login(page, base, "wjw.clerk")
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/notifications")
    page.click("text=全部标为已读")  # the demo may have told this clerk something already
    with ctx.db.write_session() as session, session.begin():
        notify(
            session,
            [user_id],
            "test.notice",
            title_zh="请核对出生医学证明",
            title_en="Check the birth certificate",
            body_zh="申请人已补正材料",
            link="/workflow/tasks",
        )
    page.goto(f"{base}/")
    assert page.locator(".topbar .bell .count").inner_text() == "1"
    page.click(".topbar .bell")
    assert "请核对出生医学证明" in page.locator("ul.messages").inner_text()
    screenshot(page, "notifications")
    page.click("ul.messages button.linklike")
    page.wait_for_url(f"{base}/workflow/tasks")
    assert page.locator(".topbar .bell .count").count() == 0  # read now


def test_a_visitor_finds_the_public_services_without_logging_in(page, live_server) -> None:
    page.goto(f"{live_server}/")
    links = page.locator("nav.nav a").all_inner_texts()
    assert {"办事服务", "我要反映", "常见问题"} <= set(links)
    assert "我的工作" not in links and "任务督办" not in links
    page.click("main >> text=我要反映")
    page.wait_for_url(f"{live_server}/hotline/new")
    screenshot(page, "home-visitor")


def test_a_citizen_sees_public_services_not_staff_work(page, live_server) -> None:
    login(page, live_server, "citizen.zhang")
    page.wait_for_url(f"{live_server}/")
    links = set(page.locator("nav.nav a").all_inner_texts())
    assert {"办事服务", "我的办件", "我要反映"} <= links
    assert not links & {"我的工作", "流程", "任务督办", "数据共享"}
    assert "我的办件" in page.locator("main .grid").inner_text()
    screenshot(page, "home-citizen")
