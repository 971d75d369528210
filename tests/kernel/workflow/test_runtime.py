"""The engine: starting, versions, gateways, joins, ends, call activities and messages."""

from __future__ import annotations

import pytest

from xietong.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from xietong.kernel.workflow import definitions, instances, operations
from xietong.kernel.workflow.model import Assignment
from xietong.kernel.workflow.store import WfFork, WfHistory, WfTask, WfToken
from xietong.kernel.workflow.views import TaskView

from .conftest import Flowbed, graph, line, node, task


def approval(key: str = "leave") -> object:
    """start → apply → check(boss) → xor: approve → archive(head) → end; reject → end_r."""
    return graph(
        key,
        [
            node("start", "start"),
            task("apply", "${starter}"),
            task("check", "boss"),
            node("xor", "exclusive", default_flow="f_no"),
            task("archive", "head"),
            node("end", "end"),
            node("end_r", "end"),
        ],
        [
            ("start", "apply"),
            ("apply", "check"),
            ("check", "xor"),
            ("xor", "archive", "${outcome == 'approve'}", "f_yes"),
            ("xor", "end_r", None, "f_no"),
            ("archive", "end"),
        ],
    )


def test_a_line_of_user_tasks_runs_to_completion(bed: Flowbed) -> None:
    bed.deploy(approval())
    started = bed.start("leave", business_key="BK-1", variables={"days": 3})
    assert started.status == "running" and started.version == 1
    apply = bed.open_task(started.id, "apply", "applicant")
    assert apply.business_key == "BK-1" and apply.process_key == "leave"
    operations.complete(bed.ctx, bed.actor("applicant"), apply.id, opinion="申请")
    check = bed.open_task(started.id, "check", "boss")
    assert check.previous_task_id == apply.id
    operations.complete(bed.ctx, bed.actor("boss"), check.id, "approve", opinion="同意")
    archive = bed.open_task(started.id, "archive", "head")
    operations.complete(bed.ctx, bed.actor("head"), archive.id)
    detail = bed.instance(started.id)
    assert detail.instance.status == "completed"
    assert detail.instance.ended_at is not None
    assert detail.tokens == []
    assert detail.variables["check_outcome"] == "approve"
    assert detail.variables["days"] == 3 and detail.variables["starter"] == "applicant"
    kinds = [h.kind for h in detail.history]
    assert kinds[0] == "instance.started" and kinds[-1] == "instance.completed"
    assert kinds.count("task.completed") == 3
    opinions = [h.opinion for h in detail.history if h.kind == "task.completed"]
    assert opinions == ["申请", "同意", None]


def test_a_reject_routes_through_the_default_flow(bed: Flowbed) -> None:
    bed.deploy(approval())
    started = bed.start("leave")
    operations.complete(bed.ctx, bed.actor("applicant"), bed.open_task(started.id, "apply").id)
    check = bed.open_task(started.id, "check")
    done = operations.complete(bed.ctx, bed.actor("boss"), check.id, "reject", opinion="不同意")
    assert done.outcome == "reject" and done.opinion == "不同意"
    detail = bed.instance(started.id)
    assert detail.instance.status == "completed"
    assert not [t for t in detail.tasks if t.node_id == "archive"]


def test_instances_keep_their_version(bed: Flowbed) -> None:
    bed.deploy(line("v", task("a", "rev1")))
    first = bed.start("v")
    bed.deploy(line("v", task("b", "rev2")))
    second = bed.start("v")
    assert (first.version, second.version) == (1, 2)
    assert bed.waiting_nodes(first.id) == ["a"]
    assert bed.waiting_nodes(second.id) == ["b"]
    operations.complete(bed.ctx, bed.actor("rev1"), bed.open_task(first.id, "a").id)
    assert bed.instance(first.id).instance.status == "completed"


