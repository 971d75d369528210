"""Every workflow operation through the HTTP API: its happy path and its main refusal.

JSON in and out through the TestClient, on SQLite and PostgreSQL (the ``world`` fixture
is parametrised). Errors always have the shape ``{code, message_zh, message_en,
details}``. The ``Api`` helper here is shared with ``test_workflow_bad_input_api.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.api.conftest import World
from xietong.kernel import audit, clock
from xietong.kernel.access import Role, operator_actor
from xietong.kernel.auth import actor_from_user_id, issue_token
from xietong.kernel.bus import run_due_jobs
from xietong.kernel.context import Context
from xietong.kernel.org import service
from xietong.kernel.outbox import OutboxEvent
from xietong.kernel.workflow import services
from xietong.kernel.workflow.store import WfHistory

BASE = "/api/v1/workflow"
DATA = Path(__file__).resolve().parents[1] / "data" / "workflow"
ERROR_KEYS = {"code", "message_zh", "message_en", "details"}
# reviewers and an approver in dept A, beside the world's admin, head_a, clerk_a, clerk_b
STAFF = [("rev1", Role.REVIEWER), ("rev2", Role.REVIEWER), ("rev3", Role.REVIEWER)]
STAFF += [("boss", Role.APPROVER)]
LIVE = ("open", "delegated", "pending")

# 受理 (clerk_a) → 审批 (head_a) → granted if approved, else refused
PERMIT = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"
             xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
             targetNamespace="https://xietong.org/test">
  <process id="permit" name="许可审批" isExecutable="true">
    <startEvent id="start"/>
    <userTask id="accept" name="受理" camunda:assignee="clerk_a"/>
    <userTask id="approve" name="审批" camunda:assignee="{approver}"/>
    <exclusiveGateway id="xor" default="to_refused"/>
    <endEvent id="granted"/>
    <endEvent id="refused"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="accept"/>
    <sequenceFlow id="f2" sourceRef="accept" targetRef="approve"/>
    <sequenceFlow id="f3" sourceRef="approve" targetRef="xor"/>
    <sequenceFlow id="to_granted" sourceRef="xor" targetRef="granted">
      <conditionExpression>${{outcome == 'approve'}}</conditionExpression>
    </sequenceFlow>
    <sequenceFlow id="to_refused" sourceRef="xor" targetRef="refused"/>
  </process>
</definitions>
"""

# 申请 (clerk_a) → 审核 (rev1) → 审批 (any approver of the department) → 归档 or stop
LINE = """
key: line
name: 三步审批
steps:
  - {id: apply, name: 申请, task: {assignee: clerk_a}}
  - {id: review, name: 审核, task: {assignee: rev1}}
  - {id: approve, name: 审批, task: {roles: [approver]}}
  - id: decide
    choose:
      - when: "${outcome == 'approve'}"
        steps: [{id: archive, name: 归档, task: {assignee: clerk_a}}]
      - otherwise: [{id: refused, end: normal}]
"""

# a parallel block nested inside one branch of another
NESTED = """
key: nested_review
name: 嵌套会审
steps:
  - parallel:
      - {id: outer_a, name: 外审A, task: {assignee: rev2}}
      - steps:
          - parallel:
              - {id: inner_a, name: 内审A, task: {assignee: rev1}}
              - {id: inner_b, name: 内审B, task: {assignee: rev3}}
  - {id: final, name: 终审, task: {assignee: boss}}
"""

# two branches, the first with two steps, then a final step
BRANCHES = """
key: branches
steps:
  - {id: apply, task: {assignee: clerk_a}}
  - parallel:
      - steps:
          - {id: a1, task: {assignee: rev1}}
          - {id: a2, task: {assignee: rev1}}
      - {id: b, task: {assignee: rev2}}
  - {id: final, task: {assignee: boss}}
"""

# 会签: every signer of ${signers} must approve
SIGN = """
key: sign
steps:
  - {id: apply, task: {assignee: clerk_a}}
  - {id: sign, name: 会签, task: {countersign: all, signers: "${signers}"}}
  - {id: archive, task: {assignee: clerk_a}}
"""


