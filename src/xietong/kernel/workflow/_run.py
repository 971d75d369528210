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

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from xietong.kernel import clock
from xietong.kernel.access import Actor
from xietong.kernel.context import Context
from xietong.kernel.db import Batch, StaleRow, insert_rows, plain_insert
from xietong.kernel.errors import Conflict, InvalidInput, NotFound
from xietong.kernel.uow import UnitOfWork
from xietong.kernel.workflow._rows import connection_of, queue_rows
from xietong.kernel.workflow.definitions import graph_by_id
from xietong.kernel.workflow.model import ProcessGraph
from xietong.kernel.workflow.store import (
    WfHistory,
    WfInstance,
    WfTaskCandidate,
    WfToken,
    WfVariable,
)

JOB_TIMER = "workflow.timer"
JOB_TIMEOUT = "workflow.task_timeout"
JOB_SERVICE = "workflow.service"
MAX_VARIABLE_BYTES = 256 * 1024


@dataclass
class InstanceState:
    row: WfInstance
    graph: ProcessGraph
    _variables: dict[str, Any] | None = None
    # values set in this step, written at ``finish`` (one upsert; set without reading)
    changed: dict[str, Any] = field(default_factory=dict)


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
        self._history: list[tuple[Any, ...]] = []
        # rows read for this step: the session's identity map holds rows weakly, and a
        # row read in a joined query must still be there when the step asks for it
        self.held: list[Any] = []

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
        return self.loaded(row)

    def loaded(self, row: WfInstance) -> InstanceState:
        """Take an instance row read (and on PostgreSQL locked) by the caller."""
        found = self.states.get(row.id)
        if found is not None:
            return found
        graph = graph_by_id(self.ctx.db, self.session, row.definition_id)
        state = InstanceState(row=row, graph=graph)
        self.states[row.id] = state
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

    # -- ids --

    def new_id(self, table: str) -> int:
        """An id for a new row of ``table`` (one of ``ID_TABLES``), known before flush.

        Rows created in a step reference each other (a task its token, a token its
        branch); taking their ids up front lets the step write them all in one flush
        instead of one INSERT round trip per row, each waiting for its generated id.
        """
        return _id_source(self.session).take(table)

    # -- variables --

    def variables(self, state: InstanceState) -> dict[str, Any]:
        if state._variables is None:
            rows = self.session.execute(_VARIABLES, {"instance": state.row.id})
            state._variables = {name: value for name, value in rows}
            state._variables.update(state.changed)
        return state._variables

    def set_variables(
        self, state: InstanceState, values: Mapping[str, Any], *, checked: bool = False
    ) -> None:
        """Set variables without reading the others (most steps only write outcomes).

        ``checked``: the engine's own values (a node's outcome), known to be valid;
        anything from outside is checked (names, JSON, size) first."""
        if not values:
            return
        if not checked:
            values = check_variables(values)
        state.changed.update(values)
        if state._variables is not None:
            state._variables.update(values)

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
            (
                state.row.id,
                token.id if token is not None else None,
                token.fork_id if token is not None else None,
                task_id,
                node_id,
                activity[:300],
                kind,
                self.actor.label,
                self.user_id,
                self.on_behalf_of,
                outcome,
                opinion,
                details,
                clock.now(),
            )
        )

    def flush(self) -> None:
        """Write the pending rows; a lost optimistic race (a task's version moved) is a
        Conflict. A step's task and token rows are written once, here or at ``finish``:
        the engine reads what the step changed from the session, not back from the
        database (``tokens.live_tokens``, ``tasks.group_tasks``)."""
        self._write(Batch(connection_of(self.session)))

    def finish(self) -> None:
        """Write what is pending; call just before ``uow.commit()``.

        The engine's rows (``_rows``), the candidates, the variables and the history
        go in one batch — one round trip on PostgreSQL — in that order: instances
        first, since variables and history refer to them.
        """
        batch = Batch(connection_of(self.session))
        rows = self.session.info.pop(_CANDIDATES_KEY, None)
        if rows:
            batch.add_rows(WfTaskCandidate.__table__, _CANDIDATE, rows)
        for state in self.states.values():
            if state.changed:
                batch.add(*_upsert_variables(batch.connection, state.row.id, state.changed))
                state.changed = {}
        if self._history:
            batch.add_rows(WfHistory.__table__, _HISTORY, self._history)
            self._history = []
        self._write(batch)

    def _write(self, batch: Batch) -> None:
        """The engine's rows first, then ``batch``, then whatever else the ORM holds."""
        first = Batch(batch.connection)
        try:
            settle = queue_rows(self.session, first)
            if settle is None:  # something only the ORM's flush orders right
                self.session.flush()
                batch.send()
                return
            first.items += batch.items
            batch.items = []
            first.send()
            settle()
            self.session.flush()
        except (StaleDataError, StaleRow):
            raise Conflict(
                "任务已被他人办理", "The task was already handled", code="task_already_completed"
            ) from None