def parallel(key: str = "par") -> object:
    return graph(
        key,
        [
            node("start", "start"),
            node("fork", "parallel"),
            task("a", "rev1"),
            task("b", "rev2"),
            task("c", "rev3"),
            node("join", "parallel"),
            task("final", "boss"),
            node("end", "end"),
        ],
        [
            ("start", "fork"),
            ("fork", "a"),
            ("fork", "b"),
            ("fork", "c"),
            ("a", "join"),
            ("b", "join"),
            ("c", "join"),
            ("join", "final"),
            ("final", "end"),
        ],
    )


def test_parallel_join_waits_for_every_branch(bed: Flowbed) -> None:
    bed.deploy(parallel())
    started = bed.start("par")
    assert bed.waiting_nodes(started.id) == ["a", "b", "c"]
    operations.complete(bed.ctx, bed.actor("rev1"), bed.open_task(started.id, "a").id)
    operations.complete(bed.ctx, bed.actor("rev3"), bed.open_task(started.id, "c").id)
    assert bed.waiting_nodes(started.id) == ["b", "join", "join"]
    operations.complete(bed.ctx, bed.actor("rev2"), bed.open_task(started.id, "b").id)
    assert bed.waiting_nodes(started.id) == ["final"]
    final = bed.open_task(started.id, "final")
    operations.complete(bed.ctx, bed.actor("boss"), final.id)
    assert bed.instance(started.id).instance.status == "completed"


def test_nested_and_partially_merged_forks_join(bed: Flowbed) -> None:
    # fork into a, b, c; a and b merge at j1, then j1 and c merge at j2
    bed.deploy(
        graph(
            "partial",
            [
                node("start", "start"),
                node("fork", "parallel"),
                task("a", "rev1"),
                task("b", "rev2"),
                task("c", "rev3"),
                node("j1", "parallel"),
                node("j2", "parallel"),
                node("end", "end"),
            ],
            [
                ("start", "fork"),
                ("fork", "a"),
                ("fork", "b"),
                ("fork", "c"),
                ("a", "j1"),
                ("b", "j1"),
                ("j1", "j2"),
                ("c", "j2"),
                ("j2", "end"),
            ],
        )
    )
    started = bed.start("partial")
    for name, user in [("c", "rev3"), ("a", "rev1"), ("b", "rev2")]:
        operations.complete(bed.ctx, bed.actor(user), bed.open_task(started.id, name).id)
    assert bed.instance(started.id).instance.status == "completed"


def inclusive() -> object:
    return graph(
        "incl",
        [
            node("start", "start"),
            node("or", "inclusive", default_flow="f_default"),
            task("a", "rev1"),
            task("b", "rev2"),
            task("c", "rev3"),
            node("join", "inclusive"),
            task("final", "boss"),
            node("end", "end"),
        ],
        [
            ("start", "or"),
            ("or", "a", "${amount > 100}", "f_a"),
            ("or", "b", "${urgent}", "f_b"),
            ("or", "c", None, "f_default"),
            ("a", "join"),
            ("b", "join"),
            ("c", "join"),
            ("join", "final"),
            ("final", "end"),
        ],
    )


def test_inclusive_forks_every_true_branch_and_joins_what_was_forked(bed: Flowbed) -> None:
    bed.deploy(inclusive())
    both = bed.start("incl", variables={"amount": 500, "urgent": True})
    assert bed.waiting_nodes(both.id) == ["a", "b"]
    operations.complete(bed.ctx, bed.actor("rev2"), bed.open_task(both.id, "b").id)
    assert bed.waiting_nodes(both.id) == ["a", "join"]
    operations.complete(bed.ctx, bed.actor("rev1"), bed.open_task(both.id, "a").id)
    assert bed.waiting_nodes(both.id) == ["final"]

    one = bed.start("incl", variables={"amount": 500, "urgent": False})
    assert bed.waiting_nodes(one.id) == ["a"]
    operations.complete(bed.ctx, bed.actor("rev1"), bed.open_task(one.id, "a").id)
    assert bed.waiting_nodes(one.id) == ["final"]

    default = bed.start("incl", variables={"amount": 5, "urgent": False})
    assert bed.waiting_nodes(default.id) == ["c"]


