"""企业开办一件事: the bank account opened by an external system that answers later.

The bank is ``apps/services/bank.py``'s simulator behind a mock HTTP transport: the
matter's process posts it a signed webhook, and its answer comes back through the API
with the X-API-Key of its connected system. Time is a frozen clock, so the boundary
timer (working days on the kernel calendar) fires when the test says so.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from tests.apps.services.conftest import PDF, City
from xietong.app import create_app
from xietong.apps.services import applications, bank, catalogue, demo, external, files, workbench
from xietong.apps.services.external import MESSAGE, reference
from xietong.apps.services.views import MatterView
from xietong.kernel import clock
from xietong.kernel.access import Actor, Role
from xietong.kernel.bus import run_due_jobs
from xietong.kernel.errors import Conflict, Forbidden, InvalidInput
from xietong.kernel.org.systems import authenticate_api_key, register_connected_system
from xietong.kernel.workflow import services
from xietong.kernel.workflow.store import WfHistory, WfIncident, WfTask, WfToken

USCC = "91430102MA4L1XY80X"
FORM = {
    "company_name": "长沙星城科技有限公司",
    "legal_rep_name": "周湘",
    "legal_rep_id_number": "430102199003151234",
    "address": "长沙市岳麓区麓谷大道 100 号",
    "registered_capital": 100,
    "business_scope": "软件开发；信息技术咨询服务",
    "tax_contact_mobile": "13800000009",
    "employee_count": 12,
    "opening_bank": "长沙银行",
}
BANK = "SCJG-YHKH"
OTHERS = {
    "GA-GZKZ": ("ga.clerk", {"seal_record_no": "GZ-0001"}),
    "SW-FPSL": ("sw.clerk", {"invoice_quota": "增值税普通发票 25 份"}),
    "RS-DWSBDJ": ("rs.clerk", {"unit_no": "DW-0001"}),
}


@dataclass
class Bed:
    city: City
    frozen: clock.FrozenClock
    sim: bank.BankSimulator
    api: TestClient
    api_key: str
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    elapsed: list[float] = field(default_factory=lambda: [0.0])

    @property
    def ctx(self) -> Any:
        return self.city.ctx

    def apply(self, key: str = "e1") -> applications.ApplicationView:
        actor = self.city.actor("citizen")
        materials = {
            code: files.upload(self.ctx, actor, f"{code}.pdf", PDF + code.encode()).sha256
            for code in ("legal_rep_id", "articles", "premises_proof")
        }
        return applications.submit(self.ctx, actor, "enterprise", dict(FORM), materials, key)

    def view(self, number: str) -> applications.ApplicationView:
        return applications.get_application(self.ctx, self.city.actor("citizen"), number)

    def subs(self, number: str) -> dict[str, Any]:
        return {s.matter_code.split("-", 1)[1]: s for s in self.view(number).sub_cases}

    def license(self, number: str) -> None:
        sub = self.subs(number)["SCJG-YYZZ"].id
        workbench.approve(self.ctx, self.city.actor("scjg.clerk"), sub, outputs={"uscc": USCC})
        workbench.approve(self.ctx, self.city.actor("scjg.head"), sub, outputs={"uscc": USCC})

    def others(self, number: str) -> None:
        subs = self.subs(number)
        for code, (clerk, outputs) in OTHERS.items():
            workbench.approve(self.ctx, self.city.actor(clerk), subs[code].id, outputs=outputs)

    def bank_answers(self, after_s: float) -> list[httpx.Response]:
        self.elapsed[0] += after_s
        return self.sim.answer_due(self.api, self.api_key)

    def waiting(self, number: str) -> list[str]:
        ref = reference(number, f"430100-{BANK}")
        with self.ctx.db.read() as session:
            return list(
                session.scalars(
                    select(WfToken.node_id).where(
                        WfToken.message_name == MESSAGE,
                        WfToken.correlation == ref,
                        WfToken.status == "waiting",
                    )
                )
            )


@pytest.fixture
def bed(city: City) -> Iterator[Bed]:
    # Monday 10:00 in Changsha: two working days later is Wednesday 10:00
    frozen = clock.FrozenClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    previous_clock = clock.use_clock(frozen)
    ctx = city.ctx
    api_key = demo.register_bank(ctx, city.op)
    elapsed = [0.0]
    sim = bank.BankSimulator(
        services.webhook_secret(ctx, demo.BANK_URL), delay_s=60, now=lambda: elapsed[0]
    )
    webhooks: list[dict[str, Any]] = []

    def to_bank(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == demo.BANK_URL
        status, body = sim.receive(request.headers, request.content)
        webhooks.append({"status": status, "body": request.content, "headers": request.headers})
        return httpx.Response(status, json=body)

    previous = services.use_http_client(
        lambda: httpx.Client(transport=httpx.MockTransport(to_bank))
    )
    with TestClient(create_app(ctx)) as api:
        yield Bed(city, frozen, sim, api, api_key, webhooks, elapsed)
    services.use_http_client(previous)
    clock.use_clock(previous_clock)


def test_the_whole_bundle_completes_with_the_bank_answering(bed: Bed) -> None:
    view = bed.apply()
    subs = bed.subs(view.number)
    assert {s.status for s in subs.values()} == {"processing", "waiting"}
    assert subs["SCJG-YYZZ"].status == "processing"
    bed.license(view.number)
    subs = bed.subs(view.number)
    assert {code: s.status for code, s in subs.items()} == {
        "SCJG-YYZZ": "concluded",
        **{code: "processing" for code in (*OTHERS, BANK)},
    }
    # the bank's sub-case waits for no clerk: the worker posts the signed webhook
    waiting = workbench.get_sub_case(bed.ctx, bed.city.actor("scjg.clerk"), subs[BANK].id)
    assert waiting.step is None and waiting.awaiting_external and not waiting.can_act
    assert run_due_jobs(bed.ctx, "w", 10) >= 1
    assert [w["status"] for w in bed.webhooks] == [202]
    sent = httpx.Response(200, content=bed.webhooks[0]["body"]).json()
    # the 统一社会信用代码 flowed from the 营业执照, and only the bank matter's fields went out
    assert sent["variables"]["form"] == {
        "company_name": FORM["company_name"],
        "legal_rep_name": FORM["legal_rep_name"],
        "legal_rep_id_number": FORM["legal_rep_id_number"],
        "opening_bank": "长沙银行",
        "uscc": USCC,
    }
    assert bed.waiting(view.number) == ["await_bank"]
    bed.others(view.number)
    assert bed.view(view.number).status == "processing"
    assert bed.bank_answers(30) == []  # not yet: the bank takes its time
    [answer] = bed.bank_answers(30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "concluded"
    done = bed.view(view.number)
    assert done.status == "delivered"
    bank_sub = {s.matter_code: s for s in done.sub_cases}[f"430100-{BANK}"]
    account = bank.account_number(reference(view.number, f"430100-{BANK}"))
    assert bank_sub.outputs == {"bank_account_no": account}
    results = {r["matter"]: r["outputs"] for r in done.notice["results"]}
    assert results["企业银行基本存款账户开立"] == {"基本存款账户账号": account}
    assert len(results) == 5
    for code in (*OTHERS, BANK):
        detail = workbench.get_sub_case(bed.ctx, bed.city.op, bed.subs(view.number)[code].id)
        assert detail.form["uscc"] == USCC
    # a second delivery of the same answer finds nothing waiting and changes nothing
    again = bank.post_answer(bed.api, bed.api_key, reference(view.number, f"430100-{BANK}"), "1")
    assert again.status_code == 409
    assert bed.view(view.number).documents == done.documents


def test_the_bank_answering_late_still_counts_and_the_timer_is_gone(bed: Bed) -> None:
    view = bed.apply()
    bed.license(view.number)
    run_due_jobs(bed.ctx, "w", 10)
    bed.frozen.advance(timedelta(days=1))  # Tuesday: one working day, inside the limit
    assert run_due_jobs(bed.ctx, "w", 10) == 0
    [answer] = bed.bank_answers(3600)
    assert answer.json()["status"] == "concluded"
    bed.frozen.advance(timedelta(days=7))
    run_due_jobs(bed.ctx, "w", 10)  # the boundary timer left with the call activity
    with bed.ctx.db.read() as session:
        assert not session.scalars(select(WfTask).where(WfTask.name.like("银行逾期%"))).all()
    assert bed.subs(view.number)[BANK].status == "concluded"


def test_a_bank_that_never_answers_times_out_to_a_clerk_and_the_rest_goes_on(bed: Bed) -> None:
    bed.sim.answers = False
    view = bed.apply()
    bed.license(view.number)
    run_due_jobs(bed.ctx, "w", 10)
    assert [w["status"] for w in bed.webhooks] == [202]
    bed.frozen.advance(timedelta(days=1, hours=23))  # Wednesday 09:00: not yet
    run_due_jobs(bed.ctx, "w", 10)
    assert bed.waiting(view.number) == ["await_bank"]
    bed.others(view.number)  # the other departments go on meanwhile
    bed.frozen.advance(timedelta(hours=2))  # Wednesday 11:00: two working days passed
    assert run_due_jobs(bed.ctx, "w", 10) >= 1
    assert bed.waiting(view.number) == []
    subs = bed.subs(view.number)
    assert {code: s.status for code, s in subs.items() if code != BANK} == {
        "SCJG-YYZZ": "concluded",
        **{code: "concluded" for code in OTHERS},
    }
    clerk = bed.city.actor("scjg.clerk")
    detail = workbench.get_sub_case(bed.ctx, clerk, subs[BANK].id)
    assert detail.step == "银行逾期未回执，人工核实开户" and detail.can_act
    # the bank's answer after the timeout is refused: the clerk's work stands
    late = bank.post_answer(bed.api, bed.api_key, reference(view.number, f"430100-{BANK}"), "1")
    assert late.status_code == 409 and late.json()["code"] == "not_awaiting_answer"
    workbench.approve(
        bed.ctx, clerk, subs[BANK].id, outputs={"bank_account_no": "6217000011112222"}
    )
    done = bed.view(view.number)
    assert done.status == "delivered"
    bank_sub = {s.matter_code: s for s in done.sub_cases}[f"430100-{BANK}"]
    assert bank_sub.outputs == {"bank_account_no": "6217000011112222"}


def test_forged_or_misdirected_bank_callbacks_are_refused_and_change_nothing(bed: Bed) -> None:
    view = bed.apply()
    bed.license(view.number)
    run_due_jobs(bed.ctx, "w", 10)
    ref = reference(view.number, f"430100-{BANK}")
    good = {"reference": ref, "outputs": {"bank_account_no": "6217000011112222"}}
    path = bank.ANSWER_PATH
    other = register_connected_system(
        bed.ctx, bed.city.op, "ga-system", "公安系统", bed.city.dept["ga"], [Role.WINDOW_CLERK]
    ).api_key
    outsider = register_connected_system(
        bed.ctx, bed.city.op, "ga-bank", "公安外部系统", bed.city.dept["ga"], [Role.EXTERNAL]
    ).api_key
    cases = [
        ({}, good, 401),  # unsigned: no key at all
        ({"X-API-Key": "xt_" + "A" * 43}, good, 401),  # forged key
        ({"X-API-Key": other}, good, 403),  # a clerk system of another department
        ({"X-API-Key": outsider}, good, 404),  # another department's: as if unknown
        ({"X-API-Key": bed.api_key}, {**good, "outputs": {"bank_account_no": ""}}, 422),
        ({"X-API-Key": bed.api_key}, {**good, "outputs": {"iban": "x"}}, 422),
        ({"X-API-Key": bed.api_key}, {**good, "reference": "no-slash"}, 422),
        ({"X-API-Key": bed.api_key}, {**good, "reference": f"{view.number}/NOPE"}, 404),
        ({"X-API-Key": bed.api_key}, {**good, "refused": True}, 422),  # a refusal needs a reason
    ]
    before = bed.view(view.number)
    for headers, body, status in cases:
        response = bed.api.post(path, headers=headers, json=body)
        assert response.status_code == status, (headers, body, response.text)
        assert set(response.json()) >= {"code", "message_zh", "message_en"}
    # Not-yours and unknown are indistinguishable: same code, same message shape.
    theirs = bed.api.post(path, headers={"X-API-Key": outsider}, json=good).json()
    unknown = bed.api.post(
        path, headers={"X-API-Key": outsider}, json={**good, "reference": "NOPE/NOPE"}
    ).json()
    assert theirs["code"] == unknown["code"] == "unknown_reference"
    assert theirs["message_en"].replace(ref, "NOPE/NOPE") == unknown["message_en"]
    with pytest.raises(Forbidden):  # a clerk of the department is a person, not the bank
        external.answer(bed.ctx, bed.city.actor("scjg.clerk"), ref, outputs=good["outputs"])
    assert bed.view(view.number) == before
    assert bed.waiting(view.number) == ["await_bank"]
    # a webhook that did not come from the platform is refused by the bank and not queued
    forged = bed.sim.receive(
        {"webhook-id": "x", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"}, b"{}"
    )
    assert forged[0] == 401 and bed.sim.pending[0].reference == ref and len(bed.sim.pending) == 1
    assert bed.sim.receive({}, b"{}")[0] == 401
    ok = bed.api.post(path, headers={"X-API-Key": bed.api_key}, json=good)
    assert ok.status_code == 200 and ok.json()["status"] == "concluded"


def _as_input(view: MatterView) -> catalogue.MatterInput:
    names = {f.name for f in fields(catalogue.MatterInput)}
    return catalogue.MatterInput(**{k: v for k, v in asdict(view).items() if k in names})


def test_only_the_system_the_matter_names_may_answer(bed: Bed) -> None:
    view, ref, _system = _awaiting_bank(bed)
    # an external system of the same department, holding the same narrow role
    other = register_connected_system(
        bed.ctx,
        bed.city.op,
        "scjg-other-bank",
        "另一银行网关",
        bed.city.dept["scjg"],
        [Role.EXTERNAL],
    ).api_key
    good = {"reference": ref, "outputs": {"bank_account_no": "6217000011112222"}}
    unknown = {**good, "reference": "NOPE/NOPE"}
    before = bed.view(view.number)
    for body in (good, {**good, "refused": True, "reason": "冒名拒绝"}):
        response = bed.api.post(bank.ANSWER_PATH, headers={"X-API-Key": other}, json=body)
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "unknown_reference"
    # indistinguishable from an unknown reference: nothing to probe
    theirs = bed.api.post(bank.ANSWER_PATH, headers={"X-API-Key": other}, json=good).json()
    nothing = bed.api.post(bank.ANSWER_PATH, headers={"X-API-Key": other}, json=unknown).json()
    assert theirs["message_en"].replace(ref, "NOPE/NOPE") == nothing["message_en"]
    assert bed.view(view.number) == before
    assert bed.subs(view.number)[BANK].status == "processing"
    assert bed.waiting(view.number) == ["await_bank"]
    assert _answered(bed) == 0
    # the matter stops naming a system: not even the bank may answer
    scjg_head = bed.city.actor("scjg.head")
    matter = catalogue.get_matter(bed.ctx, scjg_head, f"430100-{BANK}")
    assert matter.external_system_code == demo.BANK_SYSTEM
    unbound = replace(_as_input(matter), external_system_code="")
    catalogue.update_matter(bed.ctx, scjg_head, matter.code, unbound)
    refused = bed.api.post(bank.ANSWER_PATH, headers={"X-API-Key": bed.api_key}, json=good)
    assert refused.status_code == 404 and refused.json()["code"] == "unknown_reference"
    assert bed.waiting(view.number) == ["await_bank"] and _answered(bed) == 0
    # a malformed code is refused by field and changes nothing
    with pytest.raises(InvalidInput) as bad:
        catalogue.update_matter(
            bed.ctx, scjg_head, matter.code, replace(unbound, external_system_code="银行 网关")
        )
    assert bad.value.details["problems"][0]["field"] == "external_system_code"
    version = catalogue.get_matter(bed.ctx, scjg_head, matter.code).version
    assert version == matter.version + 1  # only the unbinding above
    # named again by the department's head, who edits the matter like any other field
    catalogue.update_matter(
        bed.ctx, scjg_head, matter.code, replace(unbound, external_system_code=demo.BANK_SYSTEM)
    )
    ok = bed.api.post(bank.ANSWER_PATH, headers={"X-API-Key": bed.api_key}, json=good)
    assert ok.status_code == 200 and ok.json()["status"] == "concluded"
    assert bed.subs(view.number)[BANK].outputs == good["outputs"]


def test_the_bank_refusing_ends_only_its_branch(bed: Bed) -> None:
    view = bed.apply()
    bed.license(view.number)
    run_due_jobs(bed.ctx, "w", 10)
    response = bed.api.post(
        bank.ANSWER_PATH,
        headers={"X-API-Key": bed.api_key},
        json={
            "reference": reference(view.number, f"430100-{BANK}"),
            "refused": True,
            "reason": "法定代表人身份核验未通过",
        },
    )
    assert response.status_code == 200 and response.json()["status"] == "refused"
    assert bed.waiting(view.number) == []
    bed.others(view.number)
    done = bed.view(view.number)
    assert done.status == "delivered"
    assert any("法定代表人身份核验未通过" in line for line in done.notice["not_concluded"])
    assert len(done.notice["results"]) == 4


def test_a_bank_that_is_down_ends_in_an_incident_and_still_times_out_to_a_clerk(
    bed: Bed,
) -> None:
    def down(_request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    previous = services.use_http_client(lambda: httpx.Client(transport=httpx.MockTransport(down)))
    try:
        view = bed.apply()
        bed.license(view.number)
        for _ in range(8):  # 1 + 5 retries with backoff, then an incident
            run_due_jobs(bed.ctx, "w", 10)
            bed.frozen.advance(timedelta(hours=1))
    finally:
        services.use_http_client(previous)
    with bed.ctx.db.read() as session:
        attempts = session.scalars(select(WfIncident.attempts)).all()
    assert attempts == [6]
    assert bed.subs(view.number)[BANK].status == "processing"
    bed.frozen.advance(timedelta(days=2))  # Wednesday evening: past two working days
    run_due_jobs(bed.ctx, "w", 10)
    clerk = bed.city.actor("scjg.clerk")
    detail = workbench.get_sub_case(bed.ctx, clerk, bed.subs(view.number)[BANK].id)
    assert detail.step == "银行逾期未回执，人工核实开户" and detail.can_act


def _awaiting_bank(bed: Bed) -> tuple[applications.ApplicationView, str, Actor]:
    """An application whose bank matter waits for the answer, and the bank's actor."""
    view = bed.apply()
    bed.license(view.number)
    run_due_jobs(bed.ctx, "w", 10)
    system = authenticate_api_key(bed.ctx, bed.api_key)
    assert system is not None
    return view, reference(view.number, f"430100-{BANK}"), system


