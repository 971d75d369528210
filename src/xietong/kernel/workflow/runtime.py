"""The engine: tokens moving through the graph, gateways, waits and ends.

A token sits on one node. Entering a node runs its behaviour: wait states (user task,
service task, timer, message, call activity) park the token as ``waiting``; everything
else moves it on at once within the same transaction. Splits and joins are in
``tokens``. Every entry is a history row carrying the token's branch: that is what
退回 uses to know which branches a target node lies in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from xietong.kernel import clock
from xietong.kernel.bus import cancel_job, schedule_job
from xietong.kernel.errors import InvalidInput
from xietong.kernel.workflow import tasks as task_rules
from xietong.kernel.workflow._durations import due_at
from xietong.kernel.workflow._rows import add_new
from xietong.kernel.workflow._run import (
    JOB_SERVICE,
    JOB_TIMEOUT,
    JOB_TIMER,
    InstanceState,
    Run,
)
from xietong.kernel.workflow.definitions import DefinitionRef, graph_of, latest_definition
from xietong.kernel.workflow.events import (
    MODULE,
    InstanceCompleted,
    InstanceStarted,
    InstanceTerminated,
)
from xietong.kernel.workflow.expressions import compile_expression
from xietong.kernel.workflow.model import Flow, Node, ProcessGraph
from xietong.kernel.workflow.store import (
    ALIVE_TOKEN,
    LIVE_TASK,
    WfDefinition,
    WfFork,
    WfInstance,
    WfTask,
    WfToken,
)
from xietong.kernel.workflow.tokens import (
    alive_tokens,
    any_live_token,
    end_token,
    join,
    new_token,
)

MAX_STEPS = 10_000  # a graph that loops without a wait state is refused, not run forever
ACTIVITIES = ("user_task", "service_task", "call")
GATEWAYS = ("exclusive", "parallel", "inclusive")


def start_instance(
    run: Run,
    definition: WfDefinition | DefinitionRef,
    graph: ProcessGraph,
    *,
    variables: dict[str, object],
    business_key: str | None,
    department_id: int | None,
    parent: tuple[int, int] | None = None,
) -> InstanceState:
    now = clock.now()
    row: WfInstance = add_new(
        run.session,
        WfInstance,
        {
            "id": run.new_id("wf_instance"),
            "definition_id": definition.id,
            "process_key": definition.key,
            "business_key": business_key,
            "status": "running",
            "department_id": department_id,
            "started_by": run.actor.label,
            "started_by_user_id": run.user_id,
            "started_at": now,
            "parent_instance_id": parent[0] if parent else None,
            "parent_token_id": parent[1] if parent else None,
        },
    )
    state = run.adopt(row, graph)
    if run.actor.kind == "user" and "starter" not in variables:
        variables = {"starter": run.actor.name, **variables}
    run.set_variables(state, variables)
    starts = graph.start_nodes
    if not starts:
        raise InvalidInput(
            f"流程 {graph.key} 没有开始事件",
            f"Process {graph.key} has no start event",
            code="no_start",
        )
    run.history(state, "instance.started", activity=graph.name or graph.key)
    token = new_token(run, state, starts[0].id)
    drive(run, state, [token])
    run.uow.emit(
        InstanceStarted(
            row.id, row.process_key, row.business_key, definition.version, department_id
        ),
        module=MODULE,
    )
    return state


def drive(run: Run, state: InstanceState, tokens: list[WfToken]) -> None:
    """Enter the node of each active token, following on until every token waits or ends."""
    work = list(tokens)
    while work:
        token = work.pop(0)
        if token.status != "active":
            continue
        run.steps += 1
        if run.steps > MAX_STEPS:
            raise InvalidInput(
                "流程在没有等待节点的循环中运行",
                "The process loops without reaching a wait state",
                code="infinite_loop",
                details={"node": token.node_id},
            )
        work.extend(enter(run, state, token))


def enter(run: Run, state: InstanceState, token: WfToken) -> list[WfToken]:
    node = state.graph.nodes[token.node_id]
    run.history(state, "node.entered", node_id=node.id, token=token)
    kind = node.kind
    if kind in GATEWAYS:
        if len(state.graph.incoming(node.id)) > 1 and kind != "exclusive":
            joined = join(run, state, token, node)
            if joined is None:
                return []
            token = joined
        return leave(run, state, token)
    if kind == "start":
        return leave(run, state, token)
    if kind == "end":
        end_token(token, "done")
        maybe_complete(run, state)
        return []
    if kind == "terminate":
        end_token(token, "done")
        end_instance(run, state, "completed", reason="terminate_end")
        return []
    token.status = "waiting"
    arm_boundaries(run, state, token, node)
    if kind == "user_task":
        # 退回 sets ``return_to``: the task goes back to whoever handled the node before
        task_rules.create_user_tasks(run, state, token, node, assignee=token.state.get("return_to"))
    elif kind == "service_task":
        payload = {"instance": state.row.id, "token": token.id, "node": node.id}
        schedule_job(
            run.session, JOB_SERVICE, due_at=clock.now(), key=f"service:{token.id}", payload=payload
        )
    elif kind == "timer":
        assert node.timer is not None
        due = due_at(node.timer, clock.now(), run.variables(state), run.ctx.calendar)
        schedule_job(
            run.session,
            JOB_TIMER,
            due_at=due,
            key=f"timer:{token.id}",
            payload={"instance": state.row.id, "token": token.id, "node": node.id},
        )
    elif kind == "message":
        token.message_name = node.message
        if node.correlation_key:
            value = compile_expression(node.correlation_key).evaluate(run.variables(state))
            token.correlation = str(value)
    elif kind == "call":
        _call(run, state, token, node)
    return []


def arm_boundaries(run: Run, state: InstanceState, token: WfToken, node: Node) -> None:
    for boundary in state.graph.boundaries(node.id):
        if boundary.kind == "message":
            _subscribe(run, state, token, boundary)
            continue
        if boundary.kind != "timer" or boundary.timer is None:
            continue
        due = due_at(boundary.timer, clock.now(), run.variables(state), run.ctx.calendar)
        schedule_job(
            run.session,
            JOB_TIMER,
            due_at=due,
            key=f"boundary:{token.id}:{boundary.id}",
            payload={
                "instance": state.row.id,
                "token": token.id,
                "node": node.id,
                "boundary": boundary.id,
            },
        )


def _subscribe(run: Run, state: InstanceState, host: WfToken, boundary: Node) -> WfToken:
    """A boundary message waits as a token of its own on the boundary event, beside the
    activity's token (``boundary_of``): ``correlate_message`` finds it like any message
    catch, and the activity's leaving cancels it."""
    waiting = new_token(run, state, boundary.id, fork_id=host.fork_id, status="waiting")
    waiting.message_name = boundary.message
    if boundary.correlation_key:
        value = compile_expression(boundary.correlation_key).evaluate(run.variables(state))
        waiting.correlation = str(value)
    waiting.state = {"boundary_of": host.id}
    return waiting