def test_terminate_end_cancels_the_other_branches(bed: Flowbed) -> None:
    bed.deploy(
        graph(
            "term",
            [
                node("start", "start"),
                node("fork", "parallel"),
                task("a", "rev1"),
                task("b", "rev2"),
                node("stop", "terminate"),
                node("end", "end"),
            ],
            [("start", "fork"), ("fork", "a"), ("fork", "b"), ("a", "stop"), ("b", "end")],
        )
    )
    started = bed.start("term")
    operations.complete(bed.ctx, bed.actor("rev1"), bed.open_task(started.id, "a").id)
    detail = bed.instance(started.id)
    assert detail.instance.status == "completed"
    assert detail.instance.end_reason == "terminate_end"
    b = next(t for t in detail.tasks if t.node_id == "b")
    assert (b.status, b.cancel_reason) == ("cancelled", "terminate_end")


def test_call_activity_runs_a_child_and_copies_variables_back(bed: Flowbed) -> None:
    bed.deploy(line("child", task("sub", "rev1")))
    bed.deploy(line("parent", node("call", "call", called_process="child"), task("after", "boss")))
    started = bed.start("parent", variables={"x": 1})
    with bed.ctx.db.read() as session:
        child = TaskView.of(session.query(WfTask).filter(WfTask.node_id == "sub").one())
    assert child.instance_id != started.id and child.process_key == "child"
    operations.complete(bed.ctx, bed.actor("rev1"), child.id, variables={"from_child": "yes"})
    assert bed.instance(child.instance_id).instance.status == "completed"
    assert bed.waiting_nodes(started.id) == ["after"]
    assert bed.instance(started.id).variables["from_child"] == "yes"


def test_message_correlation_continues_the_waiting_instance(bed: Flowbed) -> None:
    bed.deploy(line("msg", node("wait", "message", message="paid", correlation_key="${order}")))
    started = bed.start("msg", variables={"order": "A-1"})
    other = bed.start("msg", variables={"order": "A-2"})
    with pytest.raises(NotFound) as error:
        instances.correlate_message(bed.ctx, bed.op, "paid", "A-9")
    assert error.value.code == "no_waiting_message"
    instances.correlate_message(bed.ctx, bed.op, "paid", "A-1", {"amount": 10})
    assert bed.instance(started.id).instance.status == "completed"
    assert bed.instance(started.id).variables["amount"] == 10
    assert bed.instance(other.id).instance.status == "running"


def test_no_applicable_flow_is_invalid_input_and_changes_nothing(bed: Flowbed) -> None:
    bed.deploy(
        graph(
            "nopath",
            [node("start", "start"), task("a", "rev1"), node("x", "exclusive"), node("e", "end")],
            [("start", "a"), ("a", "x"), ("x", "e", "${amount > 10}")],
        )
    )
    started = bed.start("nopath", variables={"amount": 1})
    a = bed.open_task(started.id, "a")
    size = bed.audit_size()
    with pytest.raises(InvalidInput) as error:
        operations.complete(bed.ctx, bed.actor("rev1"), a.id)
    assert error.value.code == "no_path"
    assert bed.audit_size() == size
    assert bed.open_task(started.id, "a").version == a.version