def _answered(bed: Bed) -> int:
    with bed.ctx.db.read() as session:
        return len(
            session.scalars(select(WfHistory.id).where(WfHistory.kind == "message.received")).all()
        )


def test_an_answer_whose_token_was_taken_before_the_lock_is_refused_and_changes_nothing(
    bed: Bed, monkeypatch: pytest.MonkeyPatch
) -> None:
    view, ref, system = _awaiting_bank(bed)
    look_up = external._waiting

    def taken_meanwhile(run: Any, sub: Any, ref: str) -> int:
        # what a timer committing between the look-up and the lock leaves behind
        instance_id = look_up(run, sub, ref)
        run.session.execute(
            update(WfToken)
            .where(WfToken.instance_id == instance_id, WfToken.message_name == MESSAGE)
            .values(status="cancelled")
        )
        return instance_id

    monkeypatch.setattr(external, "_waiting", taken_meanwhile)
    before = bed.view(view.number)
    with pytest.raises(Conflict) as refused:
        external.answer(bed.ctx, system, ref, outputs={"bank_account_no": "6217000011112222"})
    assert refused.value.code == "not_awaiting_answer"
    assert bed.view(view.number) == before
    assert bed.waiting(view.number) == ["await_bank"]
    assert _answered(bed) == 0