def _subscriptions(run: Run, state: InstanceState, host: WfToken, ids: list[str]) -> list[WfToken]:
    run.session.flush()
    return [
        t
        for t in run.session.scalars(
            select(WfToken).where(
                WfToken.instance_id == state.row.id,
                WfToken.node_id.in_(ids),
                WfToken.status == "waiting",
            )
        )
        if (t.state or {}).get("boundary_of") == host.id
    ]


def waiting_message(run: Run, state: InstanceState, name: str, key: str | None) -> WfToken | None:
    """The token of ``state`` waiting for message ``name`` with correlation ``key``.

    Call it with the instance locked (``run.instance``): a token found before the lock
    may have been taken since by a concurrent delivery, a timer or a clerk, so only
    what is read here may be handed to ``deliver_message``.
    """
    match = (WfToken.correlation == key) if key is not None else WfToken.correlation.is_(None)
    return run.session.scalars(
        select(WfToken)
        .where(
            WfToken.instance_id == state.row.id,
            WfToken.message_name == name,
            match,
            WfToken.status == "waiting",
        )
        .order_by(WfToken.id)
        .limit(1)
        .execution_options(populate_existing=True)
    ).first()


def deliver_message(
    run: Run, state: InstanceState, token: WfToken, variables: Mapping[str, Any]
) -> None:
    """A message reached ``token`` (read by ``waiting_message`` under the lock), inside
    the caller's transaction: its variables are set and the token moves on — by its
    boundary event's flow when it is an activity's boundary subscription."""
    run.require_active(state)
    run.set_variables(state, variables)
    run.history(state, "message.received", node_id=token.node_id, token=token)
    if "boundary_of" in (token.state or {}):
        boundary_message(run, state, token)
    else:
        drive(run, state, leave(run, state, token))


