"""SLA warnings and breaches, a broken model, duplicates, hotspots, reply suggestions,
FAQ search and the centre's overview."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.apps.hotline.conftest import Hotline
from xietong.apps.hotline import _model, knowledge
from xietong.apps.hotline.models import Step
from xietong.apps.hotline.sla import check_sla
from xietong.kernel.access import operator_actor
from xietong.kernel.clock import CST


def _kinds(h: Hotline, number: str) -> list[str]:
    ticket = h.ticket(number)
    with h.ctx.db.read() as session:
        return list(
            session.scalars(select(Step.kind).where(Step.ticket_id == ticket.id).order_by(Step.id))
        )


def test_sla_counts_office_hours_and_warns_then_breaches_once(hotline: Hotline) -> None:
    h = hotline
    # a consultation: one working day = 7 office hours from Tuesday 10:00
    made = h.submit(text="请问路灯报修找哪个部门", district_code="430111", type="咨询")
    ticket = h.ticket(made["number"])
    assert ticket.due_at.astimezone(CST).strftime("%a %H:%M") == "Wed 10:00"
    assert check_sla(h.ctx) == 0
    h.frozen.advance(timedelta(hours=6))  # Tuesday 16:00: 5 office hours gone, not yet
    assert check_sla(h.ctx) == 0
    h.frozen.advance(timedelta(hours=1))  # 17:00, past the 75 % mark (16:45)
    assert check_sla(h.ctx) == 1
    assert check_sla(h.ctx) == 0  # once
    h.frozen.advance(timedelta(hours=16))  # Wednesday 09:00: one office hour left
    assert check_sla(h.ctx) == 0
    h.frozen.advance(timedelta(hours=1, minutes=30))  # 10:30: overdue
    assert check_sla(h.ctx) == 1
    assert check_sla(h.ctx) == 0
    assert _kinds(h, made["number"])[-2:] == ["sla_warning", "sla_breached"]
    overview = h.client.get("/api/v1/hotline/overview", headers=h.login("supervisor")).json()
    assert overview["overdue"] == 1
    assert overview["overdue_tickets"][0]["number"] == made["number"]
    assert overview["auto_dispatch_share"] == 1.0
    listed = h.client.get(
        "/api/v1/hotline/tickets", params={"overdue": True}, headers=h.login("zj_clerk")
    ).json()
    assert [t["number"] for t in listed["items"]] == [made["number"]]
    assert listed["items"][0]["overdue"] is True


def test_broken_model_means_manual_dispatch_and_an_alert(hotline: Hotline) -> None:
    h = hotline
    _model.use_predictor(None)  # back to the real model, which this data dir lacks
    made = h.submit(text="噪音很大")
    assert made["status"] == "pending_dispatch"
    assert "classifier_unavailable" in _kinds(h, made["number"])
    corrupt = h.ctx.settings.data_dir / "models" / "hotline"
    corrupt.mkdir(parents=True)
    (corrupt / "CURRENT").write_text("v1")
    (corrupt / "v1").mkdir()
    (corrupt / "v1" / "manifest.json").write_text("{not json")
    again = h.submit(text="噪音还是很大", contact_phone="13900002222")
    assert again["status"] == "pending_dispatch"
    from tests.apps.hotline.test_flow_api import _events

    alerts = _events(h, "hotline.classifier.unavailable")
    assert len(alerts) == 2 and all(a["data"]["reason"] for a in alerts)
    assert h.tickets() == 2


def test_same_citizen_repeating_is_merged_and_gets_the_reply(hotline: Hotline) -> None:
    h = hotline
    first = h.submit(text="梅溪湖工地夜间施工噪音扰民，晚上十一点还在打桩", district_code="430104")
    h.frozen.advance(timedelta(hours=3))
    repeat = h.submit(text="梅溪湖工地晚上打桩噪音扰民，还在施工", district_code="430104")
    assert repeat["status"] == "merged"
    other = h.submit(
        text="梅溪湖工地夜间打桩施工噪音扰民", district_code="430104", contact_phone="13700001234"
    )
    assert other["status"] == "pending_dispatch"  # another citizen: flagged, not merged
    assert h.ticket(other["number"]).duplicate_of_id == h.ticket(first["number"]).id
    dispatcher = h.login("dispatcher")
    similar = h.client.get(
        f"/api/v1/hotline/tickets/{other['number']}/similar", headers=dispatcher
    ).json()
    assert similar[0]["number"] in (first["number"], repeat["number"])
    merged = h.client.post(
        f"/api/v1/hotline/tickets/{other['number']}/merge",
        json={"into": first["number"]},
        headers=dispatcher,
    )
    assert merged.status_code == 200 and merged.json()["ticket"]["merged_into"] == first["number"]
    clerk = h.login("hb_clerk")
    h.client.post(f"/api/v1/hotline/tickets/{first['number']}/accept", headers=clerk)
    h.client.post(
        f"/api/v1/hotline/tickets/{first['number']}/reply",
        json={"text": "已责令停工整改"},
        headers=clerk,
    )
    assert h.ticket(repeat["number"]).reply == "已责令停工整改"
    assert h.ticket(other["number"]).reply == "已责令停工整改"
    # after the reply nothing follows that ticket any more: the reply has been given
    later = h.submit(text="梅溪湖工地拖欠农民工工资", district_code="430104")
    assert later["status"] == "pending_dispatch"
    late_merge = h.client.post(
        f"/api/v1/hotline/tickets/{later['number']}/merge",
        json={"into": first["number"]},
        headers=dispatcher,
    )
    assert late_merge.status_code == 409 and late_merge.json()["code"] == "target_finished"


def test_hotspots_rank_clusters_by_place_and_week(hotline: Hotline) -> None:
    h = hotline
    phones = iter(f"1390000{n:04d}" for n in range(100))
    for text in ["梅溪湖工地夜间施工噪音", "梅溪湖附近工地夜间施工噪音扰民"]:
        h.submit(text=text, district_code="430104", contact_phone=next(phones))
    h.frozen.advance(timedelta(days=7))
    for text in ["梅溪湖工地夜间施工噪音太大", "梅溪湖工地半夜施工噪音", "梅溪湖夜间施工噪音扰民"]:
        h.submit(text=text, district_code="430104", contact_phone=next(phones))
    for text in ["雨花区共享单车乱停放堵路", "雨花区地铁口共享单车乱停放"]:
        h.submit(text=text, district_code="430111", contact_phone=next(phones))
    h.submit(text="公司拖欠工资", district_code="430111", contact_phone=next(phones))
    response = h.client.get(
        "/api/v1/hotline/hotspots", params={"weeks": 2}, headers=h.login("supervisor")
    )
    assert response.status_code == 200, response.text
    report = response.json()
    top = report["hotspots"][0]
    assert top["district"] == "岳麓区" and top["total"] == 5
    assert top["trend"] == [2, 3] and top["rising"] is True
    assert any("梅溪湖" in word or "施工" in word for word in top["keywords"])
    second = report["hotspots"][1]
    assert second["district"] == "雨花区" and second["total"] == 2
    assert len(report["hotspots"]) == 2  # a single ticket is not a hotspot
    clerk = h.client.get("/api/v1/hotline/hotspots", headers=h.login("zj_clerk"))
    assert clerk.status_code == 403


def test_reply_suggestions_and_faq_search_in_chinese(hotline: Hotline, tmp_path) -> None:
    h = hotline
    replies = tmp_path / "replies.csv"
    replies.write_text(
        "id,title,text,time,reply,reply_time\n"
        "r1,物业费上涨,小区物业费突然上涨一倍合理吗,2019/1/1,物业服务收费应经业主大会同意并公示,2019/1/3\n"
        "r2,公交线路,建议增加公交线路到地铁站,2019/1/1,公交集团将研究优化线路,2019/1/5\n"
        "r3,空行,,2019/1/1,,\n",
        encoding="utf-8",
    )
    admin = operator_actor("test")
    assert knowledge.import_replies_csv(h.ctx, admin, replies) == 2
    assert knowledge.import_replies_csv(h.ctx, admin, replies) == 0  # already there
    hits = h.client.get("/api/v1/hotline/faq", params={"q": "物业费涨价"}).json()
    assert hits[0]["title"] == "物业费上涨"
    assert h.client.get("/api/v1/hotline/faq", params={"q": "的了吗"}).json() == []
    made = h.submit(text="我们小区物业费上涨了，物业费涨得不合理", district_code="430111")
    clerk = h.login("zj_clerk")
    suggestions = h.client.get(
        f"/api/v1/hotline/tickets/{made['number']}/reply-suggestions", headers=clerk
    ).json()
    assert suggestions[0]["answer"].startswith("物业服务收费")
    other = h.client.get(
        f"/api/v1/hotline/tickets/{made['number']}/reply-suggestions", headers=h.login("hb_clerk")
    )
    assert other.status_code == 403
