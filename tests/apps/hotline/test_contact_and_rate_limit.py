"""The citizen's contact is masked everywhere and revealed to the handler with an audit
leaf; ticket intake is rate-limited per client with a 429 JSON error."""

from __future__ import annotations

import json
import re

from sqlalchemy import select

from tests.apps.hotline.conftest import Hotline
from xietong.kernel import audit


def _last_leaf(h: Hotline) -> tuple[dict, dict]:
    with h.ctx.db.read() as session:
        row = session.scalar(select(audit.AuditLeaf).order_by(audit.AuditLeaf.idx.desc()))
        assert row is not None
        return json.loads(row.leaf), json.loads(row.payload)


def test_revealing_the_contact_writes_an_audit_leaf(hotline: Hotline) -> None:
    h = hotline
    number = h.submit(text="工地夜间施工噪音", contact_name="张三", contact_phone="13900001111")[
        "number"
    ]
    clerk = h.login("hb_clerk")  # 生态环境局: the ticket went there
    view = h.client.get(f"/api/v1/hotline/tickets/{number}", headers=clerk).json()["ticket"]
    # even the handler's views show the mask: the full number costs an audited reveal
    assert view["contact"] == "139****1111" and view["contact_name"] == "张*"
    assert view["can_reveal_contact"] is True

    before = h.audit_size()
    revealed = h.client.post(f"/api/v1/hotline/tickets/{number}/contact", headers=clerk)
    assert revealed.status_code == 200, revealed.text
    assert revealed.json() == {"name": "张三", "phone": "13900001111"}
    assert h.audit_size() == before + 1
    leaf, payload = _last_leaf(h)
    assert leaf["action"] == "hotline.ticket.reveal_contact"
    assert leaf["actor"] == "user:hb_clerk"
    assert leaf["subject"] == f"hotline.ticket:{number}"
    assert leaf["time"].startswith("2026-11-03")  # when: the platform's (frozen) clock
    # the leaf names whose contact was seen by its mask, never the number itself
    assert payload == {"contact_masked": "139****1111", "department": "hb"}
    assert "13900001111" not in json.dumps(payload)

    # a second look is a second leaf
    h.client.post(f"/api/v1/hotline/tickets/{number}/contact", headers=clerk)
    assert h.audit_size() == before + 2


def test_only_the_handling_department_may_reveal(hotline: Hotline) -> None:
    h = hotline
    number = h.submit(text="工地夜间施工噪音")["number"]
    dispatcher, zj_clerk, hb_clerk = h.login("dispatcher"), h.login("zj_clerk"), h.login("hb_clerk")
    before = h.audit_size()
    view = h.client.get(f"/api/v1/hotline/tickets/{number}", headers=dispatcher).json()
    assert view["ticket"]["can_reveal_contact"] is False
    # no handling role at all
    denied = h.client.post(f"/api/v1/hotline/tickets/{number}/contact", headers=dispatcher)
    assert denied.status_code == 403
    # a handling role, but in another department
    other = h.client.post(f"/api/v1/hotline/tickets/{number}/contact", headers=zj_clerk)
    assert other.status_code == 403, other.text
    assert other.json()["code"] == "not_handler"
    assert other.json()["message_zh"] and other.json()["message_en"]
    missing = h.client.post("/api/v1/hotline/tickets/nope/contact", headers=hb_clerk)
    assert missing.status_code == 404
    assert h.audit_size() == before


def test_ticket_page_reveals_on_request_only(hotline: Hotline) -> None:
    h = hotline
    number = h.submit(text="工地夜间施工噪音", contact_name="张三")["number"]
    login = h.client.post(
        "/login",
        data={"username": "hb_clerk", "password": "secret", "csrf_token": _csrf(h, "/login")},
        follow_redirects=False,
    )
    assert login.status_code == 303, login.text
    page = h.client.get(f"/hotline/tickets/{number}")
    assert "139****1111" in page.text and "13900001111" not in page.text
    assert 'id="reveal-contact"' in page.text
    before = h.audit_size()
    shown = h.client.post(
        f"/hotline/tickets/{number}",
        data={"op": "reveal_contact", "csrf_token": _csrf(h, f"/hotline/tickets/{number}")},
    )
    assert shown.status_code == 200
    assert "13900001111" in shown.text and "张三" in shown.text
    assert h.audit_size() == before + 1
    # shown once: the next visit is masked again
    assert "13900001111" not in h.client.get(f"/hotline/tickets/{number}").text


def _csrf(h: Hotline, path: str) -> str:
    token = re.search(r'name="csrf_token" value="([^"]+)"', h.client.get(path).text)
    assert token is not None
    return token[1]


