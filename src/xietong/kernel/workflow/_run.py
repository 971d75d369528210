"""The engine's working state inside one unit of work.

A ``Run`` wraps a ``UnitOfWork``: every instance a command touches is loaded once (and
on PostgreSQL locked with ``SELECT … FOR UPDATE``, so two branches completing at the
same moment reach a join one after the other), its graph comes from the per-process
cache, and its variables are read lazily and written back once, just before commit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from xietong.kernel import clock
from xietong.kernel.access import Actor
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, InvalidInput, NotFound
from xietong.kernel.uow import UnitOfWork
from xietong.kernel.workflow.definitions import graph_by_id
from xietong.kernel.workflow.model import ProcessGraph
from xietong.kernel.workflow.store import WfHistory, WfInstance, WfToken, WfVariable

JOB_TIMER = "workflow.timer"
JOB_TIMEOUT = "workflow.task_timeout"
JOB_SERVICE = "workflow.service"
MAX_VARIABLE_BYTES = 256 * 1024


@dataclass
class InstanceState:
    row: WfInstance
    graph: ProcessGraph
    _variables: dict[str, Any] | None = None
    _rows: dict[str, WfVariable] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)


def check_variables(values: Mapping[str, Any]) -> dict[str, Any]:
    """Variables are JSON objects with string names; anything else is refused up front."""
    if not isinstance(values, Mapping):
        raise InvalidInput(
            "流程变量须为对象", "Variables must be an object", code="invalid_variables"
        )
    for name in values:
        if not isinstance(name, str) or not name or len(name) > 200:
            raise InvalidInput(
                f"变量名无效：{name!r}",
                f"Invalid variable name: {name!r}",
                code="invalid_variables",
            )
    try:
        size = len(json.dumps(dict(values), ensure_ascii=False))
    except (TypeError, ValueError) as error:
        raise InvalidInput(
            "流程变量须可表示为 JSON",
            f"Variables must be JSON values: {error}",
            code="invalid_variables",
        ) from None
    if size > MAX_VARIABLE_BYTES:
        raise InvalidInput("流程变量过大", "Variables too large", code="variables_too_large")
    return dict(values)


class Run:
    """Loaded instances, the acting principal and the step's provenance."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.session: Session = uow.session
        self.ctx: Context = uow.ctx
        self.actor: Actor = uow.actor
        self.states: dict[int, InstanceState] = {}
        # the task whose completion drives this step (tokens it moves remember it: 撤回)
        self.origin_task_id: int | None = None
        self.on_behalf_of: int | None = None  # 代理: the user the actor works for
        self.steps = 0
        self._history: list[dict[str, Any]] = []

    @property
    def user_id(self) -> int | None:
        return self.actor.id if self.actor.kind == "user" else None

    # -- instances --

    def instance(self, instance_id: int, *, lock: bool = True) -> InstanceState:
        found = self.states.get(instance_id)
        if found is not None:
            return found
        stmt = select(WfInstance).where(WfInstance.id == instance_id)
        if lock:
            # PostgreSQL: serialise steps of one instance; SQLite's BEGIN IMMEDIATE
            # already serialises every writer (FOR UPDATE is left out there).
            stmt = stmt.with_for_update()
        row = self.session.scalars(stmt.execution_options(populate_existing=True)).first()
        if row is None:
            raise NotFound.of("流程实例", "Process instance", instance_id)
        graph = graph_by_id(self.ctx.db, self.session, row.definition_id)
        state = InstanceState(row=row, graph=graph)
        self.states[instance_id] = state
        return state

    def adopt(self, row: WfInstance, graph: ProcessGraph) -> InstanceState:
        state = InstanceState(row=row, graph=graph, _variables={})
        self.states[row.id] = state
        return state

    @staticmethod
    def require_active(state: InstanceState) -> None:
        """Refuse work on a suspended or ended instance (resume checks on its own)."""
        status = state.row.status
        if status == "suspended":
            raise Conflict(
                "流程实例已挂起", "The process instance is suspended", code="instance_suspended"
            )
        if status != "running":
            raise Conflict(
                "流程实例已结束",
                "The process instance has ended",
                code="instance_ended",
                details={"status": status},
            )

    # -- variables --

    def variables(self, state: InstanceState) -> dict[str, Any]:
        if state._variables is None:
            rows = self.session.scalars(
                select(WfVariable).where(WfVariable.instance_id == state.row.id)
            ).all()
            state._rows = {row.name: row for row in rows}
            state._variables = {row.name: row.value for row in rows}
        return state._variables

    def set_variables(self, state: InstanceState, values: Mapping[str, Any]) -> None:
        if not values:
            return
        current = self.variables(state)
        for name, value in check_variables(values).items():
            current[name] = value
            state.dirty.add(name)

    def flush_variables(self) -> None:
        for state in self.states.values():
            if not state.dirty or state._variables is None:
                continue
            for name in sorted(state.dirty):
                value = state._variables[name]
                row = state._rows.get(name)
                if row is None:
                    row = WfVariable(instance_id=state.row.id, name=name, value=value)
                    self.session.add(row)
                    state._rows[name] = row
                else:
                    row.value = value
            state.dirty.clear()

    # -- history --

    def history(
        self,
        state: InstanceState,
        kind: str,
        *,
        node_id: str | None = None,
        token: WfToken | None = None,
        task_id: int | None = None,
        outcome: str | None = None,
        opinion: str | None = None,
        details: dict[str, Any] | None = None,
        activity: str | None = None,
    ) -> None:
        if activity is None:
            node = state.graph.nodes.get(node_id or "")
            activity = (node.name or node.id) if node is not None else kind
        # kept until ``finish``: one multi-row INSERT per step instead of one per row
        # (nothing reads a step's own history rows back within the step)
        self._history.append(
            {
                "instance_id": state.row.id,
                "token_id": token.id if token is not None else None,
                "fork_id": token.fork_id if token is not None else None,
                "task_id": task_id,
                "node_id": node_id,
                "activity": activity[:300],
                "kind": kind,
                "actor": self.actor.label,
                "user_id": self.user_id,
                "on_behalf_of_user_id": self.on_behalf_of,
                "outcome": outcome,
                "opinion": opinion,
                "details": details,
                "at": clock.now(),
            }
        )

    def finish(self) -> None:
        """Write what is pending; call just before ``uow.commit()``."""
        self.flush_variables()
        if self._history:
            self.session.execute(insert(WfHistory), self._history)
            self._history = []
