"""A ticket's life through the API: intake, automatic and manual dispatch, accept,
reply, rating, 退单 and redispatch, 重办 and escalation, extensions, masking."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from tests.apps.hotline.conftest import MODEL_VERSION, Hotline
from xietong.apps.hotline.models import Correction, Dispatch
from xietong.kernel.outbox import OutboxEvent


def _events(h: Hotline, kind: str) -> list[dict]:
    with h.ctx.db.read() as session:
        return [
            json.loads(row.cloudevent)
            for row in session.scalars(select(OutboxEvent).where(OutboxEvent.type == kind))
        ]


def test_confident_ticket_is_dispatched_automatically(hotline: Hotline) -> None:
    h = hotline
    made = h.submit(
        text="工地晚上十一点还在施工，噪音太大",
        title="夜间施工噪音扰民",
        district_code="430111",
        contact_name="张三",
        external_id="CC-1",
    )
    assert made["status"] == "dispatched" and made["replayed"] is False
    number = made["number"]
    assert number.startswith("1234520261103")
    detail = h.client.get(f"/api/v1/hotline/tickets/{number}", headers=h.login("dispatcher"))
    assert detail.status_code == 200, detail.text
    ticket = detail.json()["ticket"]
    assert ticket["department_code"] == "hb" and ticket["category"] == "环境保护"
    assert ticket["type"] == "complaint"  # no type given: 扰民 makes it a complaint
    # the dispatcher sees the contact masked; the handling department may reveal it
    assert ticket["contact"] == "139****1111" and ticket["contact_name"] == "张*"
    assert ticket["can_reveal_contact"] is False
    handler = h.client.get(f"/api/v1/hotline/tickets/{number}", headers=h.login("hb_clerk"))
    assert handler.json()["ticket"]["can_reveal_contact"] is True
    [decision] = detail.json()["dispatches"]
    assert decision["mode"] == "auto" and decision["model_version"] == MODEL_VERSION
    assert decision["confidence"] == 0.99
    # another department does not see it at all
    other = h.client.get(f"/api/v1/hotline/tickets/{number}", headers=h.login("zj_clerk"))
    assert other.status_code == 404


def test_intake_is_idempotent_on_the_systems_ticket_id(hotline: Hotline) -> None:
    h = hotline
    first = h.submit(external_id="CC-7", text="路灯坏了", place="岳麓区麓山南路")
    again = h.client.post(
        "/api/v1/hotline/tickets",
        json={
            "text": "路灯坏了",
            "contact_phone": "13900001111",
            "external_id": "CC-7",
            "place": "岳麓区麓山南路",
        },
        headers=h.api_key,
    )
    assert again.status_code == 200
    assert again.json()["number"] == first["number"] and again.json()["replayed"] is True
    clash = h.client.post(
        "/api/v1/hotline/tickets",
        json={"text": "别的事情", "contact_phone": "13900001111", "external_id": "CC-7"},
        headers=h.api_key,
    )
    assert clash.status_code == 409 and clash.json()["code"] == "external_id_conflict"
    assert h.tickets() == 1


def test_place_text_resolves_the_district_and_district_routes_win(hotline: Hotline) -> None:
    h = hotline
    made = h.submit(text="小区楼道墙皮脱落", place="岳麓区麓山南路 12 号")
    ticket = h.ticket(made["number"])
    assert ticket.district_code == "430104"
    dispatcher = h.login("dispatcher")
    detail = h.client.get(f"/api/v1/hotline/tickets/{made['number']}", headers=dispatcher).json()
    assert detail["ticket"]["department_code"] == "yl-zj"  # the district's own department
    short = h.submit(text="雨花那边的人行道坏了", contact_phone="13900002222")
    assert h.ticket(short["number"]).district_code == "430111"  # 雨花 without 区


def test_unsure_ticket_waits_with_three_suggestions_and_manual_dispatch_teaches(
    hotline: Hotline,
) -> None:
    h = hotline
    made = h.submit(text="公司拖欠工资三个月", district_code="430111")
    assert made["status"] == "pending_dispatch"
    dispatcher = h.login("dispatcher")
    queue = h.client.get("/api/v1/hotline/queue", headers=dispatcher).json()
    assert queue["total"] == 1
    [item] = queue["items"]
    assert [s["category"] for s in item["suggestions"]] == [
        "劳动和社会保障",
        "商贸旅游",
        "城乡建设",
    ]
    assert item["suggestions"][0]["department_code"] == "rs"
    assert item["suggestions"][1]["department_code"] is None  # no route for 商贸旅游
    response = h.client.post(
        f"/api/v1/hotline/tickets/{made['number']}/dispatch",
        json={"category": "城乡建设", "note": "涉及工程款"},
        headers=dispatcher,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ticket"]["department_code"] == "zj" and body["ticket"]["status"] == "dispatched"
    assert body["dispatches"][0]["mode"] == "manual"
    assert body["dispatches"][0]["confidence"] == 0.62
    export = h.client.get("/api/v1/hotline/training-data.csv", headers=dispatcher)
    assert export.status_code == 200
    lines = export.text.strip().splitlines()
    assert lines[0] == "id,title,text,label,source"
    assert any("城乡建设,manual_dispatch" in line for line in lines[1:])


def test_accept_reply_rate_close_and_rating_twice_is_refused(hotline: Hotline) -> None:
    h = hotline
    client = h.client
    made = client.post(
        "/api/v1/hotline/tickets",
        json={"text": "楼下餐馆油烟直排", "contact_phone": "13900003333", "type": "投诉"},
        headers=h.api_key,
    ).json()
    number, token = made["number"], made["citizen_token"]
    clerk = h.login("hb_clerk")
    assert client.post(f"/api/v1/hotline/tickets/{number}/accept", headers=clerk).status_code == 200
    again = client.post(f"/api/v1/hotline/tickets/{number}/accept", headers=clerk)
    assert again.status_code == 409 and again.json()["code"] == "invalid_status"
    empty = client.post(
        f"/api/v1/hotline/tickets/{number}/reply", json={"text": " "}, headers=clerk
    )
    assert empty.status_code == 422 and empty.json()["code"] == "reply_required"
    h.frozen.advance(timedelta(hours=2))
    replied = client.post(
        f"/api/v1/hotline/tickets/{number}/reply",
        json={"text": "已责令餐馆安装油烟净化器"},
        headers=clerk,
    )
    assert replied.json()["ticket"]["status"] == "replied"
    wrong = client.post(
        f"/api/v1/hotline/tickets/{number}/rating",
        json={"rating": "满意", "token": "not-the-key"},
    )
    assert wrong.status_code == 403
    rated = client.post(
        f"/api/v1/hotline/tickets/{number}/rating", json={"rating": "满意", "token": token}
    )
    assert rated.status_code == 200 and rated.json()["status"] == "closed"
    size = h.audit_size()
    twice = client.post(
        f"/api/v1/hotline/tickets/{number}/rating", json={"rating": "不满意", "token": token}
    )
    assert twice.status_code == 409 and twice.json()["code"] == "already_rated"
    assert h.ticket(number).rating == "satisfied" and h.audit_size() == size
    citizen = client.get(f"/api/v1/hotline/tickets/{number}/citizen", params={"token": token})
    kinds = [s["kind"] for s in citizen.json()["steps"]]
    assert kinds == ["intake", "dispatch", "accept", "reply", "rating"]
    assert all(s["actor"] == "" for s in citizen.json()["steps"])
    # a satisfied reply joins the knowledge base, found by FAQ search
    hits = client.get("/api/v1/hotline/faq", params={"q": "餐馆油烟"}).json()
    assert hits and "油烟净化器" in hits[0]["answer"]
    assert len(_events(h, "hotline.ticket.rated")) == 1


def test_send_back_needs_a_reason_then_redispatch_labels_the_correction(
    hotline: Hotline,
) -> None:
    h = hotline
    made = h.submit(text="小区绿化带被占用种菜", district_code="430111")
    number = made["number"]
    clerk = h.login("zj_clerk")
    size = h.audit_size()
    bare = h.client.post(
        f"/api/v1/hotline/tickets/{number}/send-back", json={"reason": ""}, headers=clerk
    )
    assert bare.status_code == 422 and bare.json()["code"] == "reason_required"
    assert h.ticket(number).status == "dispatched" and h.audit_size() == size
    back = h.client.post(
        f"/api/v1/hotline/tickets/{number}/send-back",
        json={"reason": "属于环保职责"},
        headers=clerk,
    )
    assert back.status_code == 200
    ticket = h.ticket(number)
    assert ticket.status == "pending_dispatch" and ticket.department_id is None
    assert ticket.due_at is None
    dispatcher = h.login("dispatcher")
    h.client.post(
        f"/api/v1/hotline/tickets/{number}/dispatch",
        json={"category": "环境保护"},
        headers=dispatcher,
    )
    with h.ctx.db.read() as session:
        corrections = session.scalars(select(Correction)).all()
        sources = sorted((c.source, c.wrong_category, c.label) for c in corrections)
        dispatches = session.scalars(select(Dispatch).order_by(Dispatch.id)).all()
        outcomes = [(d.outcome, d.outcome_reason) for d in dispatches]
    assert ("send_back", "城乡建设", "环境保护") in sources
    assert outcomes == [("sent_back", "属于环保职责"), ("pending", None)]


def test_unsatisfied_reopens_once_then_escalates(hotline: Hotline) -> None:
    h = hotline
    made = h.submit(text="电梯经常困人", district_code="430111")
    number = made["number"]
    clerk, dispatcher = h.login("zj_clerk"), h.login("dispatcher")
    h.client.post(f"/api/v1/hotline/tickets/{number}/accept", headers=clerk)
    h.client.post(f"/api/v1/hotline/tickets/{number}/reply", json={"text": "已维修"}, headers=clerk)
    first = h.client.post(
        f"/api/v1/hotline/tickets/{number}/follow-up",
        json={"rating": "unsatisfied", "note": "仍然困人"},
        headers=dispatcher,
    )
    assert first.json()["status"] == "in_progress"
    ticket = h.ticket(number)
    assert ticket.reopen_count == 1 and ticket.due_at is not None
    h.client.post(f"/api/v1/hotline/tickets/{number}/reply", json={"text": "已更换"}, headers=clerk)
    second = h.client.post(
        f"/api/v1/hotline/tickets/{number}/follow-up",
        json={"rating": "不满意"},
        headers=dispatcher,
    )
    assert second.json()["status"] == "escalated"
    assert len(_events(h, "hotline.ticket.escalated")) == 1
    clerk_rating = h.client.post(
        f"/api/v1/hotline/tickets/{number}/follow-up", json={"rating": "满意"}, headers=clerk
    )
    assert clerk_rating.status_code == 403


def test_extension_moves_the_deadline_and_not_on_a_closed_ticket(hotline: Hotline) -> None:
    h = hotline
    made = h.submit(text="车库进水", district_code="430111", type="help")
    number = made["number"]
    due = h.ticket(number).due_at
    assert due is not None
    clerk, dispatcher = h.login("zj_clerk"), h.login("dispatcher")
    asked = h.client.post(
        f"/api/v1/hotline/tickets/{number}/extensions",
        json={"hours": 7, "reason": "需现场勘查"},
        headers=clerk,
    )
    assert asked.status_code == 201
    twice = h.client.post(
        f"/api/v1/hotline/tickets/{number}/extensions",
        json={"hours": 7, "reason": "再延"},
        headers=clerk,
    )
    assert twice.status_code == 409
    denied = h.client.post(
        f"/api/v1/hotline/tickets/{number}/extensions/{asked.json()['id']}/decision",
        json={"approve": True},
        headers=clerk,
    )
    assert denied.status_code == 403
    approved = h.client.post(
        f"/api/v1/hotline/tickets/{number}/extensions/{asked.json()['id']}/decision",
        json={"approve": True, "note": "同意"},
        headers=dispatcher,
    )
    assert approved.status_code == 200
    assert h.ticket(number).due_at - due >= timedelta(hours=7)  # one working day later
    h.client.post(f"/api/v1/hotline/tickets/{number}/accept", headers=clerk)
    h.client.post(f"/api/v1/hotline/tickets/{number}/reply", json={"text": "已处理"}, headers=clerk)
    h.client.post(
        f"/api/v1/hotline/tickets/{number}/follow-up", json={"rating": "满意"}, headers=dispatcher
    )
    size = h.audit_size()
    late = h.client.post(
        f"/api/v1/hotline/tickets/{number}/extensions",
        json={"hours": 7, "reason": "还要时间"},
        headers=clerk,
    )
    assert late.status_code == 409 and late.json()["code"] == "invalid_status"
    assert h.audit_size() == size
