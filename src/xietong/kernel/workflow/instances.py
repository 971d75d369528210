"""Process instances: start, read, 挂起 / 激活 / 终止, 跳转, message correlation, migration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update

from xietong.kernel import clock
from xietong.kernel.access import Actor, Resource, authorize, can
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from xietong.kernel.uow import UnitOfWork
from xietong.kernel.workflow import runtime, tokens
from xietong.kernel.workflow._run import InstanceState, Run, check_variables
from xietong.kernel.workflow.definitions import (
    DefinitionRef,
    find_definition,
    graph_by_id,
    graph_of,
    latest_ref,
)
from xietong.kernel.workflow.events import MODULE, InstanceResumed, InstanceSuspended
from xietong.kernel.workflow.store import (
    ALIVE_TOKEN,
    WfCc,
    WfDefinition,
    WfHistory,
    WfIncident,
    WfInstance,
    WfTask,
    WfToken,
    WfVariable,
)
from xietong.kernel.workflow.views import (
    HistoryView,
    IncidentView,
    InstanceDetail,
    InstanceView,
    TaskView,
    TokenView,
)


def _resource(row: WfInstance) -> Resource:
    return Resource(kind="process_instance", department_id=row.department_id, id=row.id)


def _view(run: Run, state: InstanceState, version: int | None = None) -> InstanceView:
    if version is None:
        version = run.session.scalar(
            select(WfDefinition.version).where(WfDefinition.id == state.row.definition_id)
        )
    return InstanceView.of(state.row, version or 0)


def start(
    ctx: Context,
    actor: Actor,
    key: str | None = None,
    *,
    definition_id: int | None = None,
    variables: Mapping[str, Any] | None = None,
    business_key: str | None = None,
    department_id: int | None = None,
) -> InstanceView:
    """Start the latest version of ``key`` (or a given definition) in a department."""
    if department_id is None and actor.kind == "user" and len(actor.department_ids) == 1:
        department_id = next(iter(actor.department_ids))
    authorize(actor, "workflow.instance.start", Resource("process_instance", department_id))
    values = check_variables(variables or {})
    if business_key is not None and len(business_key) > 200:
        raise InvalidInput("业务编号过长", "Business key too long", code="invalid_business_key")
    with UnitOfWork(ctx, actor) as uow:
        run = Run(uow)
        definition: WfDefinition | DefinitionRef
        if definition_id is not None:
            found = run.session.get(WfDefinition, definition_id)
            if found is None:
                raise NotFound.of("流程定义", "Process definition", definition_id)
            definition = found
            graph = graph_of(ctx.db, found)
        elif key:
            definition = latest_ref(run.session, key)
            graph = graph_by_id(ctx.db, run.session, definition.id)
        else:
            raise InvalidInput("请指定流程", "Give a process key", code="no_process")
        state = runtime.start_instance(
            run,
            definition,
            graph,
            variables=values,
            business_key=business_key,
            department_id=department_id,
        )
        uow.record(
            "workflow.instance.start",
            f"process_instance:{state.row.id}",
            {"key": definition.key, "version": definition.version, "business_key": business_key},
        )
        run.finish()
        view = _view(run, state, definition.version)
        uow.commit()
    return view


def may_read(session: Any, actor: Actor, row: WfInstance) -> bool:
    """Its department (and above) may read an instance, and so may whoever took part."""
    if (row.department_id is not None or actor.is_admin) and can(
        actor, "workflow.instance.read", _resource(row)
    ):
        return True
    if actor.kind != "user" or actor.id is None:
        return False
    if row.started_by_user_id == actor.id:
        return True
    found = session.scalar(
        select(WfTask.id)
        .where(
            WfTask.instance_id == row.id,
            (WfTask.assignee_id == actor.id)
            | (WfTask.completed_by_user_id == actor.id)
            | (WfTask.owner_id == actor.id),
        )
        .limit(1)
    )
    if found is not None:
        return True
    copied = session.scalar(
        select(WfCc.id).where(WfCc.instance_id == row.id, WfCc.user_id == actor.id).limit(1)
    )
    if copied is not None:
        return True
    # Whoever may work an open task (a candidate by department or role, or the
    # assignee's 代理) must see the case it belongs to, or the task page cannot open.
    # One query: the todo list's own condition, for this instance's open tasks
    # (imported here: the todo queries import this module for their own checks).
    from xietong.kernel.workflow.queries import workable

    workable_here = session.scalar(
        select(WfTask.id)
        .where(
            WfTask.instance_id == row.id,
            WfTask.status == "open",
            workable(actor, ("open",)),
        )
        .limit(1)
    )
    return workable_here is not None


def get_instance(ctx: Context, actor: Actor, instance_id: int) -> InstanceDetail:
    authorize(actor, "workflow.task.read")
    with ctx.db.read() as session:
        row = session.get(WfInstance, instance_id)
        if row is None or not may_read(session, actor, row):
            raise NotFound.of("流程实例", "Process instance", instance_id)
        version = session.scalar(
            select(WfDefinition.version).where(WfDefinition.id == row.definition_id)
        )
        token_rows = session.scalars(
            select(WfToken).where(WfToken.instance_id == row.id).order_by(WfToken.id)
        )
        variables = session.execute(
            select(WfVariable.name, WfVariable.value).where(WfVariable.instance_id == row.id)
        )
        tasks = session.scalars(
            select(WfTask).where(WfTask.instance_id == row.id).order_by(WfTask.id)
        )
        history = session.scalars(
            select(WfHistory).where(WfHistory.instance_id == row.id).order_by(WfHistory.id)
        )
        incidents = session.scalars(select(WfIncident).where(WfIncident.instance_id == row.id))
        return InstanceDetail(
            instance=InstanceView.of(row, version or 0),
            tokens=[TokenView.of(t) for t in token_rows if t.status in ALIVE_TOKEN],
            variables={name: value for name, value in variables},
            tasks=[TaskView.of(t) for t in tasks],
            history=[HistoryView.of(h) for h in history],
            incidents=[IncidentView.of(i) for i in incidents],
        )


def _control(
    ctx: Context, actor: Actor, instance_id: int, action: str, change: Any
) -> InstanceView:
    with UnitOfWork(ctx, actor) as uow:
        run = Run(uow)
        state = run.instance(instance_id)
        if not can(actor, "workflow.instance.manage", _resource(state.row)):
            raise Forbidden(
                "无权管理该流程实例",
                "Not allowed to manage this process instance",
                code="not_instance_manager",
            )
        payload = change(run, state) or {}
        uow.record(action, f"process_instance:{instance_id}", payload)
        run.finish()
        view = _view(run, state)
        uow.commit()
    return view


def suspend(ctx: Context, actor: Actor, instance_id: int, *, reason: str = "") -> InstanceView:
    """挂起: nothing moves (tasks, timers, messages) until 激活."""
    authorize(actor, "workflow.instance.manage")

    def change(run: Run, state: InstanceState) -> dict[str, Any]:
        run.require_active(state)
        state.row.status = "suspended"
        run.history(state, "instance.suspended", activity="挂起", details={"reason": reason})
        row = state.row
        run.uow.emit(InstanceSuspended(row.id, row.process_key, row.business_key), module=MODULE)
        return {"reason": reason}

    return _control(ctx, actor, instance_id, "workflow.instance.suspend", change)


def resume(ctx: Context, actor: Actor, instance_id: int) -> InstanceView:
    authorize(actor, "workflow.instance.manage")

    def change(run: Run, state: InstanceState) -> None:
        if state.row.status != "suspended":
            raise Conflict(
                "流程实例未挂起", "The instance is not suspended", code="instance_not_suspended"
            )
        state.row.status = "running"
        run.history(state, "instance.resumed", activity="激活")
        row = state.row
        run.uow.emit(InstanceResumed(row.id, row.process_key, row.business_key), module=MODULE)
        _fire_held_timers(run, state)

    return _control(ctx, actor, instance_id, "workflow.instance.resume", change)


def _fire_held_timers(run: Run, state: InstanceState) -> None:
    """Timers that came due while the instance was suspended fire on 激活."""
    from xietong.kernel.workflow.timers import fire_held

    fire_held(run, state)


def terminate(ctx: Context, actor: Actor, instance_id: int, *, reason: str = "") -> InstanceView:
    """终止: cancel every token, task, timer and called child; the instance ends."""
    authorize(actor, "workflow.instance.manage")

    def change(run: Run, state: InstanceState) -> dict[str, Any]:
        if state.row.status not in ("running", "suspended"):
            raise Conflict("流程实例已结束", "The instance has ended", code="instance_ended")
        runtime.end_instance(run, state, "terminated", reason="terminate")
        return {"reason": reason}

    return _control(ctx, actor, instance_id, "workflow.instance.terminate", change)


def jump(ctx: Context, actor: Actor, instance_id: int, node_id: str) -> InstanceView:
    """跳转 (administrators): cancel the current tokens and start one at ``node_id``."""
    authorize(actor, "workflow.instance.jump")
    with UnitOfWork(ctx, actor) as uow:
        run = Run(uow)
        state = run.instance(instance_id)
        run.require_active(state)
        node = state.graph.nodes.get(node_id)
        if node is None or node.attached_to or node.kind == "start":
            raise InvalidInput(
                f"目标节点不存在或不可跳转：{node_id}",
                f"No node to jump to: {node_id}",
                code="unknown_node",
            )
        cancelled = []
        for token in tokens.alive_tokens(run, instance_id):
            cancelled.append(token.node_id)
            runtime.cancel_token(run, state, token, "jump")
        run.history(state, "jump", node_id=node_id, details={"from": cancelled})
        token = tokens.jump_token(run, state, node_id)
        runtime.drive(run, state, [token])
        uow.record(
            "workflow.instance.jump",
            f"process_instance:{instance_id}",
            {"to": node_id, "from": cancelled},
        )
        run.finish()
        view = _view(run, state)
        uow.commit()
    return view


def correlate_message(
    ctx: Context,
    actor: Actor,
    name: str,
    key: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> InstanceView:
    """Deliver message ``name`` to the token waiting for it with correlation ``key``."""
    authorize(actor, "workflow.message.correlate")
    values = check_variables(variables or {})
    with UnitOfWork(ctx, actor) as uow:
        run = Run(uow)
        match = (WfToken.correlation == key) if key is not None else WfToken.correlation.is_(None)
        instance_id = run.session.scalar(
            select(WfToken.instance_id)
            .where(WfToken.message_name == name, match, WfToken.status == "waiting")
            .order_by(WfToken.id)
            .limit(1)
        )
        if instance_id is None:
            raise NotFound(
                f"没有等待该消息的流程：{name} / {key}",
                f"No process is waiting for message {name!r} with key {key!r}",
                code="no_waiting_message",
                details={"name": name, "key": key},
            )
        state = run.instance(instance_id)
        # read again under the instance lock: a concurrent delivery may have taken it
        token = runtime.waiting_message(run, state, name, key)
        if token is None:
            raise Conflict("消息已被处理", "The message was already delivered", code="stale")
        if not can(actor, "workflow.message.correlate", _resource(state.row)):
            raise Forbidden("无权向该流程投递消息", "Not allowed", code="not_allowed")
        runtime.deliver_message(run, state, token, values)
        uow.record(
            "workflow.message.correlate",
            f"process_instance:{instance_id}",
            {"name": name, "key": key},
        )
        run.finish()
        view = _view(run, state)
        uow.commit()
    return view


def migrate_instances(
    ctx: Context,
    actor: Actor,
    key: str,
    from_version: int,
    to_version: int,
    node_mapping: Mapping[str, str] | None = None,
) -> list[int]:
    """Move running instances of one version to another; every current node must map.

    A node keeps its id unless ``node_mapping`` renames it. All instances move, or none:
    one that would sit on a node missing from the new version refuses the whole call.
    """
    authorize(actor, "workflow.instance.jump")
    mapping = dict(node_mapping or {})
    with UnitOfWork(ctx, actor) as uow:
        run = Run(uow)
        source = find_definition(run.session, key, from_version)
        target = find_definition(run.session, key, to_version)
        graph = graph_of(ctx.db, target)
        ids = list(
            run.session.scalars(
                select(WfInstance.id)
                .where(
                    WfInstance.definition_id == source.id,
                    WfInstance.status.in_(("running", "suspended")),
                )
                .order_by(WfInstance.id)
            )
        )
        for instance_id in ids:
            state = run.instance(instance_id)
            for token in tokens.alive_tokens(run, instance_id):
                new_node = mapping.get(token.node_id, token.node_id)
                if new_node not in graph.nodes:
                    raise InvalidInput(
                        f"实例 {instance_id} 当前节点 {token.node_id} 在新版本中没有对应节点",
                        f"Instance {instance_id}: node {token.node_id} has no counterpart "
                        f"in version {to_version}",
                        code="node_unmapped",
                        details={"instance_id": instance_id, "node": token.node_id},
                    )
                token.node_id = new_node
            for task in run.session.scalars(
                select(WfTask).where(WfTask.instance_id == instance_id)
            ):
                task.node_id = mapping.get(task.node_id, task.node_id)
            # History node ids are read against the instance's current version (退回 and
            # 驳回 look up where the case has been), so renamed nodes are renamed there
            # too; the mapping itself is in this command's audit leaf and history row.
            for old_id, new_id in mapping.items():
                run.session.execute(
                    update(WfHistory)
                    .where(WfHistory.instance_id == instance_id, WfHistory.node_id == old_id)
                    .values(node_id=new_id)
                )
            state.row.definition_id = target.id
            run.history(
                state,
                "instance.migrated",
                activity="版本迁移",
                details={"from": from_version, "to": to_version, "at": str(clock.now())},
            )
        uow.record(
            "workflow.instance.migrate",
            f"process:{key}",
            {"from": from_version, "to": to_version, "instances": ids, "mapping": mapping},
        )
        run.finish()
        uow.commit()
    return ids