class Api:
    """The workflow API as the tests use it: calls by username, checked answers."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.client = world.client
        self.ctx: Context = world.ctx
        self._headers: dict[str, dict[str, str]] = {}
        self._ids: dict[str, int] = {}

    @classmethod
    def with_staff(cls, world: World) -> Api:
        op = operator_actor("test")
        for username, role in STAFF:
            user = service.add_user(world.ctx, op, username, username.upper(), "secret")
            service.grant_membership(world.ctx, op, user.id, world.dept_a, role)
        return cls(world)

    # -- requests --

    def headers(self, username: str) -> dict[str, str]:
        """A bearer token, issued directly: a login (argon2, an audit leaf) per user and
        test would be slow and would show up in the audit log of ``unchanged`` blocks."""
        if username not in self._headers:
            actor = actor_from_user_id(self.ctx, self.uid(username))
            assert actor is not None
            token = issue_token(self.ctx, actor).access_token
            self._headers[username] = {"Authorization": f"Bearer {token}"}
        return self._headers[username]

    def uid(self, username: str) -> int:
        if username not in self._ids:
            found = service.get_user_by_username(self.ctx, username)
            assert found is not None, username
            self._ids[username] = found.id
        return self._ids[username]

    def post(self, path: str, user: str | None, body: Any = None, **kw: Any) -> httpx.Response:
        headers = {**(self.headers(user) if user else {}), **kw.pop("headers", {})}
        if "content" not in kw:
            kw["json"] = {} if body is None else body
        return self.client.post(BASE + path, headers=headers, **kw)

    def get(self, path: str, user: str | None, **kw: Any) -> httpx.Response:
        headers = self.headers(user) if user else {}
        return self.client.get(BASE + path, headers=headers, **kw)

    def do(self, path: str, user: str, body: Any = None, status: int = 200) -> Any:
        """POST that must succeed; the JSON answer."""
        return ok(self.post(path, user, body), status)

    def read(self, path: str, user: str, **params: Any) -> Any:
        return ok(self.get(path, user, params=params))

    # -- definitions and instances --

    def deploy(self, source: str, content_type: str = "application/yaml") -> list[dict[str, Any]]:
        response = self.post(
            "/definitions", "admin", content=source.encode(), headers={"Content-Type": content_type}
        )
        return ok(response, 201)

    def deploy_yaml(self, text: str) -> dict[str, Any]:
        (deployed,) = self.do("/definitions", "admin", {"format": "yaml", "source": text}, 201)
        return deployed

    def deploy_permit(self, approver: str = "head_a") -> dict[str, Any]:
        (deployed,) = self.deploy(PERMIT.format(approver=approver), "application/xml")
        return deployed

    def start(
        self, key: str, user: str = "clerk_a", variables: dict[str, Any] | None = None, **extra: Any
    ) -> dict[str, Any]:
        body = {"key": key, "department_id": self.world.dept_a, "variables": variables or {}}
        return self.do("/instances", user, {**body, **extra}, 201)

    def instance(self, instance_id: int) -> dict[str, Any]:
        return self.read(f"/instances/{instance_id}", "admin")

    def tasks(self, instance_id: int, node_id: str | None = None) -> list[dict[str, Any]]:
        found = self.instance(instance_id)["tasks"]
        return [t for t in found if node_id is None or t["node_id"] == node_id]

    def task(self, instance_id: int, node_id: str, user: str | None = None) -> dict[str, Any]:
        """The one live task at ``node_id`` (of ``user``)."""
        found = [
            t
            for t in self.tasks(instance_id, node_id)
            if t["status"] in LIVE and (user is None or t["assignee_id"] == self.uid(user))
        ]
        assert len(found) == 1, found
        return found[0]

    def open_nodes(self, instance_id: int) -> list[str]:
        return sorted(t["node_id"] for t in self.tasks(instance_id) if t["status"] == "open")

    def status(self, instance_id: int) -> str:
        return self.instance(instance_id)["instance"]["status"]

    def history(self, instance_id: int, kind: str) -> list[dict[str, Any]]:
        return [h for h in self.instance(instance_id)["history"] if h["kind"] == kind]

    # -- task operations --

    def act(self, task: dict[str, Any], operation: str, user: str, body: Any = None) -> Any:
        status = 201 if operation == "add-signer" else 200
        return self.do(f"/tasks/{task['id']}/{operation}", user, body, status)

    def try_act(
        self, task: dict[str, Any], operation: str, user: str, body: Any = None
    ) -> httpx.Response:
        return self.post(f"/tasks/{task['id']}/{operation}", user, body)

    def complete(
        self, task: dict[str, Any], user: str, outcome: str = "approve", **body: Any
    ) -> dict[str, Any]:
        return self.act(task, "complete", user, {"outcome": outcome, **body})

    def walk(self, instance_id: int, *steps: tuple[str, str]) -> None:
        """Complete (node, user) after (node, user) with approve."""
        for node_id, user in steps:
            self.complete(self.task(instance_id, node_id), user)

    # -- what changed --

    def audit_size(self) -> int:
        with self.ctx.db.read() as session:
            return audit.tree_size(session)

    def outbox_size(self) -> int:
        with self.ctx.db.read() as session:
            return session.scalar(select(func.count()).select_from(OutboxEvent)) or 0

    def snapshot(self, instance_id: int | None = None) -> dict[str, Any]:
        return {
            "audit": self.audit_size(),
            "outbox": self.outbox_size(),
            "definitions": self.read("/definitions", "admin"),
            "instance": None if instance_id is None else self.instance(instance_id),
        }

    @contextmanager
    def unchanged(self, instance_id: int | None = None) -> Iterator[None]:
        """The block must change nothing: audit log, outbox, definitions, the instance."""
        before = self.snapshot(instance_id)
        yield
        assert self.snapshot(instance_id) == before


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def refused(
    response: httpx.Response, status: int, code: str, where: object = None
) -> dict[str, Any]:
    """Check an error answer: its status, its code and the one error shape (``where``
    names the request in a failure message)."""
    assert response.status_code == status, (where, response.text)
    body = response.json()
    assert set(body) == ERROR_KEYS, (where, body)
    assert body["code"] == code, (where, body)
    assert body["message_zh"] and body["message_en"]
    return body


@pytest.fixture
def api(world: World) -> Api:
    return Api.with_staff(world)


# -- definitions --


def test_deploy_bpmn_and_yaml_redeploy_makes_a_version_instances_keep_theirs(api: Api) -> None:
    first = api.deploy_permit(approver="head_a")
    assert (first["key"], first["version"], first["source_format"]) == ("permit", 1, "bpmn")
    old = api.start("permit")
    api.walk(old["id"], ("accept", "clerk_a"))

    (second,) = ok(
        api.post(
            "/definitions", "admin", {"format": "bpmn", "source": PERMIT.format(approver="boss")}
        ),
        201,
    )
    assert second["version"] == 2
    new = api.start("permit")
    assert (old["version"], new["version"]) == (1, 2)
    api.walk(new["id"], ("accept", "clerk_a"))
    # each instance runs its own version: 审批 goes to head_a in v1, to boss in v2
    assert api.task(old["id"], "approve")["assignee_id"] == api.uid("head_a")
    assert api.task(new["id"], "approve")["assignee_id"] == api.uid("boss")
    assert api.instance(old["id"])["instance"]["version"] == 1

    (raw_yaml,) = api.deploy(LINE, "text/yaml; charset=utf-8")
    assert (raw_yaml["key"], raw_yaml["version"], raw_yaml["source_format"]) == ("line", 1, "yaml")
    assert api.deploy_yaml(LINE)["version"] == 2
    versions = api.read("/definitions", "clerk_a", key="line")
    assert [d["version"] for d in versions] == [2, 1]
    latest = api.read("/definitions", "clerk_a")
    assert {(d["key"], d["version"]) for d in latest} == {("permit", 2), ("line", 2)}
    detail = api.read("/definitions/line/versions/1", "clerk_a")
    assert detail["source"] == LINE and "apply" in {n["id"] for n in detail["graph"]["nodes"]}

    with api.unchanged():
        refused(
            api.post("/definitions", "head_a", {"format": "yaml", "source": LINE}), 403, "forbidden"
        )
        refused(
            api.post(
                "/definitions", "admin", content=b"key: x", headers={"Content-Type": "text/plain"}
            ),
            422,
            "unsupported_media_type",
        )


# -- instances --


def test_start_and_get_an_instance(api: Api) -> None:
    api.deploy_yaml(LINE)
    started = api.start("line", variables={"amount": 500}, business_key="SQ-1")
    assert started["status"] == "running" and started["business_key"] == "SQ-1"
    assert started["started_by_user_id"] == api.uid("clerk_a")

    detail = ok(api.get(f"/instances/{started['id']}", "clerk_a"))
    assert detail["instance"]["id"] == started["id"]
    assert detail["variables"] == {"amount": 500, "starter": "clerk_a"}
    assert [t["node_id"] for t in detail["tokens"]] == ["apply"]
    assert [(t["node_id"], t["status"]) for t in detail["tasks"]] == [("apply", "open")]
    assert "instance.started" in {h["kind"] for h in detail["history"]}

    refused(api.post("/instances", "clerk_a", {"key": "nope"}), 404, "not_found")
    elsewhere = api.post(
        "/instances", "clerk_a", {"key": "line", "department_id": api.world.dept_b}
    )
    refused(elsewhere, 403, "forbidden")
    refused(api.get(f"/instances/{started['id']}", "clerk_b"), 404, "not_found")


# -- claim and complete --


def test_claim_takes_a_candidate_task(api: Api) -> None:
    api.deploy(DATA.joinpath("review.bpmn").read_text(), "application/xml")
    started = api.start("review")
    accept = api.task(started["id"], "accept")
    assert accept["assignee_id"] is None and accept["candidate_role"] == "window_clerk"
    assert [t["id"] for t in api.read("/tasks/todo", "clerk_a")["items"]] == [accept["id"]]
    assert "claim" in api.read(f"/tasks/{accept['id']}", "clerk_a")["operations"]

    with api.unchanged(started["id"]):
        refused(api.try_act(accept, "claim", "clerk_b"), 403, "not_candidate")
    claimed = api.act(accept, "claim", "clerk_a")
    assert claimed["assignee_id"] == api.uid("clerk_a")
    with api.unchanged(started["id"]):
        refused(api.try_act(accept, "claim", "clerk_a"), 409, "already_claimed")


@pytest.mark.parametrize(
    ("outcome", "opinion", "end"), [("approve", "同意", "granted"), ("reject", "不同意", "refused")]
)
def test_complete_with_an_opinion_routes_the_gateway(
    api: Api, outcome: str, opinion: str, end: str
) -> None:
    api.deploy_permit()
    started = api.start("permit")
    accept = api.task(started["id"], "accept")
    done = api.complete(
        accept,
        "clerk_a",
        opinion="材料齐全",
        attachments=[{"name": "申请表.pdf"}],
        version=accept["version"],
    )
    assert (done["status"], done["outcome"], done["opinion"]) == (
        "completed",
        "approve",
        "材料齐全",
    )
    assert done["attachments"] == [{"name": "申请表.pdf"}]

    approve = api.task(started["id"], "approve")
    api.complete(approve, "head_a", outcome, opinion=f"{opinion}。审批意见：按规定办理")
    detail = api.instance(started["id"])
    assert detail["instance"]["status"] == "completed"
    assert detail["variables"]["outcome"] == outcome
    assert detail["variables"]["approve_outcome"] == outcome
    entered = [h["node_id"] for h in detail["history"] if h["kind"] == "node.entered"]
    other_end = "refused" if end == "granted" else "granted"
    assert entered[-1] == end and other_end not in entered
    completion = [h for h in detail["history"] if h["kind"] == "task.completed"][-1]
    assert (completion["outcome"], completion["opinion"]) == (
        outcome,
        f"{opinion}。审批意见：按规定办理",
    )
    refused(api.try_act(approve, "complete", "head_a"), 409, "instance_ended")


# -- 退回 and 驳回 --


def test_send_back_to_an_earlier_node_goes_to_its_last_handler(api: Api) -> None:
    api.deploy_yaml(LINE)
    started = api.start("line")
    api.walk(started["id"], ("apply", "clerk_a"))
    review = api.task(started["id"], "review")
    with api.unchanged(started["id"]):
        refused(
            api.try_act(review, "send-back", "clerk_b", {"node_id": "apply"}),
            403,
            "not_task_holder",
        )

    sent = api.act(review, "send-back", "rev1", {"node_id": "apply", "opinion": "请补正材料"})
    assert (sent["status"], sent["outcome"], sent["opinion"]) == (
        "completed",
        "send_back",
        "请补正材料",
    )
    again = api.task(started["id"], "apply")
    assert again["assignee_id"] == api.uid("clerk_a") and again["id"] != review["id"]
    assert api.open_nodes(started["id"]) == ["apply"]
    (row,) = api.history(started["id"], "send_back")
    assert row["details"] == {"to": "apply"}


def test_send_back_before_the_split_cancels_the_other_branch(api: Api) -> None:
    api.deploy(DATA.joinpath("review.bpmn").read_text(), "application/xml")
    started = api.start("review")
    api.walk(started["id"], ("accept", "clerk_a"))
    review_a, review_b = api.task(started["id"], "review_a"), api.task(started["id"], "review_b")
    api.act(review_a, "claim", "rev1")

    api.act(review_a, "send-back", "rev1", {"node_id": "accept", "opinion": "受理有误"})
    cancelled = api.tasks(started["id"], "review_b")
    assert [(t["status"], t["cancel_reason"]) for t in cancelled] == [("cancelled", "send_back")]
    assert [t["node_id"] for t in api.instance(started["id"])["tokens"]] == ["accept"]
    # the split runs again once 受理 is redone
    api.walk(started["id"], ("accept", "clerk_a"))
    assert api.open_nodes(started["id"]) == ["review_a", "review_b"]
    assert review_b["id"] not in {
        t["id"] for t in api.tasks(started["id"]) if t["status"] == "open"
    }


def test_send_back_inside_one_branch_leaves_the_other_running(api: Api) -> None:
    api.deploy_yaml(BRANCHES)
    started = api.start("branches")
    api.walk(started["id"], ("apply", "clerk_a"), ("a1", "rev1"))
    b = api.task(started["id"], "b")

    api.act(api.task(started["id"], "a2"), "send-back", "rev1", {"node_id": "a1"})
    assert api.open_nodes(started["id"]) == ["a1", "b"]
    assert api.task(started["id"], "b")["id"] == b["id"]  # untouched
    # the join still waits for the re-run branch
    api.walk(started["id"], ("b", "rev2"), ("a1", "rev1"))
    assert api.open_nodes(started["id"]) == ["a2"]
    api.walk(started["id"], ("a2", "rev1"))
    assert api.open_nodes(started["id"]) == ["final"]


def test_send_back_into_a_running_sibling_branch_is_refused(api: Api) -> None:
    api.deploy_yaml(BRANCHES)
    started = api.start("branches")
    api.walk(started["id"], ("apply", "clerk_a"), ("a1", "rev1"))
    b = api.task(started["id"], "b")
    with api.unchanged(started["id"]):
        answer = refused(
            api.try_act(b, "send-back", "rev2", {"node_id": "a1"}), 422, "node_in_other_branch"
        )
    assert answer["details"] == {"node": "a1"}


def test_send_back_after_the_join_reruns_only_that_branch(api: Api) -> None:
    api.deploy(DATA.joinpath("review.bpmn").read_text(), "application/xml")
    started = api.start("review")
    api.walk(started["id"], ("accept", "clerk_a"), ("review_a", "rev1"), ("review_b", "rev2"))
    approve = api.task(started["id"], "approve")

    api.act(approve, "send-back", "boss", {"node_id": "review_b", "opinion": "B 意见不清"})
    rerun = api.task(started["id"], "review_b")
    assert rerun["assignee_id"] == api.uid("rev2")  # whoever handled it last
    assert api.open_nodes(started["id"]) == ["review_b"]  # 审核A is not redone
    api.walk(started["id"], ("review_b", "rev2"))
    assert api.open_nodes(started["id"]) == ["approve"]


def test_send_back_out_of_a_countersign_cancels_the_whole_group(api: Api) -> None:
    api.deploy_yaml(SIGN)
    started = api.start("sign", variables={"signers": ["rev1", "rev2", "rev3"]})
    api.walk(
        started["id"],
        ("apply", "clerk_a"),
    )
    signed = api.complete(api.task(started["id"], "sign", "rev1"), "rev1", opinion="同意")

    api.act(api.task(started["id"], "sign", "rev2"), "send-back", "rev2", {"node_id": "apply"})
    group = {t["assignee_id"]: t for t in api.tasks(started["id"], "sign")}
    assert group[api.uid("rev1")]["status"] == "completed"  # kept in history
    assert group[api.uid("rev1")]["id"] == signed["id"]
    assert group[api.uid("rev2")]["outcome"] == "send_back"
    assert (group[api.uid("rev3")]["status"], group[api.uid("rev3")]["cancel_reason"]) == (
        "cancelled",
        "send_back",
    )
    assert api.open_nodes(started["id"]) == ["apply"]
    # the node runs afresh: three new signers
    api.walk(started["id"], ("apply", "clerk_a"))
    assert api.open_nodes(started["id"]) == ["sign", "sign", "sign"]


def test_reject_to_applicant_returns_to_the_first_task(api: Api) -> None:
    api.deploy_yaml(LINE)
    started = api.start("line")
    api.walk(started["id"], ("apply", "clerk_a"), ("review", "rev1"))
    approve = api.task(started["id"], "approve")
    with api.unchanged(started["id"]):
        refused(api.try_act(approve, "reject-to-applicant", "rev2"), 403, "not_task_holder")

    rejected = api.act(approve, "reject-to-applicant", "boss", {"opinion": "不符合条件，驳回"})
    assert (rejected["outcome"], rejected["opinion"]) == ("reject", "不符合条件，驳回")
    assert api.open_nodes(started["id"]) == ["apply"]
    assert api.task(started["id"], "apply")["assignee_id"] == api.uid("clerk_a")
    (row,) = api.history(started["id"], "reject_to_applicant")
    assert row["details"] == {"to": "apply"} and row["user_id"] == api.uid("boss")


# -- 转办, 委派, 代理 --


def start_at_review(api: Api) -> tuple[int, dict[str, Any]]:
    """A ``line`` instance whose 申请 is done: its id and the open 审核 task (rev1's)."""
    api.deploy_yaml(LINE)
    started = api.start("line")
    api.walk(started["id"], ("apply", "clerk_a"))
    return started["id"], api.task(started["id"], "review")


def test_transfer_hands_the_task_to_someone_else(api: Api) -> None:
    instance_id, review = start_at_review(api)
    with api.unchanged(instance_id):
        refused(
            api.try_act(review, "transfer", "rev1", {"user_id": api.uid("rev1")}), 422, "same_user"
        )
        refused(api.try_act(review, "transfer", "rev1", {"user_id": 987654}), 404, "user_not_found")
        refused(
            api.try_act(review, "transfer", "rev2", {"user_id": api.uid("rev3")}),
            403,
            "not_task_holder",
        )

    moved = api.act(
        review, "transfer", "rev1", {"user_id": api.uid("rev2"), "opinion": "请代为审核"}
    )
    assert moved["assignee_id"] == api.uid("rev2")
    refused(api.try_act(review, "complete", "rev1"), 403, "not_task_holder")
    # a manager of the department may transfer too
    api.act(review, "transfer", "head_a", {"user_id": api.uid("rev3")})
    api.complete(api.task(instance_id, "review"), "rev3")
    kinds = [h["kind"] for h in api.instance(instance_id)["history"]]
    assert kinds.count("task.transfer") == 2


def test_delegate_then_resolve_returns_the_task_to_its_owner(api: Api) -> None:
    instance_id, review = start_at_review(api)
    lent = api.act(review, "delegate", "rev1", {"user_id": api.uid("rev2")})
    assert (lent["status"], lent["owner_id"], lent["assignee_id"]) == (
        "delegated",
        api.uid("rev1"),
        api.uid("rev2"),
    )
    with api.unchanged(instance_id):
        refused(api.try_act(review, "complete", "rev1"), 409, "task_delegated")
        refused(api.try_act(review, "complete", "rev2"), 409, "task_delegated")
        refused(api.try_act(review, "resolve", "rev1"), 403, "not_task_holder")
    assert api.read(f"/tasks/{review['id']}", "rev2")["operations"] == ["resolve"]

    back = api.act(review, "resolve", "rev2", {"opinion": "已核实，建议同意"})
    assert (back["status"], back["assignee_id"], back["owner_id"]) == (
        "open",
        api.uid("rev1"),
        None,
    )
    (row,) = api.history(instance_id, "task.resolve")
    assert row["details"]["opinion"] == "已核实，建议同意"
    api.complete(back, "rev1", opinion="同意")
    assert api.open_nodes(instance_id) == ["approve"]


def test_a_kernel_delegation_lets_the_deputy_work_on_behalf(api: Api) -> None:
    instance_id, review = start_at_review(api)
    now = clock.now()
    ok(
        api.client.post(
            "/api/v1/org/delegations",
            json={
                "from_user_id": api.uid("rev1"),
                "to_user_id": api.uid("rev3"),
                "starts_at": (now - timedelta(minutes=1)).isoformat(),
                "ends_at": (now + timedelta(days=1)).isoformat(),
            },
            headers=api.headers("rev1"),
        ),
        201,
    )
    assert [t["id"] for t in api.read("/tasks/todo", "rev3")["items"]] == [review["id"]]
    done = api.complete(review, "rev3", opinion="代为同意")
    assert (done["completed_by_user_id"], done["on_behalf_of_user_id"]) == (
        api.uid("rev3"),
        api.uid("rev1"),
    )
    row = api.history(instance_id, "task.completed")[-1]
    assert (row["user_id"], row["on_behalf_of_user_id"]) == (api.uid("rev3"), api.uid("rev1"))


# -- 加签 and 减签 --


def test_add_signer_before_works_first_then_the_original(api: Api) -> None:
    instance_id, review = start_at_review(api)
    (added,) = api.act(
        review, "add-signer", "rev1", {"user_ids": [api.uid("rev2")], "position": "before"}
    )
    assert (added["kind"], added["status"], added["assignee_id"]) == (
        "before",
        "open",
        api.uid("rev2"),
    )
    assert api.task(instance_id, "review", "rev1")["status"] == "pending"
    refused(api.try_act(review, "complete", "rev1"), 409, "task_not_ready")

    api.complete(added, "rev2", opinion="建议同意")
    assert api.task(instance_id, "review", "rev1")["status"] == "open"
    assert api.open_nodes(instance_id) == ["review"]
    api.complete(review, "rev1")
    assert api.open_nodes(instance_id) == ["approve"]


def test_add_signer_after_follows_the_original(api: Api) -> None:
    instance_id, review = start_at_review(api)
    (added,) = api.act(
        review, "add-signer", "rev1", {"user_ids": [api.uid("rev2")], "position": "after"}
    )
    assert (added["kind"], added["status"]) == ("after", "pending")
    api.complete(review, "rev1")
    assert api.task(instance_id, "review", "rev2")["status"] == "open"
    assert api.open_nodes(instance_id) == ["review"]
    api.complete(added, "rev2")
    assert api.open_nodes(instance_id) == ["approve"]


def test_add_signer_in_parallel_makes_a_countersign(api: Api) -> None:
    instance_id, review = start_at_review(api)
    added = api.act(
        review,
        "add-signer",
        "rev1",
        {"user_ids": [api.uid("rev2"), api.uid("rev3")], "position": "parallel"},
    )
    assert [(t["kind"], t["status"]) for t in added] == [("parallel", "open")] * 2
    api.complete(review, "rev1")
    api.complete(added[0], "rev2")
    assert api.open_nodes(instance_id) == ["review"]
    api.complete(added[1], "rev3")
    assert api.open_nodes(instance_id) == ["approve"]


def test_remove_signer_cancels_a_signer_but_never_the_last(api: Api) -> None:
    instance_id, review = start_at_review(api)
    added = api.act(review, "add-signer", "rev1", {"user_ids": [api.uid("rev2"), api.uid("rev3")]})
    rev2_task, rev3_task = added
    with api.unchanged(instance_id):
        refused(api.try_act(rev3_task, "remove-signer", "clerk_b"), 403, "not_group_signer")

    removed = api.act(rev3_task, "remove-signer", "rev1", {"opinion": "无需会签"})
    assert (removed["status"], removed["cancel_reason"]) == ("cancelled", "removed")
    api.complete(review, "rev1")
    with api.unchanged(instance_id):
        refused(api.try_act(rev2_task, "remove-signer", "head_a"), 409, "last_signer")
    api.complete(rev2_task, "rev2")
    assert api.open_nodes(instance_id) == ["approve"]


# -- 撤回 and 拿回 --


def test_withdraw_before_the_next_step_starts(api: Api) -> None:
    instance_id, _review = start_at_review(api)
    apply = api.tasks(instance_id, "apply")[0]
    with api.unchanged(instance_id):
        refused(api.try_act(apply, "withdraw", "rev1"), 403, "not_sender")

    back = api.act(apply, "withdraw", "clerk_a")
    assert (back["status"], back["outcome"]) == ("open", None)
    assert api.open_nodes(instance_id) == ["apply"]
    (cancelled,) = api.tasks(instance_id, "review")
    assert (cancelled["status"], cancelled["cancel_reason"]) == ("cancelled", "withdraw")
    api.walk(instance_id, ("apply", "clerk_a"))
    assert api.open_nodes(instance_id) == ["review"]


def test_withdraw_across_a_parallel_split_cancels_both_branches(api: Api) -> None:
    api.deploy(DATA.joinpath("review.bpmn").read_text(), "application/xml")
    started = api.start("review")
    api.walk(started["id"], ("accept", "clerk_a"))
    assert api.open_nodes(started["id"]) == ["review_a", "review_b"]

    api.act(api.tasks(started["id"], "accept")[0], "withdraw", "clerk_a")
    assert api.open_nodes(started["id"]) == ["accept"]
    reasons = {t["cancel_reason"] for t in api.tasks(started["id"]) if t["node_id"] != "accept"}
    assert reasons == {"withdraw"}
    # the split and its join work as before
    api.walk(started["id"], ("accept", "clerk_a"), ("review_a", "rev1"), ("review_b", "rev2"))
    assert api.open_nodes(started["id"]) == ["approve"]


@pytest.mark.parametrize("who", ["last", "first"])
def test_withdraw_after_a_parallel_join_fired(api: Api, who: str) -> None:
    """Either branch's sender may withdraw while the step after the join is untouched:
    that step is cancelled, the other branch's arrival waits at the join again."""
    api.deploy(DATA.joinpath("review.bpmn").read_text(), "application/xml")
    started = api.start("review")
    instance_id = started["id"]
    api.walk(instance_id, ("accept", "clerk_a"), ("review_a", "rev1"), ("review_b", "rev2"))
    assert api.open_nodes(instance_id) == ["approve"]
    node, user = ("review_b", "rev2") if who == "last" else ("review_a", "rev1")
    back = api.act(api.tasks(instance_id, node)[0], "withdraw", user)
    assert (back["status"], back["node_id"]) == ("open", node)
    assert api.open_nodes(instance_id) == [node]
    (approve,) = api.tasks(instance_id, "approve")
    assert (approve["status"], approve["cancel_reason"]) == ("cancelled", "withdraw")
    # the task waits in its branch again; the other branch's arrival waits at the join
    assert sorted(t["node_id"] for t in api.instance(instance_id)["tokens"]) == sorted(
        [node, "join"]
    )
    api.walk(instance_id, (node, user))
    assert api.open_nodes(instance_id) == ["approve"]
    api.walk(instance_id, ("approve", "boss"))
    assert api.status(instance_id) == "completed"


def test_no_withdraw_after_a_join_once_the_next_step_started(api: Api) -> None:
    api.deploy(DATA.joinpath("review.bpmn").read_text(), "application/xml")
    started = api.start("review")
    instance_id = started["id"]
    api.walk(instance_id, ("accept", "clerk_a"), ("review_a", "rev1"), ("review_b", "rev2"))
    api.act(api.task(instance_id, "approve"), "claim", "boss")
    for node, user in (("review_a", "rev1"), ("review_b", "rev2")):
        with api.unchanged(instance_id):
            task = api.tasks(instance_id, node)[0]
            refused(api.try_act(task, "withdraw", user), 409, "already_started")


@pytest.mark.parametrize("next_step", ["claimed", "completed"])
def test_withdraw_after_the_next_step_started_is_409(api: Api, next_step: str) -> None:
    instance_id, review = start_at_review(api)
    api.complete(review, "rev1")
    approve = api.task(instance_id, "approve")  # a candidate task of the approvers
    if next_step == "claimed":
        api.act(approve, "claim", "boss")
    else:
        api.complete(approve, "boss")
    with api.unchanged(instance_id):
        refused(api.try_act(review, "withdraw", "rev1"), 409, "already_started")


def test_reclaim_takes_back_a_transferred_or_delegated_task(api: Api) -> None:
    instance_id, review = start_at_review(api)
    api.act(review, "transfer", "rev1", {"user_id": api.uid("rev2")})
    with api.unchanged(instance_id):
        refused(api.try_act(review, "reclaim", "rev3"), 403, "not_previous_holder")
    back = api.act(review, "reclaim", "rev1")
    assert (back["assignee_id"], back["status"]) == (api.uid("rev1"), "open")

    api.act(review, "delegate", "rev1", {"user_id": api.uid("rev2")})
    back = api.act(review, "reclaim", "rev1")
    assert (back["assignee_id"], back["status"], back["owner_id"]) == (
        api.uid("rev1"),
        "open",
        None,
    )

    # once the new holder has started (here: added a signer), it is too late
    api.act(review, "transfer", "rev1", {"user_id": api.uid("rev2")})
    api.act(review, "add-signer", "rev2", {"user_ids": [api.uid("rev3")]})
    with api.unchanged(instance_id):
        refused(api.try_act(review, "reclaim", "rev1"), 409, "already_started")


def test_no_reclaim_once_a_delegated_task_was_resolved(api: Api) -> None:
    instance_id, review = start_at_review(api)
    api.act(review, "delegate", "rev1", {"user_id": api.uid("rev2")})
    api.act(review, "resolve", "rev2", {"opinion": "已核"})
    assert "reclaim" not in api.read(f"/tasks/{review['id']}", "rev1")["operations"]
    with api.unchanged(instance_id):
        assert api.try_act(review, "reclaim", "rev1").status_code in (403, 409)


# -- 催办 and 抄送 --


def test_urge_notifies_once_an_hour(api: Api) -> None:
    instance_id, review = start_at_review(api)
    events = api.outbox_size()
    urged = api.act(review, "urge", "clerk_a", {"message": "请尽快审核"})
    assert urged["id"] == review["id"]
    (row,) = api.history(instance_id, "task.urged")
    assert row["details"] == {"message": "请尽快审核"} and row["user_id"] == api.uid("clerk_a")
    with api.ctx.db.read() as session:
        types = list(session.scalars(select(OutboxEvent.type).order_by(OutboxEvent.seq)))
    assert api.outbox_size() == events + 1 and types[-1].endswith("workflow.task.urged")

    with api.unchanged(instance_id):
        too_soon = refused(api.try_act(review, "urge", "head_a"), 429, "urge_too_soon")
        assert "last_urged_at" in too_soon["details"]
        refused(api.try_act(review, "urge", "clerk_b"), 403, "not_participant")


def test_cc_with_read_status_and_unread_count(api: Api) -> None:
    instance_id, review = start_at_review(api)
    copies = api.do(
        f"/instances/{instance_id}/cc",
        "clerk_a",
        {
            "user_ids": [api.uid("clerk_b"), api.uid("rev2")],
            "task_id": review["id"],
            "note": "请知悉",
        },
        201,
    )
    assert [c["user_id"] for c in copies] == [api.uid("clerk_b"), api.uid("rev2")]
    api.do(f"/instances/{instance_id}/cc", "head_a", {"user_ids": [api.uid("clerk_b")]}, 201)

    inbox = api.read("/tasks/cc", "clerk_b")
    assert (inbox["total"], inbox["unread"], len(inbox["items"])) == (2, 2, 2)
    first = inbox["items"][-1]
    assert (first["note"], first["task_id"], first["read_at"]) == ("请知悉", review["id"], None)
    read = api.do(f"/tasks/cc/{first['id']}/read", "clerk_b")
    assert read["read_at"] is not None
    inbox = api.read("/tasks/cc", "clerk_b")
    assert (inbox["total"], inbox["unread"]) == (2, 1)
    unread = api.read("/tasks/cc", "clerk_b", unread_only="true")
    assert (unread["total"], [c["id"] for c in unread["items"]]) == (1, [inbox["items"][0]["id"]])
    page = api.read("/tasks/cc", "clerk_b", limit=1, offset=1)
    assert (page["total"], len(page["items"])) == (2, 1)

    with api.unchanged(instance_id):
        refused(api.post(f"/tasks/cc/{first['id']}/read", "rev2"), 404, "not_found")
        copy = {"user_ids": [api.uid("rev3")]}
        refused(api.post(f"/instances/{instance_id}/cc", "clerk_b", copy), 403, "not_participant")


# -- 挂起 / 激活, 终止, 跳转 --


def test_suspend_blocks_operations_until_resume(api: Api) -> None:
    instance_id, review = start_at_review(api)
    path = f"/instances/{instance_id}"
    with api.unchanged(instance_id):
        refused(api.post(f"{path}/suspend", "clerk_a"), 403, "forbidden")
        refused(api.post(f"{path}/resume", "head_a"), 409, "instance_not_suspended")
    assert api.do(f"{path}/suspend", "head_a", {"reason": "等待补充材料"})["status"] == "suspended"

    blocked: list[tuple[str, Any]] = [
        ("complete", {}),
        ("send-back", {"node_id": "apply"}),
        ("transfer", {"user_id": api.uid("rev2")}),
        ("delegate", {"user_id": api.uid("rev2")}),
        ("add-signer", {"user_ids": [api.uid("rev2")]}),
    ]
    with api.unchanged(instance_id):
        for operation, body in blocked:
            refused(api.try_act(review, operation, "rev1", body), 409, "instance_suspended")
        refused(api.try_act(review, "urge", "clerk_a"), 409, "instance_suspended")
        refused(api.post(f"{path}/suspend", "head_a"), 409, "instance_suspended")
        refused(
            api.post(f"{path}/jump", "admin", {"node_id": "approve"}), 409, "instance_suspended"
        )
    assert api.read(f"/tasks/{review['id']}", "rev1")["operations"] == []

    assert api.do(f"{path}/resume", "head_a")["status"] == "running"
    api.complete(review, "rev1")
    kinds = [h["kind"] for h in api.instance(instance_id)["history"]]
    assert kinds.index("instance.suspended") < kinds.index("instance.resumed")


def test_terminate_ends_the_instance_and_cancels_its_tasks(api: Api) -> None:
    instance_id, review = start_at_review(api)
    path = f"/instances/{instance_id}"
    with api.unchanged(instance_id):
        refused(api.post(f"{path}/terminate", "rev1"), 403, "forbidden")
    ended = api.do(f"{path}/terminate", "head_a", {"reason": "申请人撤件"})
    assert (ended["status"], ended["ended_at"] is not None) == ("terminated", True)
    (task,) = api.tasks(instance_id, "review")
    assert task["status"] == "cancelled"
    assert api.instance(instance_id)["tokens"] == []
    with api.unchanged(instance_id):
        refused(api.post(f"{path}/terminate", "head_a"), 409, "instance_ended")
        refused(api.post(f"{path}/resume", "head_a"), 409, "instance_not_suspended")
        refused(api.try_act(review, "complete", "rev1"), 409, "instance_ended")


CALLER = """
key: caller
steps:
  - {id: sub, call: callee}
  - {id: after, task: {assignee: clerk_a}}
"""
CALLEE = """
key: callee
steps:
  - {id: work, task: {assignee: rev1}}
"""


def test_terminate_also_terminates_a_called_child(api: Api) -> None:
    api.deploy_yaml(CALLEE)
    api.deploy_yaml(CALLER)
    parent = api.start("caller")
    (work,) = api.read("/tasks/todo", "rev1")["items"]
    child = api.instance(work["instance_id"])["instance"]
    assert (child["process_key"], child["parent_instance_id"]) == ("callee", parent["id"])

    api.do(f"/instances/{parent['id']}/terminate", "head_a", {"reason": "撤件"})
    assert api.status(child["id"]) == "terminated"
    refused(api.try_act(work, "complete", "rev1"), 409, "instance_ended")
    assert api.read("/tasks/todo", "rev1")["total"] == 0


def test_jump_is_for_administrators(api: Api) -> None:
    instance_id, _review = start_at_review(api)
    path = f"/instances/{instance_id}/jump"
    with api.unchanged(instance_id):
        refused(api.post(path, "head_a", {"node_id": "archive"}), 403, "forbidden")
        refused(api.post(path, "admin", {"node_id": "nowhere"}), 422, "unknown_node")
    jumped = api.do(path, "admin", {"node_id": "archive"})
    assert jumped["status"] == "running"
    assert api.open_nodes(instance_id) == ["archive"]
    (task,) = api.tasks(instance_id, "review")
    assert (task["status"], task["cancel_reason"]) == ("cancelled", "jump")
    (row,) = api.history(instance_id, "jump")
    assert row["details"] == {"from": ["review"]}
    api.walk(instance_id, ("archive", "clerk_a"))
    assert api.status(instance_id) == "completed"


def test_a_jump_into_one_parallel_branch_does_not_strand_the_instance(api: Api) -> None:
    api.deploy(DATA.joinpath("review.bpmn").read_text(), "application/xml")
    started = api.start("review")
    ok(api.post(f"/instances/{started['id']}/jump", "admin", {"node_id": "review_a"}))
    # 审核A runs again; 审核B counts as finished: its arrival already waits at the join
    assert api.open_nodes(started["id"]) == ["review_a"]
    api.walk(started["id"], ("review_a", "rev1"))
    detail = api.instance(started["id"])
    stranded = detail["instance"]["status"] == "running" and not api.open_nodes(started["id"])
    assert not stranded, detail["tokens"]
    assert api.open_nodes(started["id"]) == ["approve"]
    api.walk(started["id"], ("approve", "boss"))
    assert api.status(started["id"]) == "completed"


def test_a_jump_onto_a_parallel_join_moves_past_it(api: Api) -> None:
    api.deploy(DATA.joinpath("review.bpmn").read_text(), "application/xml")
    started = api.start("review")
    api.walk(started["id"], ("accept", "clerk_a"), ("review_a", "rev1"))
    ok(api.post(f"/instances/{started['id']}/jump", "admin", {"node_id": "join"}))
    assert api.open_nodes(started["id"]) == ["approve"]
    assert [t["node_id"] for t in api.instance(started["id"])["tokens"]] == ["approve"]


def test_a_jump_into_a_nested_branch_needs_only_that_branch(api: Api) -> None:
    api.deploy_yaml(NESTED)
    started = api.start("nested_review")
    ok(api.post(f"/instances/{started['id']}/jump", "admin", {"node_id": "inner_a"}))
    assert api.open_nodes(started["id"]) == ["inner_a"]
    api.walk(started["id"], ("inner_a", "rev1"))
    assert api.open_nodes(started["id"]) == ["final"]
    api.walk(started["id"], ("final", "boss"))
    assert api.status(started["id"]) == "completed"


# -- messages, service tasks, call activities (approval.bpmn) --

ISSUE_CERTIFICATE = """
key: issue_certificate
name: 出具证明
steps:
  - {id: issue, name: 出具, task: {assignee: clerk_a}}
"""


@pytest.fixture
def connector() -> dict[str, Any]:
    """The ``credit_check`` connector approval.bpmn and the incident test call; set
    ``fail`` to make it fail. (Connectors are process-global: each test registers anew.)"""
    state: dict[str, Any] = {"fail": False, "calls": 0}

    def call(_ctx: Context, _request: dict[str, Any]) -> dict[str, Any]:
        state["calls"] += 1
        if state["fail"]:
            raise ConnectionError("credit registry down")
        return {"credit_score": 80}

    services.register_connector("credit_check", call)
    return state


def test_message_correlation_through_approval_bpmn(api: Api, connector: dict[str, Any]) -> None:
    api.deploy_yaml(ISSUE_CERTIFICATE)
    (deployed,) = api.deploy(DATA.joinpath("approval.bpmn").read_text(), "application/bpmn+xml")
    assert deployed["key"] == "subsidy_approval"
    started = api.start("subsidy_approval", variables={"amount": 5000, "application_no": "BZ-7"})
    accept = api.task(started["id"], "accept")
    api.act(accept, "claim", "clerk_a")
    api.complete(accept, "clerk_a", opinion="受理")
    run_due_jobs(api.ctx, "test-worker", 10)  # 信用核查 (the connector)
    assert connector["calls"] == 1
    assert api.instance(started["id"])["variables"]["credit_score"] == 80
    api.walk(started["id"], ("review", "rev1"))
    assert [t["node_id"] for t in api.instance(started["id"])["tokens"]] == ["wait_payment"]

    with api.unchanged(started["id"]):
        wrong = {"name": "payment_confirmed", "key": "BZ-8"}
        refused(api.post("/messages", "clerk_a", wrong), 404, "no_waiting_message")
        refused(
            api.post("/messages", "clerk_b", {"name": "payment_confirmed", "key": "BZ-7"}),
            403,
            "not_allowed",
        )
    delivered = api.do(
        "/messages",
        "clerk_a",
        {"name": "payment_confirmed", "key": "BZ-7", "variables": {"paid": 5000}},
    )
    assert delivered["id"] == started["id"]
    detail = api.instance(started["id"])
    assert detail["variables"]["paid"] == 5000
    assert [t["node_id"] for t in detail["tokens"]] == ["issue"]  # the call activity waits
    (child,) = [
        t
        for t in api.read("/tasks/todo", "clerk_a")["items"]
        if t["process_key"] == "issue_certificate"
    ]
    api.complete(child, "clerk_a")
    assert api.status(started["id"]) == "completed"


SERVICE = """
key: service
steps:
  - {id: check, service: {connector: credit_check, retries: 0}}
  - {id: decide, task: {assignee: clerk_a}}
"""


def test_an_incident_is_retried_by_an_administrator(api: Api, connector: dict[str, Any]) -> None:
    api.deploy_yaml(SERVICE)
    started = api.start("service")
    connector["fail"] = True
    run_due_jobs(api.ctx, "test-worker", 10)
    (incident,) = api.instance(started["id"])["incidents"]
    assert incident["error"] == "ConnectionError: credit registry down"
    assert incident["resolved_at"] is None

    path = f"/incidents/{incident['id']}/retry"
    with api.unchanged(started["id"]):
        refused(api.post(path, "head_a"), 403, "forbidden")
    connector["fail"] = False
    retried = api.do(path, "admin")
    assert retried["resolved_at"] is not None
    refused(api.post(path, "admin"), 409, "already_resolved")
    run_due_jobs(api.ctx, "test-worker", 10)
    assert api.open_nodes(started["id"]) == ["decide"]
    assert connector["calls"] == 2


# -- version migration --

MIGRATE_V2 = LINE.replace(
    "{id: review, name: 审核",
    "{id: check, name: 初核, task: {assignee: rev2}}\n  - {id: review, name: 审核",
)


def test_migrate_running_instances_to_a_new_version(api: Api) -> None:
    api.deploy_yaml(LINE)
    first, second = api.start("line"), api.start("line")
    api.walk(second["id"], ("apply", "clerk_a"))  # at review
    api.deploy_yaml(MIGRATE_V2)  # v2 adds 初核 before 审核
    renamed = LINE.replace("id: review,", "id: audit,").replace("id: apply,", "id: submit,")
    api.deploy_yaml(renamed)  # v3: apply → submit, review → audit

    body = {"key": "line", "from_version": 1, "to_version": 3}
    with api.unchanged(first["id"]):
        refused(api.post("/instances/migrate", "head_a", body), 403, "forbidden")
        unmapped = refused(api.post("/instances/migrate", "admin", body), 422, "node_unmapped")
        assert unmapped["details"]["node"] in {"apply", "review"}
    assert api.instance(second["id"])["instance"]["version"] == 1

    moved = api.do("/instances/migrate", "admin", {**body, "to_version": 2})
    assert moved == {"migrated": [first["id"], second["id"]]}
    assert api.instance(first["id"])["instance"]["version"] == 2
    api.walk(first["id"], ("apply", "clerk_a"))
    assert api.open_nodes(first["id"]) == ["check"]  # the new version's path
    (row,) = api.history(first["id"], "instance.migrated")
    assert (row["details"]["from"], row["details"]["to"]) == (1, 2)

    mapping = {"apply": "submit", "review": "audit", "check": "audit"}
    mapped = api.do(
        "/instances/migrate", "admin", {**body, "from_version": 2, "node_mapping": mapping}
    )
    assert mapped == {"migrated": [first["id"], second["id"]]}
    assert api.open_nodes(second["id"]) == ["audit"]


@pytest.mark.parametrize("operation", ["send-back", "reject-to-applicant"])
def test_send_back_after_a_renaming_migration(api: Api, operation: str) -> None:
    api.deploy_yaml(LINE)
    started = api.start("line")
    api.walk(started["id"], ("apply", "clerk_a"))
    api.deploy_yaml(LINE.replace("id: review,", "id: audit,").replace("id: apply,", "id: submit,"))
    mapping = {"apply": "submit", "review": "audit"}
    body = {"key": "line", "from_version": 1, "to_version": 2, "node_mapping": mapping}
    api.do("/instances/migrate", "admin", body)
    audit = api.task(started["id"], "audit")

    answer = api.try_act(
        audit, operation, "rev1", {"node_id": "submit"} if "send" in operation else {}
    )
    ok(answer)
    assert api.task(started["id"], "submit")["assignee_id"] == api.uid("clerk_a")


# -- the workbench lists and the task page --


def test_todo_and_done_lists_count_filter_and_page(api: Api) -> None:
    api.deploy_yaml(LINE)
    ids = [api.start("line", business_key=f"BK-{n}")["id"] for n in range(5)]
    todo = api.read("/tasks/todo", "clerk_a", limit=2)
    assert (todo["total"], len(todo["items"]), todo["offset"], todo["limit"]) == (5, 2, 0, 2)
    assert [t["instance_id"] for t in todo["items"]] == ids[::-1][:2]  # newest first
    assert len(api.read("/tasks/todo", "clerk_a", limit=2, offset=4)["items"]) == 1
    beyond = api.read("/tasks/todo", "clerk_a", offset=10)
    assert (beyond["total"], beyond["items"]) == (5, [])
    by_key = api.read("/tasks/todo", "clerk_a", business_key="BK-3")
    assert [t["instance_id"] for t in by_key["items"]] == [ids[3]]
    assert api.read("/tasks/todo", "clerk_a", process_key="other")["total"] == 0
    assert api.read("/tasks/todo", "clerk_a", node_id="apply")["total"] == 5
    hour_ago = (clock.now() - timedelta(hours=1)).isoformat()
    assert api.read("/tasks/todo", "clerk_a", created_from=hour_ago)["total"] == 5
    assert api.read("/tasks/todo", "clerk_a", created_to=hour_ago)["total"] == 0

    for instance_id in ids[:3]:
        api.walk(instance_id, ("apply", "clerk_a"))
    assert api.read("/tasks/todo", "clerk_a")["total"] == 2
    assert api.read("/tasks/todo", "rev1")["total"] == 3
    done = api.read("/tasks/done", "clerk_a", limit=2, offset=1)
    assert (done["total"], len(done["items"])) == (3, 2)
    assert {t["status"] for t in done["items"]} == {"completed"}

    api.walk(ids[0], ("review", "rev1"))
    # a candidate task (any approver of dept A) shows in the approver's list, not others'
    assert [t["node_id"] for t in api.read("/tasks/todo", "boss")["items"]] == ["approve"]
    assert api.read("/tasks/todo", "clerk_b")["total"] == 0

    naive = {"created_from": "2025-01-01T00:00:00"}
    for params in ({"limit": 0}, {"limit": 201}, {"offset": -1}, naive):
        refused(api.get("/tasks/todo", "clerk_a", params=params), 422, "invalid_request")
    refused(api.get("/tasks/done", "clerk_a", params={"limit": 0}), 422, "invalid_request")


def test_get_task_lists_the_operations_the_caller_may_perform(api: Api) -> None:
    instance_id, review = start_at_review(api)
    path = f"/tasks/{review['id']}"
    mine = api.read(path, "rev1")
    assert mine["task"]["id"] == review["id"]
    assert set(mine["operations"]) == {
        "complete",
        "send_back",
        "reject_to_applicant",
        "transfer",
        "add_signer",
        "cc",
        "delegate",
    }
    assert api.read(path, "clerk_a")["operations"] == ["urge"]  # the starter
    assert api.read(f"/tasks/{api.tasks(instance_id, 'apply')[0]['id']}", "clerk_a")[
        "operations"
    ] == ["withdraw"]
    refused(api.get(path, "clerk_b"), 404, "not_found")

    api.act(review, "transfer", "rev1", {"user_id": api.uid("rev2")})
    assert set(api.read(path, "rev1")["operations"]) == {"reclaim", "urge"}
    api.complete(review, "rev2")
    approve = api.task(instance_id, "approve")
    assert "claim" in api.read(f"/tasks/{approve['id']}", "boss")["operations"]


# -- history export --


def _xes_traces(content: bytes) -> list[list[dict[str, str]]]:
    """Per trace, each event's attributes by key (namespaces ignored)."""

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    root = ElementTree.fromstring(content)
    return [
        [
            {a.get("key", ""): a.get("value", "") for a in event}
            for event in trace
            if local(event.tag) == "event"
        ]
        for trace in root
        if local(trace.tag) == "trace"
    ]


def test_xes_export_returns_an_event_log(api: Api) -> None:
    api.deploy_yaml(LINE)
    first, second = api.start("line"), api.start("line")
    api.walk(first["id"], ("apply", "clerk_a"), ("review", "rev1"))
    api.walk(second["id"], ("apply", "clerk_a"))

    response = api.get("/history.xes", "auditor", params={"key": "line"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    assert 'filename="line.xes"' in response.headers["content-disposition"]
    traces = _xes_traces(response.content)
    assert len(traces) == 2
    events = [(e["concept:name"], e["org:resource"]) for trace in traces for e in trace]
    assert sorted(events) == [("审核", "rev1"), ("申请", "clerk_a"), ("申请", "clerk_a")]
    assert all(e["lifecycle:transition"] == "complete" for trace in traces for e in trace)

    one = api.get("/history.xes", "admin", params={"instance_id": second["id"]})
    assert one.status_code == 200, one.text
    assert [[e["concept:name"] for e in trace] for trace in _xes_traces(one.content)] == [["申请"]]
    refused(api.get("/history.xes", "clerk_a", params={"key": "line"}), 403, "forbidden")


# -- concurrency --


def _race(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run the calls at once, one thread each; their responses in the calls' order."""
    barrier = threading.Barrier(len(calls))
    results: list[httpx.Response | None] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    done = [r for r in results if r is not None]
    assert len(done) == len(calls), "a request did not finish"
    return done


def _post_from(
    client: TestClient, url: str, headers: dict[str, str], body: Any = None
) -> Callable[[], httpx.Response]:
    """A POST of ``body`` to ``url`` through ``client``, to run later."""
    return lambda: client.post(BASE + url, json=body or {}, headers=headers)


def _clients(api: Api, n: int) -> list[TestClient]:
    """One TestClient per thread, all on the world's app (a client is not thread-safe)."""
    return [TestClient(api.client.app) for _ in range(n)]


def test_eight_clients_completing_one_task_one_wins(api: Api) -> None:
    instance_id, review = start_at_review(api)
    url = f"/tasks/{review['id']}/complete"
    body = {"outcome": "approve", "opinion": "同意"}
    before = api.audit_size()

    responses = _race([_post_from(c, url, api.headers("rev1"), body) for c in _clients(api, 8)])
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 7, [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            refused(response, 409, response.json()["code"])
            assert response.json()["code"] in {"task_already_completed", "stale"}
    assert api.audit_size() == before + 1
    with api.ctx.db.read() as session:
        completions = session.scalar(
            select(func.count())
            .select_from(WfHistory)
            .where(WfHistory.task_id == review["id"], WfHistory.kind == "task.completed")
        )
    assert completions == 1
    assert api.open_nodes(instance_id) == ["approve"]
    assert len(api.tasks(instance_id, "approve")) == 1


def test_concurrent_claims_of_one_candidate_task_one_wins(api: Api) -> None:
    instance_id, review = start_at_review(api)
    api.complete(review, "rev1")
    approve = api.task(instance_id, "approve")
    url = f"/tasks/{approve['id']}/claim"
    responses = _race([_post_from(c, url, api.headers("boss")) for c in _clients(api, 6)])
    assert sorted(r.status_code for r in responses) == [200] + [409] * 5
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"already_claimed"}
    assert api.task(instance_id, "approve")["assignee_id"] == api.uid("boss")


def test_two_branches_completed_at_once_fire_the_join_once(api: Api) -> None:
    api.deploy(DATA.joinpath("review.bpmn").read_text(), "application/xml")
    for _ in range(3):  # the interleaving differs from round to round
        started = api.start("review")
        api.walk(started["id"], ("accept", "clerk_a"))
        a, b = api.task(started["id"], "review_a"), api.task(started["id"], "review_b")
        first, second = _clients(api, 2)
        responses = _race(
            [
                _post_from(first, f"/tasks/{a['id']}/complete", api.headers("rev1")),
                _post_from(second, f"/tasks/{b['id']}/complete", api.headers("rev2")),
            ]
        )
        assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
        assert api.open_nodes(started["id"]) == ["approve"]
        assert [t["node_id"] for t in api.instance(started["id"])["tokens"]] == ["approve"]


def test_withdraw_racing_the_next_claim_one_wins(api: Api) -> None:
    api.deploy_yaml(LINE)
    for _ in range(3):
        started = api.start("line")
        api.walk(started["id"], ("apply", "clerk_a"), ("review", "rev1"))
        review, approve = api.tasks(started["id"], "review")[0], api.task(started["id"], "approve")
        first, second = _clients(api, 2)
        withdraw, claim = _race(
            [
                _post_from(first, f"/tasks/{review['id']}/withdraw", api.headers("rev1")),
                _post_from(second, f"/tasks/{approve['id']}/claim", api.headers("boss")),
            ]
        )
        assert sorted([withdraw.status_code, claim.status_code]) == [200, 409]
        if withdraw.status_code == 200:
            refused(claim, 409, "task_cancelled")
            assert api.open_nodes(started["id"]) == ["review"]
        else:
            refused(withdraw, 409, "already_started")
            assert api.task(started["id"], "approve")["assignee_id"] == api.uid("boss")
