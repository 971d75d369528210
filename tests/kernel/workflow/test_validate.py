"""Deploy-time validation finds every problem at once and names the node."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import pytest

from xietong.kernel.errors import InvalidInput
from xietong.kernel.workflow.model import (
    Assignment,
    Flow,
    MultiInstance,
    Node,
    ProcessGraph,
    ServiceCall,
    TaskTimeout,
    Timer,
)
from xietong.kernel.workflow.validate import check, timer_error, validate

ROLES = Assignment(candidate_roles=("reviewer",))


def task(node_id: str, **fields: Any) -> Node:
    fields.setdefault("assignment", ROLES)
    return Node(id=node_id, kind="user_task", **fields)


def build(nodes: list[Node], flows: list[tuple[str, str] | Flow]) -> ProcessGraph:
    made = tuple(
        flow if isinstance(flow, Flow) else Flow(f"{flow[0]}_{flow[1]}", *flow) for flow in flows
    )
    return ProcessGraph(key="p", name="p", nodes={n.id: n for n in nodes}, flows=made)


def line(*middle: Node, extra: Sequence[Node] = (), flows: Sequence[Any] = ()) -> ProcessGraph:
    """start → middle… → end, plus extra nodes and flows."""
    nodes = [Node("start", "start"), *middle, Node("end", "end"), *extra]
    chain = ["start", *(n.id for n in middle), "end"]
    return build(nodes, [*pairwise(chain), *flows])


def codes(graph: ProcessGraph) -> list[tuple[str, str]]:
    return [(p.code, p.node) for p in check(graph)]


def test_a_good_graph_passes() -> None:
    graph = line(task("a"))
    assert check(graph) == []
    assert validate(graph) is None


def test_start_events() -> None:
    assert ("no_start", "p") in codes(build([Node("end", "end")], []))
    two = build(
        [Node("s1", "start"), Node("s2", "start"), Node("end", "end")],
        [("s1", "end"), ("s2", "end")],
    )
    assert codes(two) == [("several_starts", "s1"), ("several_starts", "s2")]
    message_start = Node("s2", "start", message="m", properties={"trigger": "message"})
    fine = build(
        [Node("s1", "start"), message_start, Node("end", "end")], [("s1", "end"), ("s2", "end")]
    )
    assert codes(fine) == []


def test_dead_ends_and_unreachable_nodes() -> None:
    graph = line(task("a"), extra=[task("stuck"), task("island")], flows=[("a", "stuck")])
    found = codes(graph)
    assert ("dead_end", "stuck") in found and ("dead_end", "island") in found
    assert ("unreachable", "island") in found
    assert ("unreachable", "stuck") not in found
    # the dead end is the problem; what leads to it is not reported again
    assert not [c for c in found if c[0] == "loop_without_exit"]


def test_loops_without_an_exit() -> None:
    graph = line(
        task("a"),
        Node("gw", "exclusive", default_flow="gw_end"),
        extra=[task("b"), task("c"), task("spin")],
        flows=[
            Flow("gw_b", "gw", "b", "${again}"),
            ("b", "c"),
            ("c", "b"),
            ("a", "spin"),
            ("spin", "spin"),
        ],
    )
    found = codes(graph)
    assert ("loop_without_exit", "b") in found and ("loop_without_exit", "c") in found
    assert ("loop_without_exit", "spin") in found
    assert ("loop_without_exit", "a") not in found
    message = next(p for p in check(graph) if p.node == "b").message_en
    assert "b, c" in message


def test_loops_with_an_exit_are_fine() -> None:
    rework = line(
        task("a"),
        Node("gw", "exclusive", default_flow="gw_end"),
        flows=[Flow("back", "gw", "a", "${rework}")],
    )
    assert codes(rework) == []
    # a boundary timer is a way out of a loop too
    boundary = Node("t", "timer", timer=Timer("duration", "P1D"), attached_to="b")
    timed = line(
        task("a"), extra=[task("b"), boundary], flows=[("a", "b"), ("b", "a"), ("t", "end")]
    )
    timed = build(list(timed.nodes.values()), [f for f in timed.flows if f.id != "a_end"])
    assert codes(timed) == []


def test_gateway_conditions_and_defaults() -> None:
    gw = Node("gw", "exclusive")
    ambiguous = build(
        [Node("start", "start"), gw, task("a"), task("b"), Node("end", "end")],
        [
            ("start", "gw"),
            Flow("f1", "gw", "a", "${x}"),
            Flow("f2", "gw", "b"),
            ("a", "end"),
            ("b", "end"),
        ],
    )
    assert codes(ambiguous) == [("missing_condition", "gw")]
    assert "f2" in check(ambiguous)[0].message_en
    with_default = build(
        [
            Node("start", "start"),
            Node("gw", "inclusive", default_flow="f2"),
            task("a"),
            task("b"),
            task("c"),
            Node("end", "end"),
        ],
        [
            ("start", "gw"),
            Flow("f1", "gw", "a", "${x}"),
            Flow("f2", "gw", "b"),
            Flow("f3", "gw", "c"),
            ("a", "end"),
            ("b", "end"),
            ("c", "end"),
        ],
    )
    assert codes(with_default) == [("missing_condition", "gw")]
    all_conditional = build(
        [Node("start", "start"), gw, task("a"), task("b"), Node("end", "end")],
        [
            ("start", "gw"),
            Flow("f1", "gw", "a", "${x}"),
            Flow("f2", "gw", "b", "${not x}"),
            ("a", "end"),
            ("b", "end"),
        ],
    )
    assert codes(all_conditional) == []
    wrong_default = line(Node("gw", "exclusive", default_flow="nowhere"))
    assert codes(wrong_default) == [("unknown_default_flow", "gw")]
    parallel = line(
        Node("fork", "parallel"), extra=[task("b")], flows=[("fork", "b"), ("b", "end")]
    )
    assert codes(parallel) == []


def test_flows_to_unknown_nodes_and_duplicate_flows() -> None:
    graph = line(task("a"), flows=[("a", "ghost"), ("ghost2", "a")])
    found = codes(graph)
    assert ("unknown_node", "a_ghost") in found and ("unknown_node", "ghost2_a") in found
    assert "ghost" in next(p for p in check(graph) if p.node == "a_ghost").message_en
    assert codes(line(task("a"), flows=[("a", "end")])) == [("duplicate_flow", "a_end")]


def test_conditions_that_do_not_compile() -> None:
    graph = line(
        Node("gw", "exclusive", default_flow="gw_end"),
        extra=[task("a")],
        flows=[Flow("bad", "gw", "a", "${amount >}"), ("a", "end")],
    )
    assert codes(graph) == [("invalid_expression", "bad")]


def test_boundary_events() -> None:
    timer = Timer("duration", "PT1H")
    on_gateway = line(
        Node("gw", "parallel"),
        extra=[Node("b", "timer", timer=timer, attached_to="gw")],
        flows=[("b", "end")],
    )
    assert ("boundary_not_on_activity", "b") in codes(on_gateway)
    on_nothing = line(
        task("a"), extra=[Node("b", "timer", timer=timer, attached_to="x")], flows=[("b", "end")]
    )
    assert ("boundary_not_on_activity", "b") in codes(on_nothing)
    with_inflow = line(
        task("a"),
        extra=[Node("b", "timer", timer=timer, attached_to="a")],
        flows=[("b", "end"), ("start", "b")],
    )
    assert ("boundary_has_incoming", "b") in codes(with_inflow)


@pytest.mark.parametrize(
    ("multi", "problem"),
    [
        (MultiInstance("vote", "${s}"), "invalid_pass_ratio"),
        (MultiInstance("vote", "${s}", pass_ratio=1.5), "invalid_pass_ratio"),
        (MultiInstance("vote", "${s}", pass_ratio=0), "invalid_pass_ratio"),
        (MultiInstance("countersign_all", ""), "multi_without_signers"),
        (MultiInstance("countersign_any", "${s +}"), "invalid_expression"),
        (MultiInstance("vote", "${s}", pass_ratio=0.5, weights="${w["), "invalid_expression"),
        (MultiInstance("vote", "${s}", pass_ratio=1), None),
        (MultiInstance("sequential_sign", "signers"), None),
    ],
)
def test_multi_instance(multi: MultiInstance, problem: str | None) -> None:
    found = codes(line(task("a", assignment=None, multi=multi)))
    assert found == ([(problem, "a")] if problem else [])


@pytest.mark.parametrize(
    ("assignment", "problem"),
    [
        (None, "no_assignment"),
        (Assignment(), "no_assignment"),
        (Assignment(candidate_department="430102"), "no_assignment"),
        (Assignment(assignee="zhang"), None),
        (Assignment(candidate_users=("zhang",)), None),
        (Assignment(assignee="${initiator}"), None),
        (Assignment(assignee="${initiator"), None),  # not wrapped: a plain name
        (Assignment(assignee="${a b}"), "invalid_expression"),
    ],
)
def test_user_task_assignment(assignment: Assignment | None, problem: str | None) -> None:
    found = codes(line(task("a", assignment=assignment)))
    assert found == ([(problem, "a")] if problem else [])


def test_activities_without_their_target() -> None:
    graph = line(
        Node("c", "call"),
        Node("s", "service_task", service=ServiceCall()),
        Node("s2", "service_task"),
        Node("m", "message"),
        Node("ok", "service_task", service=ServiceCall(url="https://example.gov.cn/hook")),
        task("late", timeout=TaskTimeout(0, "remind")),
    )
    assert codes(graph) == [
        ("call_without_process", "c"),
        ("service_without_call", "s"),
        ("service_without_call", "s2"),
        ("message_without_name", "m"),
        ("invalid_timeout", "late"),
    ]


def test_events_with_flows_on_the_wrong_side() -> None:
    graph = line(task("a"), flows=[("a", "start"), ("end", "a")])
    found = codes(graph)
    assert ("start_has_incoming", "start") in found and ("end_has_outgoing", "end") in found


@pytest.mark.parametrize(
    ("timer", "error"),
    [
        (Timer("duration", "PT2H"), None),
        (Timer("duration", "P3D", working_days=True), None),
        (Timer("duration", "P1Y2M3W4DT5H6M7.5S"), None),
        (Timer("duration", "${sla}"), None),
        (Timer("duration", ""), "no expression"),
        (Timer("duration", "P"), "duration"),
        (Timer("duration", "PT"), "duration"),
        (Timer("duration", "3 days"), "duration"),
        (Timer("duration", "PT4H", working_days=True), "whole days"),
        (Timer("date", "2030-01-01T09:00:00+08:00"), None),
        (Timer("date", "2030-01-01T09:00:00Z"), None),
        (Timer("date", "tomorrow"), "date-time"),
        (Timer("cycle", "R3/PT1H"), None),
        (Timer("cycle", "R/PT10M"), None),
        (Timer("cycle", "R2/2030-01-01T09:00:00/P1D"), None),
        (Timer("cycle", "R2/P1D/2030-01-01T09:00:00"), None),
        (Timer("cycle", "PT1H"), "repeating"),
        (Timer("cycle", "R3/soon"), "repeating"),
        (Timer("cycle", "R3/PT1H/PT1H"), "repeating"),
    ],
)
def test_timer_expressions(timer: Timer, error: str | None) -> None:
    found = timer_error(timer)
    assert (found is None) if error is None else (error in found)
    graph = line(Node("w", "timer", timer=timer))
    assert codes(graph) == ([] if error is None else [("invalid_timer", "w")])


def test_timer_node_without_timer() -> None:
    assert codes(line(Node("w", "timer"))) == [("invalid_timer", "w")]


def test_validate_raises_with_every_problem() -> None:
    graph = line(task("a", assignment=None), extra=[task("island")], flows=[])
    with pytest.raises(InvalidInput) as error:
        validate(graph)
    assert error.value.code == "invalid_process"
    problems = error.value.details["problems"]
    assert {(p["code"], p["node"]) for p in problems} == {
        ("no_assignment", "a"),
        ("dead_end", "island"),
        ("unreachable", "island"),
    }
    assert all(set(p) == {"code", "node", "message_zh", "message_en"} for p in problems)
    assert "a" in error.value.message_en and "island" in error.value.message_zh


def test_a_long_chain_does_not_recurse() -> None:
    tasks = [task(f"t{i}") for i in range(5000)]
    assert codes(line(*tasks)) == []
    looping = line(*tasks, flows=[("t4999", "t0")])
    assert codes(looping) == []  # the loop has an exit: t4999 → end