ID_TABLES = ("wf_instance", "wf_token", "wf_task", "wf_fork")
_ID_BLOCK = 4
_ID_KEY = "xietong.workflow.ids"


class _IdSource:
    """Ids for the rows of one transaction.

    SQLite: the write transaction holds the database's write lock from its first
    statement (``BEGIN IMMEDIATE``), so the largest id of each table is read once and
    counted on — exactly the ids SQLite itself would have given (an ``INTEGER PRIMARY
    KEY`` without AUTOINCREMENT takes the largest plus one). Every row of these tables is
    created through ``Run.new_id``, so nothing else takes ids in between.
    PostgreSQL: the tables' own sequences, a few values per table in one round trip;
    ids keep increasing with time, as the engine's orderings by id expect.
    """

    def __init__(self, session: Session) -> None:
        self.connection = connection_of(session)
        self.sqlite = self.connection.dialect.name == "sqlite"
        self.free: dict[str, list[int]] = {table: [] for table in ID_TABLES}
        self.next: dict[str, int] = {}

    def take(self, table: str) -> int:
        if self.sqlite:
            if not self.next:
                maxima = ", ".join(f"(SELECT max(id) FROM {name})" for name in ID_TABLES)
                row = self.connection.exec_driver_sql(f"SELECT {maxima}").one()
                self.next = {name: (top or 0) + 1 for name, top in zip(ID_TABLES, row, strict=True)}
            value = self.next[table]
            self.next[table] = value + 1
            return value
        free = self.free[table]
        if not free:
            values = ", ".join(
                f"nextval(pg_get_serial_sequence('{name}', 'id'))" for name in ID_TABLES
            )
            rows = self.connection.exec_driver_sql(
                f"SELECT {values} FROM generate_series(1, {_ID_BLOCK})"
            ).all()
            for index, name in enumerate(ID_TABLES):
                self.free[name].extend(row[index] for row in rows)
        return free.pop(0)


_CANDIDATES_KEY = "xietong.workflow.candidates"
_CANDIDATE = ("task_id", "user_id", "department_id", "role")


def add_candidates(
    session: Session, rows: list[tuple[int, int | None, int | None, str | None]]
) -> None:
    """Queue candidate rows (task, user, department, role) of tasks made in this step.

    Nothing reads them back within the step that made them, so they are written with
    the history, in one INSERT, instead of as ORM objects (one INSERT … RETURNING each).
    """
    session.info.setdefault(_CANDIDATES_KEY, []).extend(rows)


def write_candidates(session: Session) -> None:
    """Write queued candidate rows (their tasks are flushed first)."""
    rows = session.info.pop(_CANDIDATES_KEY, None)
    if rows:
        session.flush()
        insert_rows(connection_of(session), WfTaskCandidate.__table__, _CANDIDATE, rows)


def _id_source(session: Session) -> _IdSource:
    transaction = session.get_transaction()
    held = session.info.get(_ID_KEY)
    if held is None or held[0] is not transaction:
        held = (transaction, _IdSource(session))
        session.info[_ID_KEY] = held
    return held[1]


_HISTORY = (
    "instance_id",
    "token_id",
    "fork_id",
    "task_id",
    "node_id",
    "activity",
    "kind",
    "actor",
    "user_id",
    "on_behalf_of_user_id",
    "outcome",
    "opinion",
    "details",
    "at",
)
"""Columns of a history row, in the order ``Run.history`` builds them."""


def _upsert_variables(
    connection: Connection, instance_id: int, values: Mapping[str, Any]
) -> tuple[str, tuple[Any, ...]]:
    # INSERT … ON CONFLICT (instance_id, name) DO UPDATE: SQLite (3.24+) and PostgreSQL
    # both speak it, so a step never reads the variables it only writes.
    prepared = plain_insert(connection.dialect, WfVariable.__table__, _VARIABLE)
    to_json = prepared.processors[2]
    rows = [
        (instance_id, name, to_json(value) if to_json is not None else value)
        for name, value in sorted(values.items())
    ]
    return (
        prepared.head
        + ", ".join([prepared.one_row] * len(rows))
        + " ON CONFLICT (instance_id, name) DO UPDATE SET value = excluded.value",
        tuple(value for row in rows for value in row),
    )


_VARIABLE = ("instance_id", "name", "value")
_VARIABLES = select(WfVariable.name, WfVariable.value).where(
    WfVariable.instance_id == bindparam("instance")
)