def test_a_wrongly_typed_variable_rolls_the_whole_step_back(bed: Flowbed) -> None:
    bed.deploy(
        graph(
            "typed",
            [
                node("start", "start"),
                task("a", "rev1"),
                node("x", "exclusive", default_flow="f_low"),
                task("big", "boss"),
                node("e", "end"),
            ],
            [
                ("start", "a"),
                ("a", "x"),
                ("x", "big", "${amount > 100}", "f_big"),
                ("x", "e", None, "f_low"),
                ("big", "e"),
            ],
        )
    )
    started = bed.start("typed")
    a = bed.open_task(started.id, "a")
    size, history = bed.audit_size(), bed.count(WfHistory)
    with pytest.raises(InvalidInput) as error:
        operations.complete(bed.ctx, bed.actor("rev1"), a.id, variables={"amount": "lots"})
    assert error.value.code == "condition_type_error"
    assert bed.audit_size() == size and bed.count(WfHistory) == history
    again = bed.open_task(started.id, "a")
    assert (again.status, again.version) == ("open", a.version)
    assert "amount" not in bed.instance(started.id).variables
    operations.complete(bed.ctx, bed.actor("rev1"), a.id, variables={"amount": 500})
    assert bed.waiting_nodes(started.id) == ["big"]


def test_bad_completions_are_refused(bed: Flowbed) -> None:
    bed.deploy(line("bad", task("a", "rev1"), task("b", "rev2")))
    started = bed.start("bad")
    a = bed.open_task(started.id, "a")
    with pytest.raises(Forbidden):
        operations.complete(bed.ctx, bed.actor("rev2"), a.id)
    with pytest.raises(InvalidInput):
        operations.complete(bed.ctx, bed.actor("rev1"), a.id, "maybe")
    with pytest.raises(Conflict) as stale:
        operations.complete(bed.ctx, bed.actor("rev1"), a.id, expected_version=a.version + 5)
    assert stale.value.code == "stale"
    operations.complete(bed.ctx, bed.actor("rev1"), a.id, expected_version=a.version)
    with pytest.raises(Conflict) as twice:
        operations.complete(bed.ctx, bed.actor("rev1"), a.id)
    assert twice.value.code == "task_already_completed"
    with pytest.raises(NotFound):
        operations.complete(bed.ctx, bed.actor("rev1"), 999_999)
    b = bed.open_task(started.id, "b")
    instances.suspend(bed.ctx, bed.actor("head"), started.id)
    with pytest.raises(Conflict) as suspended:
        operations.complete(bed.ctx, bed.actor("rev2"), b.id)
    assert suspended.value.code == "instance_suspended"
    instances.resume(bed.ctx, bed.actor("head"), started.id)
    instances.terminate(bed.ctx, bed.actor("head"), started.id)
    with pytest.raises(Conflict) as ended:
        operations.complete(bed.ctx, bed.actor("rev2"), b.id)
    assert ended.value.code == "instance_ended"


def test_candidates_by_department_and_role(bed: Flowbed) -> None:
    bed.deploy(line("cand", node("review", assignment=Assignment(candidate_roles=("reviewer",)))))
    started = bed.start("cand")
    review = bed.open_task(started.id, "review")
    assert review.assignee_id is None and review.candidate_role == "reviewer"
    with pytest.raises(Forbidden):
        operations.claim(bed.ctx, bed.actor("boss"), review.id)
    claimed = operations.claim(bed.ctx, bed.actor("rev2"), review.id)
    assert claimed.assignee_id == bed.user_ids["rev2"]
    with pytest.raises(Conflict):
        operations.claim(bed.ctx, bed.actor("rev1"), review.id)
    with pytest.raises(Forbidden):
        operations.complete(bed.ctx, bed.actor("rev1"), review.id)
    operations.complete(bed.ctx, bed.actor("rev2"), review.id)
    assert bed.instance(started.id).instance.status == "completed"


def test_each_branch_of_a_split_is_its_own_scope(bed: Flowbed) -> None:
    bed.deploy(parallel())
    started = bed.start("par")
    with bed.ctx.db.read() as session:
        tokens = session.query(WfToken).filter_by(instance_id=started.id, status="waiting")
        branches = {t.fork_id for t in tokens}
        forks = session.query(WfFork).filter(WfFork.id.in_(branches)).all()
        splits = {f.split_id for f in forks}
        parents = {f.parent_fork_id for f in forks}
    assert len(branches) == 3 and None not in branches
    assert len(splits) == 1 and parents == {None}


