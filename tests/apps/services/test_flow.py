"""出生一件事 end to end through the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select

from tests.apps.services.conftest import BIRTH_FORM, PDF, PNG, City
from xietong.apps.services import applications, files, ratings, results, workbench
from xietong.apps.services.models import Application, SubCase
from xietong.kernel import notify
from xietong.kernel.errors import Conflict, Forbidden, InvalidInput

MATERIALS = ["parents_id", "delivery_record", "hukou_book", "baby_photo"]


def upload_all(city: City, username: str = "citizen") -> dict[str, str]:
    actor = city.actor(username)
    out = {}
    for index, code in enumerate(MATERIALS):
        data = (PDF if index % 2 else PNG) + code.encode()
        name = f"{code}.{'pdf' if index % 2 else 'png'}"
        out[code] = files.upload(city.ctx, actor, name, data).sha256
    return out


def apply(city: City, key: str = "k1", form: dict | None = None) -> applications.ApplicationView:
    materials = upload_all(city)
    return applications.submit(
        city.ctx, city.actor("citizen"), "birth", form or dict(BIRTH_FORM), materials, key
    )


def by_matter(view: applications.ApplicationView) -> dict[str, object]:
    return {s.matter_code.split("-", 1)[1]: s for s in view.sub_cases}


def test_birth_bundle_end_to_end(city: City) -> None:
    ctx = city.ctx
    view = apply(city)
    assert view.created and view.number.startswith("430100-") and view.number.endswith("-000001")
    subs = by_matter(view)
    assert subs["WJW-CSYXZM"].status == "processing"
    assert {subs[k].status for k in ("GA-CSDJ", "YB-CXJMCB", "RS-SBKSL")} == {"waiting"}
    # the 卫健委 clerk sees only what the 出生医学证明 needs
    detail = workbench.get_sub_case(ctx, city.actor("wjw.clerk"), subs["WJW-CSYXZM"].id)
    assert "household_address" not in detail.form and "mailing_address" not in detail.form
    assert {m["code"] for m in detail.materials} == {"parents_id", "delivery_record"}
    # another department's clerk may not touch it
    with pytest.raises(Forbidden):
        workbench.approve(
            ctx, city.actor("ga.clerk"), subs["WJW-CSYXZM"].id, outputs={"birth_cert_no": "X"}
        )
    workbench.approve(
        ctx,
        city.actor("wjw.clerk"),
        subs["WJW-CSYXZM"].id,
        outputs={"birth_cert_no": "T430000001"},
        opinion="材料齐全，同意签发",
    )
    view = applications.get_application(ctx, city.actor("citizen"), view.number)
    subs = by_matter(view)
    assert subs["GA-CSDJ"].status == "processing"
    ga = workbench.get_sub_case(ctx, city.actor("ga.clerk"), subs["GA-CSDJ"].id)
    assert ga.form["birth_cert_no"] == "T430000001"  # the data travelled
    workbench.approve(
        ctx, city.actor("ga.clerk"), subs["GA-CSDJ"].id, outputs={"id_number": "430102202611200011"}
    )
    view = applications.get_application(ctx, city.actor("citizen"), view.number)
    subs = by_matter(view)
    assert subs["YB-CXJMCB"].status == subs["RS-SBKSL"].status == "processing"
    yb = workbench.get_sub_case(ctx, city.actor("yb.clerk"), subs["YB-CXJMCB"].id)
    assert yb.form["id_number"] == "430102202611200011"
    assert "father_id_number" not in yb.form
    with pytest.raises(Forbidden):  # rating before delivery is refused below; first finish
        ratings.rate(ctx, city.actor("other"), view.number, bundle={"level": 5}, departments={})
    with pytest.raises(Conflict):
        ratings.rate(ctx, city.actor("citizen"), view.number, bundle={"level": 5}, departments={})
    workbench.approve(
        ctx, city.actor("yb.clerk"), subs["YB-CXJMCB"].id, outputs={"insurance_no": "YB001"}
    )
    workbench.approve(
        ctx, city.actor("rs.clerk"), subs["RS-SBKSL"].id, outputs={"card_no": "SB001"}
    )
    view = applications.get_application(ctx, city.actor("citizen"), view.number)
    assert view.status == "delivered"
    assert view.notice is not None and len(view.notice["results"]) == 4
    # every document verifies with the published public key alone
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(results.public_key(ctx).public_key))
    assert len(view.documents) == 5
    for doc in view.documents:
        body = json.dumps(doc.content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        digest = hashlib.sha256(body.encode()).digest()
        assert digest.hex() == doc.sha256
        key.verify(base64.b64decode(doc.signature), digest)
        assert results.verify(ctx, doc.content, doc.signature).valid
    forged = dict(view.documents[0].content, applicant="someone else")
    assert not results.verify(ctx, forged, view.documents[0].signature).valid
    # 好差评: a bad rating opens a rectification for that department
    depts = {s.department_id for s in view.sub_cases}
    given = {d: {"level": "满意"} for d in depts}
    given[city.dept["ga"]] = {"level": "不满意", "comment": "窗口排队太久"}
    view = ratings.rate(
        ctx, city.actor("citizen"), view.number, bundle={"level": 5}, departments=given
    )
    assert len(view.ratings) == 5 and len(view.rectifications) == 1
    with pytest.raises(Conflict):
        ratings.rate(
            ctx, city.actor("citizen"), view.number, bundle={"level": 5}, departments=given
        )
    fixes = ratings.list_rectifications(ctx, city.actor("ga.head"))
    assert [f.application_number for f in fixes] == [view.number]
    assert ratings.list_rectifications(ctx, city.actor("wjw.head")) == []
    ratings.complete_rectification(
        ctx, city.actor("ga.head"), fixes[0].id, "增设自助取号机，高峰期增开窗口"
    )
    view = applications.get_application(ctx, city.actor("citizen"), view.number)
    assert view.rectifications[0]["status"] == "done"
    stats = {s.department_id: s for s in ratings.department_statistics(ctx, city.actor("ga.head"))}
    assert stats[city.dept["ga"]].bad == 1 and stats[city.dept["ga"]].rectifications_done == 1
    assert stats[city.dept["wjw"]].average == 4.0


def test_double_submit_makes_one_application(city: City) -> None:
    first = apply(city, key="same")
    materials = upload_all(city)
    second = applications.submit(
        city.ctx, city.actor("citizen"), "birth", dict(BIRTH_FORM), materials, "same"
    )
    assert second.number == first.number and not second.created
    with pytest.raises(Conflict):
        applications.submit(
            city.ctx,
            city.actor("citizen"),
            "birth",
            {**BIRTH_FORM, "baby_name": "别名"},
            materials,
            "same",
        )
    third = applications.submit(
        city.ctx, city.actor("citizen"), "birth", dict(BIRTH_FORM), materials, "other"
    )
    assert third.number.endswith("-000002")
    with city.ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Application)) == 2


def test_invalid_form_changes_nothing(city: City) -> None:
    materials = upload_all(city)
    bad = {**BIRTH_FORM, "father_id_number": "430102199003151235"}
    with pytest.raises(InvalidInput) as error:
        applications.submit(city.ctx, city.actor("citizen"), "birth", bad, materials, "x")
    assert error.value.code == "invalid_form"
    assert error.value.details["errors"][0]["field"] == "father_id_number"
    missing = {k: v for k, v in BIRTH_FORM.items() if k != "baby_name"}
    with pytest.raises(InvalidInput):
        applications.submit(city.ctx, city.actor("citizen"), "birth", missing, materials, "y")
    with pytest.raises(InvalidInput) as error:
        applications.submit(city.ctx, city.actor("citizen"), "birth", dict(BIRTH_FORM), {}, "z")
    assert error.value.code == "missing_material"
    with city.ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Application)) == 0
        assert session.scalar(select(func.count()).select_from(SubCase)) == 0
    # a failed submission did not consume a number
    assert apply(city, key="ok").number.endswith("-000001")


def test_supplement_resumes_only_that_matter(city: City) -> None:
    ctx = city.ctx
    view = apply(city)
    wjw = by_matter(view)["WJW-CSYXZM"]
    workbench.request_supplement(
        ctx, city.actor("wjw.clerk"), wjw.id, reason="分娩记录不清晰", materials=["delivery_record"]
    )
    with pytest.raises(Conflict):
        workbench.approve(ctx, city.actor("wjw.clerk"), wjw.id, outputs={"birth_cert_no": "A"})
    view = applications.get_application(ctx, city.actor("citizen"), view.number)
    assert by_matter(view)["WJW-CSYXZM"].status == "supplement"
    new = files.upload(ctx, city.actor("citizen"), "record.pdf", PDF + b"clear copy").sha256
    with pytest.raises(InvalidInput):  # only what was asked
        applications.supplement(
            ctx,
            city.actor("citizen"),
            view.number,
            wjw.id,
            {"baby_name": "x"},
            {"delivery_record": new},
        )
    view = applications.supplement(
        ctx, city.actor("citizen"), view.number, wjw.id, {}, {"delivery_record": new}
    )
    assert by_matter(view)["WJW-CSYXZM"].status == "processing"
    assert {m.code: m.revision for m in view.materials}["delivery_record"] == 2
    with pytest.raises(Conflict):  # once
        applications.supplement(
            ctx, city.actor("citizen"), view.number, wjw.id, {}, {"delivery_record": new}
        )
    workbench.approve(ctx, city.actor("wjw.clerk"), wjw.id, outputs={"birth_cert_no": "B1"})
    with pytest.raises(Conflict):  # 补正 on a finished matter
        workbench.request_supplement(
            ctx, city.actor("wjw.clerk"), wjw.id, reason="再补", materials=["parents_id"]
        )


def test_refusal_ends_branch_and_tells_the_applicant(city: City) -> None:
    ctx = city.ctx
    view = apply(city)
    wjw = by_matter(view)["WJW-CSYXZM"]
    workbench.approve(ctx, city.actor("wjw.clerk"), wjw.id, outputs={"birth_cert_no": "B1"})
    ga = by_matter(applications.get_application(ctx, city.actor("citizen"), view.number))["GA-CSDJ"]
    with pytest.raises(InvalidInput):
        workbench.refuse(ctx, city.actor("ga.clerk"), ga.id, kind="refuse_permission", reason=" ")
    workbench.refuse(
        ctx, city.actor("ga.clerk"), ga.id, kind="refuse_permission", reason="申报户籍地址不在本市"
    )
    view = applications.get_application(ctx, city.actor("citizen"), view.number)
    subs = by_matter(view)
    assert subs["GA-CSDJ"].status == "refused"
    assert subs["YB-CXJMCB"].status == subs["RS-SBKSL"].status == "cancelled"
    assert view.status == "delivered"  # the 出生医学证明 is still delivered
    text = "\n".join(view.notice["not_concluded"])
    assert "不予许可" in text and "申报户籍地址不在本市" in text and "出生医学证明首次签发" in text


def test_the_applicant_hears_of_supplements_refusals_and_delivery(city: City) -> None:
    ctx = city.ctx
    view = apply(city)
    subs = by_matter(view)
    workbench.request_supplement(
        ctx,
        city.actor("wjw.clerk"),
        subs["WJW-CSYXZM"].id,
        reason="分娩记录不清晰",
        materials=["delivery_record"],
    )
    citizen = city.actor("citizen")
    (asked,) = notify.list_messages(ctx, citizen)
    assert asked.title.startswith("请补正材料") and asked.body == "分娩记录不清晰"
    assert asked.link == f"/services/applications/{view.number}"
    new = files.upload(ctx, citizen, "record.pdf", PDF + b"clear copy").sha256
    applications.supplement(
        ctx, citizen, view.number, subs["WJW-CSYXZM"].id, {}, {"delivery_record": new}
    )
    workbench.approve(
        ctx, city.actor("wjw.clerk"), subs["WJW-CSYXZM"].id, outputs={"birth_cert_no": "B1"}
    )
    ga = by_matter(applications.get_application(ctx, citizen, view.number))["GA-CSDJ"]
    workbench.refuse(
        ctx, city.actor("ga.clerk"), ga.id, kind="refuse_permission", reason="申报户籍地址不在本市"
    )
    titles = [m.title for m in notify.list_messages(ctx, citizen)]
    assert len(titles) == 3 and titles[2].startswith("请补正材料")
    assert any(t.startswith("办件已办结") for t in titles)
    assert any("不予许可" in t for t in titles)
    assert notify.list_messages(ctx, city.actor("other")) == []
