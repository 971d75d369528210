"""Fixtures for the workflow engine: a small organisation, graphs built in code, helpers.

Graphs are built directly from the model dataclasses (``graph(...)``), so these tests
exercise the runtime without the BPMN and YAML importers.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select

from xietong.kernel import audit
from xietong.kernel.access import Actor, Role, operator_actor
from xietong.kernel.context import Context
from xietong.kernel.org import service
from xietong.kernel.org.models import User
from xietong.kernel.org.scopes import actor_for_user
from xietong.kernel.workflow import definitions, instances
from xietong.kernel.workflow.model import (
    Assignment,
    Flow,
    MultiInstance,
    Node,
    ProcessGraph,
)
from xietong.kernel.workflow.store import WfTask, WfToken
from xietong.kernel.workflow.views import InstanceView, TaskView
from xietong.plugins import plugin_manager

USERS = [
    ("applicant", "dept-a", Role.WINDOW_CLERK),
    ("rev1", "dept-a", Role.REVIEWER),
    ("rev2", "dept-a", Role.REVIEWER),
    ("rev3", "dept-a", Role.REVIEWER),
    ("boss", "dept-a", Role.APPROVER),
    ("head", "dept-a", Role.HEAD),
    ("clerk_b", "dept-b", Role.WINDOW_CLERK),
    ("admin", "dept-a", Role.ADMIN),
    ("auditor", "dept-a", Role.AUDITOR),
]


def node(node_id: str, kind: str = "user_task", **values: Any) -> Node:
    return Node(id=node_id, kind=kind, name=values.pop("name", node_id), **values)  # type: ignore[arg-type]


def task(node_id: str, assignee: str | None = None, **values: Any) -> Node:
    if assignee is not None:
        values["assignment"] = Assignment(assignee=assignee)
    return node(node_id, "user_task", **values)


def signers(node_id: str, mode: str, names: str, **values: Any) -> Node:
    multi = MultiInstance(
        mode=mode,  # type: ignore[arg-type]
        signers=names,
        pass_ratio=values.pop("pass_ratio", None),
        weights=values.pop("weights", None),
    )
    return node(node_id, "user_task", multi=multi, **values)


def graph(key: str, nodes: list[Node], flows: list[tuple[str, ...]]) -> ProcessGraph:
    """Flows as ``(source, target)`` or ``(source, target, condition)``; ids f1, f2, …"""
    built = []
    for index, spec in enumerate(flows, start=1):
        condition = spec[2] if len(spec) > 2 else None
        flow_id = spec[3] if len(spec) > 3 else f"f{index}"
        built.append(Flow(id=flow_id, source=spec[0], target=spec[1], condition=condition))
    return ProcessGraph(key=key, name=key, nodes={n.id: n for n in nodes}, flows=tuple(built))


def line(key: str, *middle: Node) -> ProcessGraph:
    """start → middle… → end."""
    nodes = [node("start", "start"), *middle, node("end", "end")]
    ids = [n.id for n in nodes]
    return graph(key, nodes, list(itertools.pairwise(ids)))


@dataclass
class Flowbed:
    ctx: Context
    departments: dict[str, int]
    user_ids: dict[str, int]
    op: Actor = field(default_factory=lambda: operator_actor("test"))

    def actor(self, username: str) -> Actor:
        with self.ctx.db.read() as session:
            user = session.scalars(select(User).where(User.username == username)).one()
            return actor_for_user(session, user)

    def deploy(self, process: ProcessGraph, check: bool = True) -> definitions.DefinitionView:
        return definitions.deploy_graph(self.ctx, self.op, process, check=check)

    def start(
        self,
        key: str,
        username: str = "applicant",
        variables: dict[str, Any] | None = None,
        **values: Any,
    ) -> InstanceView:
        values.setdefault("department_id", self.departments["dept-a"])
        return instances.start(
            self.ctx, self.actor(username), key, variables=variables or {}, **values
        )

    def tasks(self, instance_id: int, status: str | None = "open") -> list[TaskView]:
        with self.ctx.db.read() as session:
            stmt = select(WfTask).where(WfTask.instance_id == instance_id)
            if status is not None:
                stmt = stmt.where(WfTask.status == status)
            return [TaskView.of(row) for row in session.scalars(stmt.order_by(WfTask.id))]

    def open_task(self, instance_id: int, node_id: str, username: str | None = None) -> TaskView:
        found = [
            t
            for t in self.tasks(instance_id)
            if t.node_id == node_id
            and (username is None or t.assignee_id == self.user_ids[username])
        ]
        assert len(found) == 1, (node_id, username, [(t.node_id, t.assignee_id) for t in found])
        return found[0]

    def waiting_nodes(self, instance_id: int) -> list[str]:
        with self.ctx.db.read() as session:
            return sorted(
                session.scalars(
                    select(WfToken.node_id).where(
                        WfToken.instance_id == instance_id,
                        WfToken.status.in_(("active", "waiting")),
                    )
                )
            )

    def instance(self, instance_id: int) -> Any:
        return instances.get_instance(self.ctx, self.op, instance_id)

    def audit_size(self) -> int:
        with self.ctx.db.read() as session:
            return audit.tree_size(session)

    def count(self, model: Any) -> int:
        with self.ctx.db.read() as session:
            return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def bed(ctx: Context) -> Iterator[Flowbed]:
    plugin_manager()
    op = operator_actor("test")
    service.create_region(ctx, op, "430000", "湖南省", "province")
    service.create_region(ctx, op, "430100", "长沙市", "city", "430000")
    departments = {}
    for code, name in [("dept-a", "甲局"), ("dept-b", "乙局")]:
        departments[code] = service.create_department(ctx, op, code, name, "430100").id
    user_ids = {}
    for username, dept, role in USERS:
        user = service.add_user(ctx, op, username, username.upper(), "secret")
        service.grant_membership(ctx, op, user.id, departments[dept], role)
        user_ids[username] = user.id
    yield Flowbed(ctx=ctx, departments=departments, user_ids=user_ids)