def _cancellable(interrupting: bool) -> object:
    """a (rev1) with a boundary message ``cancel`` (correlated on ${order}) → escalate."""
    return graph(
        f"bm_{int(interrupting)}",
        [
            node("start", "start"),
            task("a", "rev1"),
            node(
                "cancel",
                "message",
                message="cancel",
                correlation_key="${order}",
                attached_to="a",
                cancel_activity=interrupting,
            ),
            task("handle", "boss"),
            node("end", "end"),
            node("end2", "end"),
        ],
        [("start", "a"), ("a", "end"), ("cancel", "handle"), ("handle", "end2")],
    )


def test_an_interrupting_boundary_message_abandons_the_task(bed: Flowbed) -> None:
    bed.deploy(_cancellable(True))
    started = bed.start("bm_1", variables={"order": "A-1"})
    other = bed.start("bm_1", variables={"order": "A-2"})
    assert bed.waiting_nodes(started.id) == ["a", "cancel"]
    instances.correlate_message(bed.ctx, bed.op, "cancel", "A-1")
    assert bed.waiting_nodes(started.id) == ["handle"]
    a = next(t for t in bed.tasks(started.id, None) if t.node_id == "a")
    assert (a.status, a.cancel_reason) == ("cancelled", "boundary_message")
    assert bed.waiting_nodes(other.id) == ["a", "cancel"]  # the other order is untouched
    with pytest.raises(NotFound):  # delivered once: nobody waits for it any more
        instances.correlate_message(bed.ctx, bed.op, "cancel", "A-1")


def test_a_non_interrupting_boundary_message_runs_beside_the_task_each_time(
    bed: Flowbed,
) -> None:
    bed.deploy(_cancellable(False))
    started = bed.start("bm_0", variables={"order": "A-1"})
    instances.correlate_message(bed.ctx, bed.op, "cancel", "A-1")
    instances.correlate_message(bed.ctx, bed.op, "cancel", "A-1")
    assert bed.waiting_nodes(started.id) == ["a", "cancel", "handle", "handle"]


def test_leaving_the_task_ends_its_boundary_message_subscription(bed: Flowbed) -> None:
    bed.deploy(_cancellable(True))
    started = bed.start("bm_1", variables={"order": "A-1"})
    operations.complete(bed.ctx, bed.actor("rev1"), bed.open_task(started.id, "a").id)
    assert bed.instance(started.id).instance.status == "completed"
    with pytest.raises(NotFound) as error:
        instances.correlate_message(bed.ctx, bed.op, "cancel", "A-1")
    assert error.value.code == "no_waiting_message"


_YAML_CANCELLABLE = """
key: yaml_bm
steps:
  - id: a
    task: {assignee: rev1}
    on_message:
      message: cancel
      correlation: "${order}"
      steps: [{id: handle, task: {assignee: boss}}]
"""


def test_a_yaml_boundary_message_abandons_the_task(bed: Flowbed) -> None:
    definitions.deploy(bed.ctx, bed.op, _YAML_CANCELLABLE, "yaml")
    started = bed.start("yaml_bm", variables={"order": "A-1"})
    assert bed.waiting_nodes(started.id) == ["a", "a_message"]
    instances.correlate_message(bed.ctx, bed.op, "cancel", "A-1")
    assert bed.waiting_nodes(started.id) == ["handle"]
    a = next(t for t in bed.tasks(started.id, None) if t.node_id == "a")
    assert (a.status, a.cancel_reason) == ("cancelled", "boundary_message")
    operations.complete(bed.ctx, bed.actor("boss"), bed.open_task(started.id, "handle").id)
    assert bed.instance(started.id).instance.status == "completed"
