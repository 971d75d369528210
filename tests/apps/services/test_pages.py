"""The portal and workbench pages without a browser: forms post, errors come back as
messages, English renders, the verify page answers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.apps.services.conftest import BIRTH_FORM, PDF, PNG, City, build_city, ofd
from xietong.app import create_app
from xietong.apps.services import applications
from xietong.kernel.context import Context

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    def __init__(self, app: object) -> None:
        self.client = TestClient(app)  # type: ignore[arg-type]

    def csrf(self, path: str) -> str:
        found = CSRF.search(self.client.get(path).text)
        assert found, path
        return found.group(1)

    def login(self, username: str) -> Browser:
        token = self.csrf("/login")
        r = self.client.post(
            "/login",
            data={
                "username": username,
                "password": "secret-pass",
                "csrf_token": token,
                "next": "/",
            },
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        return self


@pytest.fixture
def site(ctx: Context) -> Iterator[tuple[City, object]]:
    city = build_city(ctx)
    yield city, create_app(ctx)


def _apply_form(b: Browser) -> str:
    token = b.csrf("/services/bundles/birth")
    files = {
        "material_parents_id": ("id.pdf", PDF + b"p", "application/pdf"),
        "material_delivery_record": ("record.pdf", PDF + b"d", "application/pdf"),
        "material_hukou_book": ("hukou.ofd", ofd(), "application/octet-stream"),
        "material_baby_photo": ("photo.png", PNG + b"b", "image/png"),
    }
    data = {**BIRTH_FORM, "csrf_token": token, "idempotency_key": "page-key"}
    r = b.client.post(
        "/services/bundles/birth/apply", data=data, files=files, follow_redirects=False
    )
    assert r.status_code == 303, r.text[:2000]
    return r.headers["location"].rsplit("/", 1)[1]


def test_portal_apply_supplement_refuse_and_english(site) -> None:
    city, app = site
    anonymous = Browser(app)
    page = anonymous.client.get("/services?q=户口")
    assert "出生登记（户口登记）" in page.text
    assert "长沙市公安局" in anonymous.client.get("/services?department=430100-ga").text
    assert "登录后申请" in anonymous.client.get("/services/bundles/birth").text
    citizen = Browser(app).login("citizen")
    # a bad 身份证号 comes back on the form, nothing made
    token = citizen.csrf("/services/bundles/birth")
    bad = citizen.client.post(
        "/services/bundles/birth/apply",
        data={**BIRTH_FORM, "father_id_number": "123", "csrf_token": token, "idempotency_key": "x"},
    )
    assert bad.status_code == 422 and "父亲身份证号 格式不正确" in bad.text
    assert applications.my_applications(city.ctx, city.actor("citizen")) == []
    wrong = citizen.client.post(
        "/services/bundles/birth/apply",
        data={**BIRTH_FORM, "csrf_token": token, "idempotency_key": "y"},
        files={"material_parents_id": ("id.pdf", PNG, "application/pdf")},
    )
    assert wrong.status_code == 422 and "扩展名" in wrong.text
    number = _apply_form(citizen)
    assert number in citizen.client.get("/services/mine").text
    # the 卫健委 clerk asks for a clearer 分娩记录 through the workbench page
    clerk = Browser(app).login("wjw.clerk")
    listing = clerk.client.get("/services/workbench").text
    sub_id = re.search(r'href="/services/workbench/(\d+)">' + number, listing).group(1)
    token = clerk.csrf(f"/services/workbench/{sub_id}")
    r = clerk.client.post(
        f"/services/workbench/{sub_id}",
        data={
            "csrf_token": token,
            "op": "supplement",
            "reason": "分娩记录不清晰",
            "materials": "delivery_record",
        },
    )
    assert "已发出补正告知" in r.text
    page = citizen.client.get(f"/services/applications/{number}").text
    assert "补正告知" in page and "分娩记录不清晰" in page
    token = CSRF.search(page).group(1)
    r = citizen.client.post(
        f"/services/applications/{number}/supplement/{sub_id}",
        data={"csrf_token": token},
        files={"material_delivery_record": ("clear.pdf", PDF + b"clear", "application/pdf")},
    )
    assert "该事项恢复办理" in r.text
    # refusing with an empty reason is refused; with a reason it ends the branch
    token = clerk.csrf(f"/services/workbench/{sub_id}")
    r = clerk.client.post(
        f"/services/workbench/{sub_id}",
        data={"csrf_token": token, "op": "refuse", "kind": "refuse_acceptance", "reason": ""},
    )
    assert "请填写理由" in r.text
    r = clerk.client.post(
        f"/services/workbench/{sub_id}",
        data={
            "csrf_token": token,
            "op": "refuse",
            "kind": "refuse_acceptance",
            "reason": "非本市助产机构出生",
        },
    )
    assert "已作出不予办理决定" in r.text
    page = citizen.client.get(f"/services/applications/{number}").text
    assert "不予受理：非本市助产机构出生" in page and "无法办理" in page
    english = citizen.client.get(f"/services/applications/{number}?lang=en").text
    assert "Progress by department" in english and "Cannot proceed" in english
    # rating through the page: every department once
    token = CSRF.search(english).group(1)
    depts = re.findall(r'name="level_dept_(\d+)"', english)
    data = {"csrf_token": token, "level_bundle": "1", "comment_bundle": "没办成"}
    data.update({f"level_dept_{d}": "3" for d in depts})
    r = citizen.client.post(f"/services/applications/{number}/rate", data=data)
    assert "Thank you" in r.text


def test_verify_page(site) -> None:
    _city, app = site
    b = Browser(app)
    page = b.client.get("/services/verify").text
    assert "BEGIN PUBLIC KEY" in page
    token = CSRF.search(page).group(1)
    r = b.client.post(
        "/services/verify",
        data={"csrf_token": token, "content": json.dumps({"a": 1}), "signature": "AAAA"},
    )
    assert "签名无效" in r.text
    r = b.client.post(
        "/services/verify", data={"csrf_token": token, "content": "[", "signature": "x"}
    )
    assert "文档内容须为 JSON" in r.text
