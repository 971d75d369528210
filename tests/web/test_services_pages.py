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


ENTERPRISE_FORM = {
    "company_name": "长沙星城科技有限公司",
    "legal_rep_name": "周湘",
    "legal_rep_id_number": "430102199003151234",
    "address": "长沙市岳麓区麓谷大道 100 号",
    "registered_capital": "100",
    "business_scope": "软件开发；信息技术咨询服务",
    "tax_contact_mobile": "13800000009",
    "employee_count": "12",
}
USCC = "91430104MA4P2ABC1X"


def test_enterprise_bundle_with_the_bank_answering_later(browser, live_platform, tmp_path) -> None:
    """企业开办一件事: the bank's sub-case goes out as a signed webhook; the simulated
    bank answers later through the live API with its key; the enterprise sees every
    result, the bank account among them."""
    import json

    import httpx

    from xietong.apps.services import bank, demo
    from xietong.kernel.bus import run_due_jobs
    from xietong.kernel.workflow import services

    base, ctx = live_platform
    owner = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = owner.new_page()
    login(page, base, "ent.xiangwei")
    page.goto(f"{base}/services")
    assert "企业开办一件事" in page.locator("#life-events").inner_text()
    page.click("text=企业开办一件事")
    page.wait_for_url(f"{base}/services/bundles/enterprise")
    assert page.locator("[name=uscc]").count() == 0  # it comes from the 营业执照
    for name, value in ENTERPRISE_FORM.items():
        page.fill(f"[name={name}]", value)
    page.select_option("[name=opening_bank]", "长沙银行")
    pdf = b"%PDF-1.7\n" + b"%" * 256
    for index, code in enumerate(("legal_rep_id", "articles", "premises_proof")):
        path = tmp_path / f"{code}.pdf"
        path.write_bytes(pdf + bytes([index]))
        page.set_input_files(f"[name=material_{code}]", str(path))
    page.click("#apply-submit")
    page.wait_for_url(f"{base}/services/applications/**")
    number = page.locator("#app-number").inner_text()

    def sub_case_page(username: str, matter: str) -> object:
        staff = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
        clerk = staff.new_page()
        login(clerk, base, username)
        clerk.goto(f"{base}/services/workbench")
        clerk.locator("#work-list tr", has_text=number).filter(has_text=matter).locator("a").click()
        clerk.wait_for_url(f"{base}/services/workbench/**")
        return clerk

    for username in ("scjg.clerk", "scjg.approver"):  # 受理, then 审批
        clerk = sub_case_page(username, "企业设立登记")
        clerk.fill("#out-uscc", USCC)
        clerk.click("#approve-form button[type=submit]")
        clerk.wait_for_load_state()
        clerk.context.close()
    clerk = sub_case_page("scjg.clerk", "银行基本存款账户")
    assert USCC in clerk.locator("#sub-case-form").inner_text()
    assert clerk.locator("#awaiting-external").is_visible()
    screenshot(clerk, "services-bank-awaiting")
    clerk.context.close()

    # the worker posts the signed webhook to the bank; the bank answers through the API
    secret = services.webhook_secret(ctx, demo.BANK_URL)
    sim = bank.BankSimulator(secret, delay_s=0)

    def to_bank(request: httpx.Request) -> httpx.Response:
        status, body = sim.receive(request.headers, request.content)
        return httpx.Response(status, json=body)

    previous = services.use_http_client(
        lambda: httpx.Client(transport=httpx.MockTransport(to_bank))
    )
    try:
        run_due_jobs(ctx, "pages", 10)
    finally:
        services.use_http_client(previous)
    api_key = json.loads(demo.bank_file(ctx).read_text(encoding="utf-8"))["api_key"]
    with httpx.Client(base_url=base) as client:
        [answer] = sim.answer_due(client, api_key)
        assert answer.status_code == 200 and answer.json()["status"] == "concluded"
        forged = bank.post_answer(client, "xt_" + "B" * 43, answer.json()["reference"], "1")
        assert forged.status_code == 401
        for username, outputs in (
            ("ga.clerk", {"seal_record_no": "GZ-2026-0001"}),
            ("sw.clerk", {"invoice_quota": "增值税普通发票 25 份"}),
            ("rs.clerk", {"unit_no": "DW430104000123"}),
        ):
            token = client.post(
                "/api/v1/auth/token", json={"username": username, "password": "demo"}
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            todo = client.get("/api/v1/services/workbench/todo", headers=headers).json()
            [item] = [i for i in todo["items"] if i["application_number"] == number]
            done = client.post(
                f"/api/v1/services/sub-cases/{item['sub_case_id']}/approve",
                headers=headers,
                json={"outputs": outputs},
            )
            assert done.status_code == 200, done.text

    page.goto(f"{base}/services/applications/{number}")
    results = page.locator("#results-table").inner_text()
    account = bank.account_number(answer.json()["reference"])
    for value in (USCC, account, "GZ-2026-0001", "DW430104000123"):
        assert value in results
    screenshot(page, "services-enterprise-results")
    owner.close()
