"""The YAML business template compiles to the same graph model as BPMN."""

from __future__ import annotations

import pytest

from xietong.kernel.errors import InvalidInput
from xietong.kernel.workflow.model import ProcessGraph
from xietong.kernel.workflow.template import MAX_TEMPLATE_BYTES, compile_template, read_template
from xietong.kernel.workflow.validate import check

BIRTH = """
key: birth_certificate
name: 出生医学证明
steps:
  - id: accept
    name: 受理
    task: {roles: [window_clerk], form: birth_form}
  - parallel:
      - {id: review_a, name: 审核A, task: {roles: [reviewer]}}
      - {id: review_b, name: 审核B, task: {roles: [reviewer], department: "430102-ga"}}
  - id: approve
    name: 审批
    task:
      roles: [approver]
      countersign: all
      signers: "${approvers}"
      timeout: {working_days: 3, action: remind}
  - id: route
    choose:
      - when: "${amount > 1000}"
        steps:
          - {id: leader, name: 领导审批, task: {assignee: "${leader}"}}
      - when: "${rejected}"
        steps: [{end: terminate}]
      - otherwise: []
  - {id: notify, name: 通知, service: {connector: sms, retries: 5, outputs: [sent]}}
"""


def test_the_birth_certificate_example() -> None:
    graph = read_template(BIRTH)
    assert (graph.key, graph.name) == ("birth_certificate", "出生医学证明")
    assert check(graph) == []
    kinds = {node_id: node.kind for node_id, node in graph.nodes.items()}
    assert kinds == {
        "start": "start",
        "accept": "user_task",
        "parallel_1": "parallel",
        "review_a": "user_task",
        "review_b": "user_task",
        "parallel_1_join": "parallel",
        "approve": "user_task",
        "route": "exclusive",
        "leader": "user_task",
        "end_3_1_0": "terminate",
        "route_join": "exclusive",
        "notify": "service_task",
        "end": "end",
    }
    assert graph.nodes["accept"].form_key == "birth_form"
    assert graph.nodes["review_b"].assignment.candidate_department == "430102-ga"
    approve = graph.nodes["approve"]
    assert (approve.multi.mode, approve.multi.signers) == ("countersign_all", "${approvers}")
    assert (approve.timeout.after_working_days, approve.timeout.action) == (3, "remind")
    assert graph.nodes["leader"].assignment.assignee == "${leader}"
    notify = graph.nodes["notify"].service
    assert (notify.connector, notify.retries, notify.outputs) == ("sms", 5, ("sent",))
    route = graph.outgoing("route")
    assert [(f.target, f.condition) for f in route] == [
        ("leader", "${amount > 1000}"),
        ("end_3_1_0", "${rejected}"),
        ("route_join", None),
    ]
    assert graph.nodes["route"].default_flow == route[2].id == "flow_route_route_join"
    assert [f.source for f in graph.incoming("parallel_1_join")] == ["review_a", "review_b"]


def test_ids_are_stable_and_the_graph_round_trips() -> None:
    first, second = read_template(BIRTH), read_template(BIRTH)
    assert first.to_dict() == second.to_dict()
    assert ProcessGraph.from_dict(first.to_dict()) == first


def test_compile_accepts_parsed_data_and_text() -> None:
    data = {"key": "k", "steps": [{"id": "a", "task": {"roles": ["reviewer"]}}]}
    graph = compile_template(data)
    assert graph.name == "k"
    assert [f.id for f in graph.flows] == ["flow_start_a", "flow_a_end"]
    assert compile_template("key: k\nsteps: [{id: a, task: {roles: [reviewer]}}]") == graph


def steps(text: str) -> ProcessGraph:
    return read_template(f"key: p\nsteps:\n{text}")


def test_parallel_branches_of_several_steps() -> None:
    graph = steps(
        """
  - id: split
    parallel:
      - steps:
          - {id: a1, task: {roles: [reviewer]}}
          - {id: a2, task: {roles: [reviewer]}}
      - {id: b, task: {users: [zhang, li]}}
"""
    )
    assert check(graph) == []
    assert [f.target for f in graph.outgoing("split")] == ["a1", "b"]
    assert [f.source for f in graph.incoming("split_join")] == ["a2", "b"]
    assert graph.nodes["b"].assignment.candidate_users == ("zhang", "li")


