"""Deploy-time validation: refuse a graph that could strand or confuse a running instance.

Every problem is found in one pass and reported together, each naming its node (or
flow), so a modeller fixes a file once rather than once per problem. The structural
checks work on the graph with one extra edge per boundary event (its host activity
to the event), because a boundary timer is a way out of the activity it sits on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime

from xietong.kernel.errors import InvalidInput
from xietong.kernel.workflow.expressions import compile_expression, is_expression
from xietong.kernel.workflow.model import Node, ProcessGraph, Timer

ACTIVITIES = frozenset({"user_task", "service_task", "call"})
ENDS = frozenset({"end", "terminate"})

_DURATION = re.compile(
    r"^P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
    r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?$"
)
_WHOLE_DAYS = re.compile(r"^P\d+D$")
_REPEAT = re.compile(r"^R\d*$")


@dataclass(frozen=True)
class Problem:
    code: str
    node: str  # the node id (or the flow id for a flow's problem)
    message_zh: str
    message_en: str


def _is_date(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def timer_error(timer: Timer) -> str | None:
    """Why an ISO 8601 timer expression is invalid, or None. ``${...}`` is checked later."""
    text = timer.expression.strip()
    if not text:
        return "the timer has no expression"
    if is_expression(text):
        return None
    if timer.kind == "duration":
        if not _DURATION.match(text):
            return f"{text!r} is not an ISO 8601 duration (e.g. PT2H, P3D)"
        if timer.working_days and not _WHOLE_DAYS.match(text):
            return f"working days need whole days (P3D), not {text!r}"
        return None
    if timer.kind == "date":
        return None if _is_date(text) else f"{text!r} is not an ISO 8601 date-time"
    parts = text.split("/")
    durations = [part for part in parts[1:] if _DURATION.match(part)]
    dates = [part for part in parts[1:] if _is_date(part)]
    if not (
        _REPEAT.match(parts[0])
        and 2 <= len(parts) <= 3
        and len(durations) == 1
        and len(durations) + len(dates) == len(parts) - 1
    ):
        return f"{text!r} is not an ISO 8601 repeating interval (e.g. R3/PT1H)"
    return None


def _strongly_connected(nodes: Iterable[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: a long approval chain must not hit the recursion limit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(edges.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = counter
                    counter += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(edges.get(successor, ()))))
                    advanced = True
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _reach(starts: Iterable[str], edges: dict[str, list[str]]) -> set[str]:
    seen = set(starts)
    todo = list(seen)
    while todo:
        for successor in edges.get(todo.pop(), ()):
            if successor not in seen:
                seen.add(successor)
                todo.append(successor)
    return seen


class _Checker:
    def __init__(self, graph: ProcessGraph) -> None:
        self.graph = graph
        self.problems: list[Problem] = []

    def add(self, code: str, node: str, zh: str, en: str) -> None:
        self.problems.append(Problem(code, node, zh, en))

    def expression(self, node: str, text: str | None, what: str) -> None:
        if not text:
            return
        try:
            compile_expression(text)
        except InvalidInput as error:
            self.add("invalid_expression", node, f"{what}：{error.message_zh}", error.message_en)

    def structure(self) -> None:
        graph = self.graph
        forward: dict[str, list[str]] = {node_id: [] for node_id in graph.nodes}
        seen_flows: set[str] = set()
        for flow in graph.flows:
            if flow.id in seen_flows:
                self.add("duplicate_flow", flow.id, f"连线 id 重复：{flow.id}", "duplicate flow id")
            seen_flows.add(flow.id)
            for end in (flow.source, flow.target):
                if end not in graph.nodes:
                    self.add(
                        "unknown_node",
                        flow.id,
                        f"连线 {flow.id} 指向不存在的节点 {end}",
                        f"flow {flow.id} refers to an unknown node {end}",
                    )
            if flow.source in graph.nodes and flow.target in graph.nodes:
                forward[flow.source].append(flow.target)
            self.expression(flow.id, flow.condition, f"连线 {flow.id} 的条件")
        for node in graph.nodes.values():
            if node.attached_to in graph.nodes:
                forward[node.attached_to].append(node.id)

        none_starts = [n.id for n in graph.start_nodes if not n.properties.get("trigger")]
        if not graph.start_nodes:
            self.add("no_start", graph.key, "流程没有开始事件", "the process has no start event")
        if len(none_starts) > 1:
            for node_id in none_starts:
                self.add(
                    "several_starts",
                    node_id,
                    "流程有多个空开始事件",
                    "more than one none start event",
                )
        dead = {
            n.id for n in graph.nodes.values() if n.kind not in ENDS and not graph.outgoing(n.id)
        }
        for node_id in sorted(dead):
            self.add(
                "dead_end",
                node_id,
                f"节点 {node_id} 没有出口连线（死路）",
                f"node {node_id} has no outgoing flow (a dead end)",
            )
        reached = _reach((n.id for n in graph.start_nodes), forward)
        for node_id in graph.nodes:
            if node_id not in reached and graph.start_nodes:
                self.add(
                    "unreachable",
                    node_id,
                    f"节点 {node_id} 从开始事件无法到达",
                    f"node {node_id} cannot be reached from the start",
                )
        backward: dict[str, list[str]] = {node_id: [] for node_id in graph.nodes}
        for source, targets in forward.items():
            for target in targets:
                backward[target].append(source)
        exits = _reach((n.id for n in graph.nodes.values() if n.kind in ENDS), backward)
        for component in _strongly_connected(graph.nodes, forward):
            looping = len(component) > 1 or component[0] in forward[component[0]]
            if looping and not exits.intersection(component):
                names = ", ".join(sorted(component))
                for node_id in sorted(component):
                    self.add(
                        "loop_without_exit",
                        node_id,
                        f"循环 {names} 没有通往结束事件的出口",
                        f"the loop {names} has no way out to an end event",
                    )

    def gateway(self, node: Node) -> None:
        outgoing = self.graph.outgoing(node.id)
        if node.default_flow and node.default_flow not in {f.id for f in outgoing}:
            self.add(
                "unknown_default_flow",
                node.id,
                f"默认连线 {node.default_flow} 不是节点 {node.id} 的出口",
                f"default flow {node.default_flow} is not an outgoing flow of {node.id}",
            )
        if node.kind in ("exclusive", "inclusive") and len(outgoing) > 1:
            for flow in outgoing:
                if flow.condition is None and flow.id != node.default_flow:
                    self.add(
                        "missing_condition",
                        node.id,
                        f"网关 {node.id} 的出口 {flow.id} 既无条件也不是默认连线",
                        f"gateway {node.id}: flow {flow.id} has neither a condition "
                        "nor is it the default",
                    )

    def node(self, node: Node) -> None:
        graph = self.graph
        self.gateway(node)
        if node.kind == "start" and graph.incoming(node.id) and not node.attached_to:
            self.add("start_has_incoming", node.id, "开始事件不能有入口连线", "a start has inflow")
        if node.kind in ENDS and graph.outgoing(node.id):
            self.add("end_has_outgoing", node.id, "结束事件不能有出口连线", "an end has outflow")
        if node.attached_to is not None:
            host = graph.nodes.get(node.attached_to)
            if host is None or host.kind not in ACTIVITIES:
                self.add(
                    "boundary_not_on_activity",
                    node.id,
                    f"边界事件 {node.id} 附着的 {node.attached_to} 不是任务或调用活动",
                    f"boundary event {node.id} sits on {node.attached_to}, not an activity",
                )
            if graph.incoming(node.id):
                self.add("boundary_has_incoming", node.id, "边界事件不能有入口", "boundary inflow")
        if node.kind == "timer" or node.timer is not None:
            error = timer_error(node.timer) if node.timer else "the timer has no expression"
            if error:
                self.add("invalid_timer", node.id, f"定时器 {node.id} 无效：{error}", error)
            elif node.timer and is_expression(node.timer.expression):
                self.expression(node.id, node.timer.expression, "定时器")
        if node.kind == "message" and not node.message:
            self.add("message_without_name", node.id, "消息事件未指定消息", "no message name")
        self.expression(node.id, node.correlation_key, "关联键")
        if node.kind == "call" and not node.called_process:
            self.add("call_without_process", node.id, "调用活动未指定子流程", "no called process")
        if node.kind == "service_task" and not (
            node.service and (node.service.connector or node.service.url)
        ):
            self.add(
                "service_without_call", node.id, "服务任务未指定连接器或 URL", "no connector or url"
            )
        if node.kind == "user_task":
            self.user_task(node)

    def user_task(self, node: Node) -> None:
        assignment, multi = node.assignment, node.multi
        if multi is None and not (
            assignment
            and (assignment.assignee or assignment.candidate_users or assignment.candidate_roles)
        ):
            self.add(
                "no_assignment",
                node.id,
                f"用户任务 {node.id} 未指定办理人、候选人或候选角色",
                f"user task {node.id} has no assignee, candidate users or candidate roles",
            )
        if assignment is not None:
            for value in (assignment.assignee, *assignment.candidate_users):
                if value and is_expression(value):
                    self.expression(node.id, value, "办理人")
        if multi is not None:
            if not multi.signers:
                self.add("multi_without_signers", node.id, "多实例任务未指定签署人", "no signers")
            self.expression(node.id, multi.signers, "签署人")
            self.expression(node.id, multi.weights, "权重")
            ratio = multi.pass_ratio
            if multi.mode == "vote" and (ratio is None or not 0 < ratio <= 1):
                self.add(
                    "invalid_pass_ratio",
                    node.id,
                    f"票签任务 {node.id} 的通过比例须在 (0, 1] 之内，实为 {ratio}",
                    f"vote task {node.id} needs a pass ratio in (0, 1], got {ratio}",
                )
        if node.timeout is not None and node.timeout.after_working_days < 1:
            self.add("invalid_timeout", node.id, "超时天数须为正数", "timeout days must be > 0")


def check(graph: ProcessGraph) -> list[Problem]:
    """Every problem of ``graph``, in a stable order; empty when it can be deployed."""
    checker = _Checker(graph)
    checker.structure()
    for node in graph.nodes.values():
        checker.node(node)
    return checker.problems


def validate(graph: ProcessGraph) -> None:
    """Raise ``InvalidInput(code="invalid_process")`` listing every problem, or return."""
    problems = check(graph)
    if problems:
        nodes = ", ".join(dict.fromkeys(p.node for p in problems))
        raise InvalidInput(
            f"流程 {graph.key} 有 {len(problems)} 处问题，涉及：{nodes}",
            f"process {graph.key} has {len(problems)} problems at: {nodes}",
            code="invalid_process",
            details={"problems": [asdict(p) for p in problems]},
        )