def boundary_message(run: Run, state: InstanceState, token: WfToken) -> None:
    """A message reached a boundary event's token: interrupting, the activity is
    abandoned (its tasks end with reason ``boundary_message``); non-interrupting, the
    activity goes on and waits for the next such message. Either way this token leaves
    by the boundary event's flow."""
    boundary = state.graph.nodes[token.node_id]
    host = run.session.get(WfToken, (token.state or {}).get("boundary_of"))
    token.state = {}  # no longer a subscription of the host: its cancelling skips it
    token.message_name = token.correlation = None
    if host is not None and host.status in ALIVE_TOKEN:
        if boundary.cancel_activity:
            cancel_token(run, state, host, "boundary_message")
        else:
            _subscribe(run, state, host, boundary)
    drive(run, state, leave(run, state, token))


def _disarm(run: Run, state: InstanceState, token: WfToken) -> None:
    """Drop the jobs a waiting token had scheduled (it leaves or is cancelled)."""
    node = state.graph.nodes.get(token.node_id)
    if node is None:
        return
    messages = []
    for boundary in state.graph.boundaries(node.id):
        if boundary.kind == "message":
            messages.append(boundary.id)
            continue
        cancel_job(run.session, JOB_TIMER, f"boundary:{token.id}:{boundary.id}")
    if messages:
        for waiting in _subscriptions(run, state, token, messages):
            end_token(waiting, "cancelled")
    if node.kind == "timer":
        cancel_job(run.session, JOB_TIMER, f"timer:{token.id}")
    elif node.kind == "service_task":
        cancel_job(run.session, JOB_SERVICE, f"service:{token.id}")
    elif node.kind == "user_task" and node.timeout is not None:
        cancel_job(run.session, JOB_TIMEOUT, f"timeout:{token.id}")


def _condition(run: Run, state: InstanceState, flow: Flow) -> bool:
    if flow.condition is None:
        return True
    return compile_expression(flow.condition).evaluate_bool(run.variables(state))


def choose_flows(run: Run, state: InstanceState, node: Node) -> list[Flow]:
    outgoing = state.graph.outgoing(node.id)
    if node.kind == "parallel":
        return list(outgoing)
    if len(outgoing) == 1 and outgoing[0].condition is None:
        return list(outgoing)
    candidates = [flow for flow in outgoing if flow.id != node.default_flow]
    if node.kind == "exclusive":
        chosen = next((flow for flow in candidates if _condition(run, state, flow)), None)
        taken = [chosen] if chosen is not None else []
    else:  # inclusive gateways and activities with conditional flows
        taken = [flow for flow in candidates if _condition(run, state, flow)]
    if not taken and node.default_flow:
        taken = [state.graph.flow(node.default_flow)]
    if not taken and outgoing:
        raise InvalidInput(
            f"节点 {node.id} 没有满足条件的出口",
            f"No outgoing flow of {node.id} applies",
            code="no_path",
            details={"node": node.id},
        )
    return taken