@pytest.mark.parametrize(
    ("mode", "extra", "expected"),
    [
        ("all", "", "countersign_all"),
        ("any", "", "countersign_any"),
        ("sequential", "", "sequential_sign"),
        ("vote", ", pass_ratio: 0.6, weights: '${weights}'", "vote"),
    ],
)
def test_countersign_modes(mode: str, extra: str, expected: str) -> None:
    graph = steps(f"  - {{id: s, task: {{countersign: {mode}, signers: '${{signers}}'{extra}}}}}")
    assert graph.nodes["s"].multi.mode == expected
    assert check(graph) == []
    if mode == "vote":
        assert (graph.nodes["s"].multi.pass_ratio, graph.nodes["s"].multi.weights) == (
            0.6,
            "${weights}",
        )


def test_waits_and_calls() -> None:
    graph = steps(
        """
  - wait: {message: paid, correlation: "${application_no}"}
  - {id: cool_off, wait: {duration: P3D, working_days: true}}
  - wait: {date: "2030-01-01T09:00:00+08:00"}
  - {id: sub, call: household_registration}
  - {id: sub2, call: {process: social_security}}
  - end: normal
"""
    )
    assert check(graph) == []
    message = graph.nodes["wait_0"]
    assert (message.kind, message.message, message.correlation_key) == (
        "message",
        "paid",
        "${application_no}",
    )
    timer = graph.nodes["cool_off"].timer
    assert (timer.kind, timer.expression, timer.working_days) == ("duration", "P3D", True)
    assert graph.nodes["wait_2"].timer.kind == "date"
    assert graph.nodes["sub"].called_process == "household_registration"
    assert graph.nodes["sub2"].called_process == "social_security"
    assert graph.nodes["end_5"].kind == "end"
    assert "end" not in graph.nodes  # the explicit end step closes the sequence


def test_escalation_timers() -> None:
    graph = steps(
        """
  - id: review
    task: {roles: [reviewer]}
    on_timer:
      after: P2D
      working_days: true
      steps: [{id: escalate, task: {roles: [head]}}]
  - id: remind
    task: {roles: [approver]}
    on_timer: {after: PT4H, interrupting: false, steps: [{id: urge, service: {connector: sms}}]}
"""
    )
    assert check(graph) == []
    boundary = graph.nodes["review_timer"]
    assert (boundary.attached_to, boundary.cancel_activity, boundary.timer.expression) == (
        "review",
        True,
        "P2D",
    )
    # an interrupting escalation goes on with the next step; a reminder ends on its own
    assert [f.source for f in graph.incoming("remind")] == ["review", "escalate"]
    assert graph.nodes["remind_timer"].cancel_activity is False
    assert [f.target for f in graph.outgoing("urge")] == ["remind_timer_end"]


