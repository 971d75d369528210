"""出生一件事 in Chromium: a citizen applies once, four clerks of four departments
complete their sub-cases, the citizen sees all results together and rates; the bad
rating's rectification comes back to the citizen."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from tests.web.conftest import screenshot


def login(page, base: str, username: str, password: str = "demo") -> None:
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def _files(tmp_path: Path) -> dict[str, Path]:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 256
    pdf = b"%PDF-1.7\n" + b"%" * 256
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("OFD.xml", "<ofd:OFD xmlns:ofd='http://www.ofdspec.org/2016'/>")
    out = {
        "parents_id": ("父母身份证.pdf", pdf + b"1"),
        "delivery_record": ("分娩记录.pdf", pdf + b"2"),
        "hukou_book": ("户口簿.ofd", buffer.getvalue()),
        "marriage_cert": ("结婚证.png", png + b"3"),
        "baby_photo": ("照片.png", png + b"4"),
    }
    paths = {}
    for code, (name, data) in out.items():
        path = tmp_path / name
        path.write_bytes(data)
        paths[code] = path
    return paths


FORM = {
    "baby_name": "张小宝",
    "birth_date": "2026-11-20",
    "birth_place": "湖南省妇幼保健院",
    "mother_name": "李红",
    "mother_id_number": "430103199207082468",
    "father_name": "张晓明",
    "father_id_number": "430102199003151234",
    "household_address": "长沙市芙蓉区五一大道 1 号",
    "guardian_mobile": "13800000001",
    "mailing_address": "长沙市芙蓉区五一大道 1 号",
}
CLERKS = [
    ("wjw.clerk", "出生医学证明首次签发", {"birth_cert_no": "T430000123"}),
    ("ga.clerk", "出生登记（户口登记）", {"id_number": "430102202611200011"}),
    ("yb.clerk", "城乡居民基本医疗保险参保登记", {"insurance_no": "43010000012345"}),
    ("rs.clerk", "社会保障卡申领", {"card_no": "SB4301000099"}),
]


def test_birth_bundle_in_the_browser(browser, live_server, tmp_path) -> None:
    base = live_server
    citizen = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = citizen.new_page()
    login(page, base, "citizen.zhang")
    page.goto(f"{base}/services")
    assert "出生一件事" in page.locator("#life-events").inner_text()
    screenshot(page, "services-portal")
    page.fill("#q", "医保")
    page.click("form[role=search] button")
    assert "城乡居民基本医疗保险参保登记" in page.locator("#search-results").inner_text()
    page.goto(f"{base}/services")
    page.click("text=出生一件事")
    page.wait_for_url(f"{base}/services/bundles/birth")
    # the merged form asks each field once
    assert page.locator("input[name=baby_name]").count() == 1
    assert page.locator("input[name=birth_cert_no]").count() == 0
    assert page.locator("input[name=material_hukou_book]").count() == 1
    for name, value in FORM.items():
        page.fill(f"[name={name}]", value)
    page.select_option("[name=baby_gender]", "男")
    for code, path in _files(tmp_path).items():
        page.set_input_files(f"[name=material_{code}]", str(path))
    screenshot(page, "services-bundle-form")
    page.click("#apply-submit")
    page.wait_for_url(f"{base}/services/applications/**")
    number = page.locator("#app-number").inner_text()
    assert number.startswith("430100-")
    progress = page.locator("#progress").inner_text()
    assert "办理中" in progress and "等待前置事项办结" in progress
    screenshot(page, "services-application-submitted")

    for username, matter, outputs in CLERKS:
        staff = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
        clerk = staff.new_page()
        login(clerk, base, username)
        clerk.goto(f"{base}/services/workbench")
        row = clerk.locator("#work-list tr", has_text=number)
        assert matter in row.inner_text()
        row.locator("a").click()
        clerk.wait_for_url(f"{base}/services/workbench/**")
        shown = clerk.locator("#sub-case-form").inner_text()
        if username == "ga.clerk":
            assert "T430000123" in shown  # filled from the 卫健委's result
            assert "社保卡邮寄地址" not in shown  # data minimisation
            screenshot(clerk, "services-sub-case-ga")
        for name, value in outputs.items():
            clerk.fill(f"#out-{name}", value)
        clerk.click("#approve-form button[type=submit]")
        clerk.wait_for_load_state()
        assert "已办结" in clerk.locator("#flash").inner_text()
        staff.close()

    page.goto(f"{base}/services/applications/{number}")
    results = page.locator("#results-table").inner_text()
    for value in ("T430000123", "430102202611200011", "43010000012345", "SB4301000099"):
        assert value in results
    screenshot(page, "services-results-together")
    page.select_option("#level_bundle", "5")
    department_selects = page.locator("#rating-form select[name^=level_dept_]")
    assert department_selects.count() == 4
    for index in range(4):
        department_selects.nth(index).select_option("4")
    ga_select = page.locator("#rating-form .form-row", has_text="公安局").locator("select")
    ga_select.select_option("2")
    page.locator("#rating-form .form-row", has_text="公安局").locator("input").fill(
        "窗口排队时间太长"
    )
    page.click("#rating-form button[type=submit]")
    page.wait_for_load_state()
    rating = page.locator("#rating").inner_text()
    assert "不满意" in rating and "整改中" in rating
    screenshot(page, "services-rated")

    head = browser.new_context(locale="zh-CN").new_page()
    login(head, base, "ga.approver")
    head.goto(f"{base}/services/rectifications")
    head.fill("textarea[name=outcome]", "已增设自助取号机，高峰时段增开两个窗口")
    head.click("text=整改完成")
    head.wait_for_load_state()
    screenshot(head, "services-rectification")
    page.reload()
    assert "已增设自助取号机" in page.locator("#rating").inner_text()
    citizen.close()
