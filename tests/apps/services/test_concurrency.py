"""Numbers are unique and gap-free under concurrent submission; one key makes one
application even when two requests race; a process finished outside the workbench still
moves its sub-case on (the workflow.instance.completed consumer)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from tests.apps.services.conftest import BIRTH_FORM, PDF, PNG, City
from tests.apps.services.test_flow import MATERIALS, by_matter
from xietong.apps.services import applications, files
from xietong.apps.services.models import Application
from xietong.kernel.bus.relay import InProcessBus, relay_once
from xietong.kernel.workflow import operations
from xietong.kernel.workflow.store import WfTask


def _materials(city: City) -> dict[str, str]:
    actor = city.actor("citizen")
    return {
        code: files.upload(city.ctx, actor, f"{code}.png", PNG + code.encode()).sha256
        for code in MATERIALS
    }


def _race(count: int, work) -> list[object]:
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_concurrent_submissions_get_gap_free_numbers(city: City) -> None:
    materials = _materials(city)
    actor = city.actor("citizen")
    results = _race(
        8,
        lambda i: (
            applications.submit(
                city.ctx, actor, "birth", dict(BIRTH_FORM), materials, f"key-{i}"
            ).number
        ),
    )
    assert all(isinstance(r, str) for r in results), results
    sequences = sorted(int(str(r).rsplit("-", 1)[1]) for r in results)
    assert sequences == list(range(1, 9))


def test_racing_double_submit_makes_one(city: City) -> None:
    materials = _materials(city)
    actor = city.actor("citizen")
    results = _race(
        4,
        lambda i: (
            applications.submit(
                city.ctx, actor, "birth", dict(BIRTH_FORM), materials, "same-key"
            ).number
        ),
    )
    assert all(isinstance(r, str) for r in results), results
    assert len(set(results)) == 1
    with city.ctx.db.read() as session:
        assert len(list(session.scalars(select(Application.id)))) == 1


def test_completion_through_the_task_api_moves_the_sub_case(city: City) -> None:
    ctx = city.ctx
    view = applications.submit(
        ctx, city.actor("citizen"), "birth", dict(BIRTH_FORM), _materials(city), "k"
    )
    sub = by_matter(view)["WJW-CSYXZM"]
    with ctx.db.read() as session:
        task_id = session.scalar(select(WfTask.id).where(WfTask.instance_id == sub.instance_id))
    operations.complete(
        ctx, city.actor("wjw.clerk"), task_id, variables={"outputs": {"birth_cert_no": "C-1"}}
    )
    bus = InProcessBus(ctx)
    while relay_once(ctx, bus):
        pass
    view = applications.get_application(ctx, city.actor("citizen"), view.number)
    assert by_matter(view)["WJW-CSYXZM"].status == "concluded"
    assert by_matter(view)["WJW-CSYXZM"].outputs == {"birth_cert_no": "C-1"}
    assert by_matter(view)["GA-CSDJ"].status == "processing"
    assert any(d.sub_case_id == sub.id for d in view.documents)
    # a redelivery changes nothing
    while relay_once(ctx, bus):
        pass
    again = applications.get_application(ctx, city.actor("citizen"), view.number)
    assert len(again.documents) == len(view.documents)


def test_restaurant_bundle_flows_the_uscc(city: City) -> None:
    from xietong.apps.services import workbench

    ctx = city.ctx
    actor = city.actor("citizen")
    materials = {
        code: files.upload(ctx, actor, f"{code}.pdf", PDF + code.encode()).sha256
        for code in ("legal_rep_id", "articles", "premises_proof", "kitchen_layout")
    }
    form = {
        "company_name": "长沙湘味餐饮管理有限公司",
        "legal_rep_name": "周湘",
        "legal_rep_id_number": "430102199003151234",
        "address": "长沙市芙蓉区解放西路 88 号",
        "registered_capital": 50,
        "business_scope": "餐饮服务",
        "food_categories": "热食类食品制售",
        "tax_contact_mobile": "13800000009",
        "employee_count": 6,
    }
    view = applications.submit(ctx, actor, "restaurant", form, materials, "r")
    license_ = by_matter(view)["SCJG-YYZZ"]
    # 受理 by a clerk, then 审批 by an approver: two steps of one process
    workbench.approve(
        ctx, city.actor("scjg.clerk"), license_.id, outputs={"uscc": "91430102MA4L1XY80X"}
    )
    view = applications.get_application(ctx, actor, view.number)
    assert by_matter(view)["SCJG-YYZZ"].status == "processing"
    workbench.approve(
        ctx, city.actor("scjg.head"), license_.id, outputs={"uscc": "91430102MA4L1XY80X"}
    )
    view = applications.get_application(ctx, actor, view.number)
    subs = by_matter(view)
    assert subs["SCJG-YYZZ"].status == "concluded"
    for code in ("SCJG-SPJY", "GA-GZKZ", "SW-FPSL", "RS-DWSBDJ"):
        assert subs[code].status == "processing"
        detail = workbench.get_sub_case(ctx, city.op, subs[code].id)
        assert detail.form["uscc"] == "91430102MA4L1XY80X"


def test_second_step_is_for_the_approver(city: City) -> None:
    from xietong.apps.services import workbench
    from xietong.kernel.errors import Forbidden

    ctx = city.ctx
    actor = city.actor("citizen")
    materials = {
        code: files.upload(ctx, actor, f"{code}.pdf", PDF + code.encode()).sha256
        for code in ("legal_rep_id", "articles", "premises_proof", "kitchen_layout")
    }
    form = {
        "company_name": "长沙湘味餐饮管理有限公司",
        "legal_rep_name": "周湘",
        "legal_rep_id_number": "430102199003151234",
        "address": "长沙市芙蓉区解放西路 88 号",
        "registered_capital": 50,
        "business_scope": "餐饮服务",
        "food_categories": "热食类",
        "tax_contact_mobile": "13800000009",
        "employee_count": 6,
    }
    view = applications.submit(ctx, actor, "restaurant", form, materials, "r2")
    sub = by_matter(view)["SCJG-YYZZ"]
    assert workbench.get_sub_case(ctx, city.actor("scjg.clerk"), sub.id).step == "受理审查"
    workbench.approve(ctx, city.actor("scjg.clerk"), sub.id, outputs={"uscc": "X"})
    detail = workbench.get_sub_case(ctx, city.actor("scjg.clerk"), sub.id)
    assert detail.step == "审批决定" and not detail.can_act
    with pytest.raises(Forbidden):
        workbench.approve(ctx, city.actor("scjg.clerk"), sub.id, outputs={"uscc": "X"})
    assert workbench.get_sub_case(ctx, city.actor("scjg.head"), sub.id).can_act