def test_boundary_messages() -> None:
    graph = steps(
        """
  - id: review
    task: {roles: [reviewer]}
    on_message:
      message: withdrawn
      correlation: "${application_no}"
      steps: [{id: archive, task: {roles: [clerk]}}]
  - id: approve
    task: {roles: [approver]}
    on_message:
      message: supplement
      interrupting: false
      steps: [{id: note, task: {roles: [clerk]}}]
"""
    )
    assert check(graph) == []
    withdrawn = graph.nodes["review_message"]
    assert (
        withdrawn.kind,
        withdrawn.attached_to,
        withdrawn.cancel_activity,
        withdrawn.message,
        withdrawn.correlation_key,
    ) == ("message", "review", True, "withdrawn", "${application_no}")
    # interrupting: its steps replace the task and the process goes on after it
    assert [f.source for f in graph.incoming("approve")] == ["review", "archive"]
    supplement = graph.nodes["approve_message"]
    assert (supplement.cancel_activity, supplement.correlation_key) == (False, None)
    assert [f.target for f in graph.outgoing("note")] == ["approve_message_end"]


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("key: p\nsteps: [{id: a, task: {rolez: [x]}}]", "steps[0].task.rolez"),
        ("key: p\nsteps: [{id: a, task: {}, on_message: {}}]", "steps[0].on_message.message"),
        (
            "key: p\nsteps: [{id: a, task: {}, on_message: {message: m, after: P1D}}]",
            "steps[0].on_message.after",
        ),
        (
            "key: p\nsteps: [{id: a, wait: {duration: P1D}, on_message: {message: m}}]",
            "steps[0].on_message",
        ),
        (
            "key: p\nsteps:\n - {id: a, task: {roles: [x]}}\n - {id: b, task: {roles: [x]}}\n"
            " - {id: c, task: {rolez: [x]}}",
            "steps[2].task.rolez",
        ),
        ("key: p\nsteps: []\nversion: 2", "$.version"),
        ("name: x\nsteps: []", "$.key"),
        ("key: p", "$.steps"),
        ("key: 1p\nsteps: []", "key"),
        ("key: p\nsteps: {}", "steps"),
        ("key: p\nsteps: [{id: a, task: {roles: reviewer}}]", "steps[0].task.roles"),
        ("key: p\nsteps: [{id: a, task: {roles: [1]}}]", "steps[0].task.roles[0]"),
        ("key: p\nsteps: [{task: {roles: [x]}}]", "steps[0].id"),
        ("key: p\nsteps: [{id: 'a b', task: {}}]", "steps[0].id"),
        ("key: p\nsteps: [{id: a, task: {}}, {id: a, task: {}}]", "steps[1]"),
        ("key: p\nsteps: [{id: start, task: {}}]", "steps[0]"),
        ("key: p\nsteps: [{id: a, task: {}, service: {}}]", "steps[0]"),
        ("key: p\nsteps: [{id: a}]", "steps[0]"),
        ("key: p\nsteps: [hello]", "steps[0]"),
        ("key: p\nsteps: [{id: a, task: {}, on_timer: {}}]", "steps[0].on_timer.after"),
        (
            "key: p\nsteps: [{id: a, wait: {duration: P1D}, on_timer: {after: P1D}}]",
            "steps[0].on_timer",
        ),
        ("key: p\nsteps: [{end: normal}, {id: a, task: {}}]", "steps[1]"),
        ("key: p\nsteps: [{end: stop}]", "steps[0].end"),
        ("key: p\nsteps: [{choose: [{otherwise: []}]}]", "steps[0].choose"),
        (
            "key: p\nsteps: [{choose: [{when: x}, {otherwise: [], when: y}]}]",
            "steps[0].choose[1].when",
        ),
        (
            "key: p\nsteps: [{choose: [{otherwise: []}, {when: x}, {when: y}]}]",
            "steps[0].choose[0]",
        ),
        ("key: p\nsteps: [{choose: [{steps: []}]}]", "steps[0].choose[0].when"),
        ("key: p\nsteps: [{parallel: [{id: a, task: {}}]}]", "steps[0].parallel"),
        ("key: p\nsteps: [{id: a, task: {countersign: all}}]", "steps[0].task.signers"),
        (
            "key: p\nsteps: [{id: a, task: {countersign: most, signers: s}}]",
            "steps[0].task.countersign",
        ),
        ("key: p\nsteps: [{id: a, task: {signers: s}}]", "steps[0].task.countersign"),
        (
            "key: p\nsteps: [{id: a, task: {countersign: vote, signers: s, pass_ratio: x}}]",
            "steps[0].task.pass_ratio",
        ),
        (
            "key: p\nsteps: [{id: a, task: {timeout: {working_days: 0}}}]",
            "steps[0].task.timeout.working_days",
        ),
        (
            "key: p\nsteps: [{id: a, task: {timeout: {working_days: true}}}]",
            "steps[0].task.timeout.working_days",
        ),
        (
            "key: p\nsteps: [{id: a, task: {timeout: {working_days: 2, action: skip}}}]",
            "steps[0].task.timeout.action",
        ),
        ("key: p\nsteps: [{wait: {duration: P1D, message: m}}]", "steps[0].wait"),
        ("key: p\nsteps: [{wait: {message: m, working_days: true}}]", "steps[0].wait.working_days"),
        ("key: p\nsteps: [{wait: {duration: P1D, correlation: x}}]", "steps[0].wait.correlation"),
        ("key: p\nsteps: [{id: c, call: {}}]", "steps[0].call.process"),
        ("key: p\nsteps: [{id: s, service: {retries: many}}]", "steps[0].service.retries"),
        ("- a\n- b", "$"),
        ("", "$"),
        ("key: [unclosed", "line 1"),
        ("key: p\nsteps: &s [*s]", "line 2"),
    ],
)
def test_bad_templates_name_the_path(text: str, path: str) -> None:
    with pytest.raises(InvalidInput) as error:
        read_template(text)
    assert error.value.code == "invalid_template"
    assert error.value.details == {"path": path}
    assert path in error.value.message_en and path in error.value.message_zh


def test_alias_bombs_are_refused() -> None:
    bomb = "a: &a [x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}]\n" for p, c in zip("abc", "bcd", strict=True)
    )
    with pytest.raises(InvalidInput) as error:
        read_template(bomb)
    assert "alias" in error.value.message_en


def test_size_limit() -> None:
    with pytest.raises(InvalidInput) as error:
        read_template("#" * (MAX_TEMPLATE_BYTES + 1))
    assert error.value.details == {"path": "$"}


def test_a_choose_whose_branches_all_end_stops_the_sequence() -> None:
    graph = steps(
        """
  - choose:
      - {when: "${ok}", steps: [{end: normal}]}
      - otherwise: [{end: terminate}]
"""
    )
    assert check(graph) == []
    assert "choose_0_join" not in graph.nodes and "end" not in graph.nodes