def test_two_concurrent_answers_one_wins_the_other_is_refused(bed: Bed) -> None:
    view, ref, system = _awaiting_bank(bed)
    barrier = threading.Barrier(2)
    results: list[object] = [None, None]

    def deliver(index: int) -> None:
        barrier.wait()
        try:
            results[index] = external.answer(
                bed.ctx, system, ref, outputs={"bank_account_no": f"621700001111222{index}"}
            )
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    won = [r for r in results if isinstance(r, external.AnswerResult)]
    lost = [r for r in results if isinstance(r, Conflict)]
    assert len(won) == 1 and len(lost) == 1, results
    assert won[0].status == "concluded"
    assert _answered(bed) == 1
    assert bed.waiting(view.number) == []
    bank_sub = bed.subs(view.number)[BANK]
    assert bank_sub.status == "concluded"
    assert bank_sub.outputs == {"bank_account_no": f"621700001111222{results.index(won[0])}"}


def test_the_banks_key_holds_no_clerk_power_of_the_department(bed: Bed) -> None:
    from xietong.kernel.access import registered_actions

    # No action but the answer names the external role: the bank passes nothing else.
    # (Kernel unit tests register their own ``test.*`` actions in the same process.)
    naming = [
        a.name
        for a in registered_actions().values()
        if Role.EXTERNAL in a.roles and not a.name.startswith("test.")
    ]
    assert naming == [external.ACTION]
    view = bed.apply()
    bed.license(view.number)
    run_due_jobs(bed.ctx, "w", 10)
    sub = bed.subs(view.number)[BANK].id
    key = {"X-API-Key": bed.api_key}
    before = bed.view(view.number)
    for method, path in (
        ("get", f"/api/v1/services/sub-cases/{sub}"),
        ("get", "/api/v1/services/workbench/todo"),
        ("post", f"/api/v1/services/sub-cases/{sub}/approve"),
        ("get", "/api/v1/exchange/requests"),
        ("get", "/api/v1/hotline/tickets"),
    ):
        answer = bed.api.request(
            method.upper(), path, headers=key, json={} if method == "post" else None
        )
        assert answer.status_code == 403, (path, answer.text)
    assert bed.view(view.number) == before