def _form(h: Hotline, text: str, **headers: str):
    return h.client.post(
        "/hotline/new",
        data={"text": text, "contact_phone": "13900005555", "csrf_token": _csrf(h, "/hotline/new")},
        headers=headers,
        follow_redirects=False,
    )


def test_public_form_is_rate_limited_per_client(hotline: Hotline) -> None:
    h = hotline
    h.ctx.settings.hotline_intake_rate_public = "2/minute"
    assert _form(h, "路灯坏了一个月").status_code == 303
    assert _form(h, "路灯还是坏的").status_code == 303
    tickets = h.tickets()
    # a browser gets the form back with the message and what was typed
    page = _form(h, "第三次反映路灯", accept="text/html")
    assert page.status_code == 429 and int(page.headers["retry-after"]) >= 1
    assert "提交过于频繁" in page.text and "第三次反映路灯" in page.text
    # any other client gets the JSON error, in both languages
    refused = _form(h, "第四次反映路灯", accept="application/json")
    assert refused.status_code == 429
    error = refused.json()
    assert error["code"] == "intake_rate_limited"
    assert "提交过于频繁" in error["message_zh"] and "Too many tickets" in error["message_en"]
    assert error["details"]["retry_after_s"] >= 1
    assert h.tickets() == tickets  # nothing was taken in


def test_api_intake_is_rate_limited_per_client(hotline: Hotline) -> None:
    h = hotline
    h.ctx.settings.hotline_intake_rate_agent = "3/minute"
    for _ in range(3):
        h.submit()
    tickets = h.tickets()
    refused = h.client.post(
        "/api/v1/hotline/tickets",
        json={"text": "路灯坏了", "contact_phone": "13900001111"},
        headers=h.api_key,
    )
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == str(refused.json()["details"]["retry_after_s"])
    assert refused.json()["code"] == "intake_rate_limited"
    assert "3 per minute" in refused.json()["message_en"]
    assert h.tickets() == tickets
    # the limit is per client: a signed-in agent of the centre still gets through
    agent = h.client.post(
        "/api/v1/hotline/tickets",
        json={"text": "路灯坏了", "contact_phone": "13900001111"},
        headers=h.login("dispatcher"),
    )
    assert agent.status_code == 201, agent.text


def test_a_bad_rate_setting_is_refused() -> None:
    import pytest
    from pydantic import ValidationError

    from xietong.config import Settings

    with pytest.raises(ValidationError, match="rate limit"):
        Settings(hotline_intake_rate_public="lots")


def test_a_connected_system_of_the_handling_department_may_not_reveal(hotline: Hotline) -> None:
    from tests.apps.hotline.conftest import ADMIN
    from xietong.kernel.access import Role
    from xietong.kernel.org import service
    from xietong.kernel.org.systems import register_connected_system

    h = hotline
    number = h.submit(text="工地夜间施工噪音", contact_phone="13900001111")["number"]
    hb = next(d.id for d in service.list_departments(h.ctx, ADMIN) if d.code == "hb")
    key = register_connected_system(
        h.ctx, ADMIN, "hb-system", "生态环境局业务系统", hb, [Role.WINDOW_CLERK]
    ).api_key
    before = h.audit_size()
    view = h.client.get(f"/api/v1/hotline/tickets/{number}", headers={"X-API-Key": key})
    assert view.status_code == 200, view.text
    assert view.json()["ticket"]["can_reveal_contact"] is False
    denied = h.client.post(f"/api/v1/hotline/tickets/{number}/contact", headers={"X-API-Key": key})
    assert denied.status_code == 403, denied.text
    assert denied.json()["code"] == "person_required"
    assert "13900001111" not in denied.text
    assert h.audit_size() == before


def test_the_limiter_is_made_with_the_app_and_counts_concurrent_hits_once(
    hotline: Hotline,
) -> None:
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from xietong.apps.hotline.throttle import IntakeLimiter
    from xietong.kernel.errors import RateLimited

    limiter = hotline.client.app.state.hotline_intake_limiter  # before any submission
    assert isinstance(limiter, IntakeLimiter)

    fresh = IntakeLimiter()
    test = fresh._limiter.test

    def slow_test(*args: object) -> bool:
        passed = test(*args)
        time.sleep(0.02)  # widen the gap between the test and the hit, as a busy server would
        return passed

    fresh._limiter.test = slow_test  # type: ignore[method-assign]
    start = threading.Barrier(12)

    def submit(_: int) -> bool:
        start.wait()
        try:
            fresh.hit("5/minute", "ip:203.0.113.9")
        except RateLimited:
            return False
        return True

    with ThreadPoolExecutor(12) as pool:
        admitted = sum(pool.map(submit, range(12)))
    assert admitted == 5