def leave(run: Run, state: InstanceState, token: WfToken) -> list[WfToken]:
    """Move ``token`` out of its node along the chosen flows (a fork when several)."""
    node = state.graph.nodes[token.node_id]
    if token.status == "waiting":
        _disarm(run, state, token)
    flows = choose_flows(run, state, node)
    if not flows:  # a node without outgoing flows ends its token like an end event
        end_token(token, "done")
        maybe_complete(run, state)
        return []
    if run.origin_task_id is not None:
        token.origin_task_id = run.origin_task_id
    if len(flows) == 1:
        _move(token, flows[0])
        return [token]
    # one branch row per outgoing flow; the split is named by the token that entered
    now = clock.now()
    branches = [
        add_new(
            run.session,
            WfFork,
            {
                "id": run.new_id("wf_fork"),
                "instance_id": state.row.id,
                "node_id": node.id,
                "split_id": token.id,
                "parent_fork_id": token.fork_id,
                "branches": len(flows),
                "created_at": now,
            },
        )
        for _flow in flows
    ]
    end_token(token, "done")
    return [
        new_token(run, state, flow.target, fork_id=branch.id, via=flow.id)
        for flow, branch in zip(flows, branches, strict=True)
    ]


def _move(token: WfToken, flow: Flow) -> None:
    token.node_id = flow.target
    token.arrived_via = flow.id
    token.status = "active"
    token.message_name = None
    token.correlation = None
    token.state = {}


def cancel_token(run: Run, state: InstanceState, token: WfToken, reason: str) -> None:
    """Cancel a live token with its open tasks, its jobs and a called child process."""
    if token.status not in ALIVE_TOKEN:
        return
    interrupt(run, state, token, reason)
    end_token(token, "cancelled")


def interrupt(run: Run, state: InstanceState, token: WfToken, reason: str) -> None:
    """Stop what a waiting token is doing (tasks, jobs, child process); it stays alive."""
    if token.status == "waiting":
        _disarm(run, state, token)
    for task in run.session.scalars(
        select(WfTask).where(WfTask.token_id == token.id, WfTask.status.in_(LIVE_TASK))
    ):
        task_rules.cancel_task(task, reason)
    node = state.graph.nodes.get(token.node_id)
    if node is not None and node.kind == "call":
        for child_id in run.session.scalars(
            select(WfInstance.id).where(
                WfInstance.parent_token_id == token.id,
                WfInstance.status.in_(("running", "suspended")),
            )
        ):
            end_instance(run, run.instance(child_id), "terminated", reason=reason)


def end_instance(run: Run, state: InstanceState, status: str, *, reason: str) -> None:
    """Terminate end event (status completed) or 终止 (terminated): cancel everything."""
    for token in alive_tokens(run, state.row.id):
        cancel_token(run, state, token, reason)
    state.row.status = status
    state.row.end_reason = reason
    state.row.ended_at = clock.now()
    row = state.row
    if status == "terminated":
        run.history(state, "instance.terminated", details={"reason": reason}, activity="终止")
        run.uow.emit(
            InstanceTerminated(row.id, row.process_key, row.business_key, reason), module=MODULE
        )
    else:
        _completed(run, state)


def maybe_complete(run: Run, state: InstanceState) -> None:
    if state.row.status not in ("running", "suspended"):
        return
    if any_live_token(run, state.row.id):
        return
    state.row.status = "completed"
    state.row.ended_at = clock.now()
    _completed(run, state)


def _completed(run: Run, state: InstanceState) -> None:
    row = state.row
    run.history(state, "instance.completed", activity=state.graph.name or state.graph.key)
    run.uow.emit(InstanceCompleted(row.id, row.process_key, row.business_key), module=MODULE)
    if row.parent_instance_id is None or row.parent_token_id is None:
        return
    # a call activity's child finished: copy its variables back and move the parent on
    parent = run.instance(row.parent_instance_id)
    token = run.session.get(WfToken, row.parent_token_id)
    if token is None or token.status != "waiting" or parent.row.status != "running":
        return
    run.set_variables(parent, dict(run.variables(state)))
    run.history(parent, "call.completed", node_id=token.node_id, token=token)
    drive(run, parent, leave(run, parent, token))


def _call(run: Run, state: InstanceState, token: WfToken, node: Node) -> None:
    definition = latest_definition(run.session, node.called_process or "")
    variables = dict(run.variables(state))
    start_instance(
        run,
        definition,
        graph_of(run.ctx.db, definition),
        variables=variables,
        business_key=state.row.business_key,
        department_id=state.row.department_id,
        parent=(state.row.id, token.id),
    )
