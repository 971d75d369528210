"""Multi-instance user tasks: 会签, 或签, 票签, 顺签, and 加签 / 减签."""

from __future__ import annotations

from pathlib import Path

import pytest

from xietong.kernel.errors import Conflict, Forbidden, NotFound
from xietong.kernel.workflow import definitions, operations, signers
from xietong.kernel.workflow import tasks as task_rules
from xietong.kernel.workflow.model import ProcessGraph

from .conftest import Flowbed, graph, node, task
from .conftest import signers as signer_node


def routed(key: str, sign: object) -> ProcessGraph:
    """start → sign → xor(outcome) → yes(boss) | no(head) → end."""
    return graph(
        key,
        [
            node("start", "start"),
            sign,  # type: ignore[list-item]
            node("xor", "exclusive", default_flow="f_no"),
            task("yes", "boss"),
            task("no", "head"),
            node("end", "end"),
        ],
        [
            ("start", "sign"),
            ("sign", "xor"),
            ("xor", "yes", "${sign_outcome == 'approve'}", "f_yes"),
            ("xor", "no", None, "f_no"),
            ("yes", "end"),
            ("no", "end"),
        ],
    )


def _do(bed: Flowbed, instance_id: int, user: str, outcome: str = "approve") -> None:
    found = bed.open_task(instance_id, "sign", user)
    operations.complete(bed.ctx, bed.actor(user), found.id, outcome)


def test_countersign_all_needs_every_approval(bed: Flowbed) -> None:
    bed.deploy(routed("all", signer_node("sign", "countersign_all", "rev1,rev2,rev3")))
    started = bed.start("all")
    assert len(bed.tasks(started.id)) == 3
    _do(bed, started.id, "rev1")
    _do(bed, started.id, "rev3")
    assert bed.waiting_nodes(started.id) == ["sign"]
    _do(bed, started.id, "rev2")
    assert bed.waiting_nodes(started.id) == ["yes"]
    assert bed.instance(started.id).variables["sign_outcome"] == "approve"


def test_countersign_all_one_reject_decides_and_cancels_the_rest(bed: Flowbed) -> None:
    bed.deploy(routed("all", signer_node("sign", "countersign_all", "${reviewers}")))
    started = bed.start("all", variables={"reviewers": ["rev1", "rev2", "rev3"]})
    _do(bed, started.id, "rev1")
    _do(bed, started.id, "rev2", "reject")
    assert bed.waiting_nodes(started.id) == ["no"]
    rev3 = [t for t in bed.tasks(started.id, None) if t.assignee_id == bed.user_ids["rev3"]]
    assert (rev3[0].status, rev3[0].cancel_reason) == ("cancelled", "decided")


def test_countersign_any_first_approval_wins(bed: Flowbed) -> None:
    bed.deploy(routed("any", signer_node("sign", "countersign_any", "rev1,rev2,rev3")))
    started = bed.start("any")
    _do(bed, started.id, "rev2", "reject")  # one reject is only that signer's vote
    assert bed.waiting_nodes(started.id) == ["sign"]
    _do(bed, started.id, "rev3")
    assert bed.waiting_nodes(started.id) == ["yes"]
    cancelled = [t for t in bed.tasks(started.id, "cancelled")]
    assert [t.assignee_id for t in cancelled] == [bed.user_ids["rev1"]]


def test_countersign_any_rejects_when_everyone_rejected(bed: Flowbed) -> None:
    bed.deploy(routed("any", signer_node("sign", "countersign_any", "rev1,rev2")))
    started = bed.start("any")
    _do(bed, started.id, "rev1", "reject")
    _do(bed, started.id, "rev2", "reject")
    assert bed.waiting_nodes(started.id) == ["no"]


def test_vote_passes_at_the_ratio(bed: Flowbed) -> None:
    bed.deploy(routed("vote", signer_node("sign", "vote", "rev1,rev2,rev3", pass_ratio=0.6)))
    started = bed.start("vote")
    _do(bed, started.id, "rev1")
    assert bed.waiting_nodes(started.id) == ["sign"]  # 1/3 < 0.6, 3/3 still possible
    _do(bed, started.id, "rev2")  # 2/3 ≥ 0.6
    assert bed.waiting_nodes(started.id) == ["yes"]
    assert bed.tasks(started.id, "cancelled")[0].assignee_id == bed.user_ids["rev3"]


def test_vote_fails_as_soon_as_the_ratio_is_out_of_reach(bed: Flowbed) -> None:
    bed.deploy(
        routed(
            "wvote",
            signer_node(
                "sign",
                "vote",
                "rev1,rev2,rev3",
                pass_ratio=0.5,
                weights="${weights}",
            ),
        )
    )
    started = bed.start("wvote", variables={"weights": {"rev1": 3, "rev2": 1, "rev3": 1}})
    _do(bed, started.id, "rev1", "reject")  # 2 of 5 can still approve: < 50 %
    assert bed.waiting_nodes(started.id) == ["no"]


def test_sequential_sign_goes_in_order(bed: Flowbed) -> None:
    bed.deploy(routed("seq", signer_node("sign", "sequential_sign", "rev3,rev1,rev2")))
    started = bed.start("seq")
    assert [t.assignee_id for t in bed.tasks(started.id)] == [bed.user_ids["rev3"]]
    assert len(bed.tasks(started.id, "pending")) == 2
    _do(bed, started.id, "rev3")
    assert [t.assignee_id for t in bed.tasks(started.id)] == [bed.user_ids["rev1"]]
    _do(bed, started.id, "rev1")
    _do(bed, started.id, "rev2")
    assert bed.waiting_nodes(started.id) == ["yes"]


def test_sequential_sign_stops_at_a_reject(bed: Flowbed) -> None:
    bed.deploy(routed("seq", signer_node("sign", "sequential_sign", "rev1,rev2")))
    started = bed.start("seq")
    _do(bed, started.id, "rev1", "reject")
    assert bed.waiting_nodes(started.id) == ["no"]
    assert bed.tasks(started.id, "cancelled")[0].assignee_id == bed.user_ids["rev2"]


def test_add_signer_before_advises_first(bed: Flowbed) -> None:
    bed.deploy(routed("plain", task("sign", "rev1")))
    started = bed.start("plain")
    original = bed.open_task(started.id, "sign", "rev1")
    added = signers.add_signer(
        bed.ctx, bed.actor("rev1"), original.id, [bed.user_ids["rev2"]], "before"
    )
    assert [t.status for t in added] == ["open"]
    assert bed.tasks(started.id, "pending")[0].id == original.id
    with pytest.raises(Conflict):
        operations.complete(bed.ctx, bed.actor("rev1"), original.id)
    # the advisor's reject does not decide the node
    operations.complete(bed.ctx, bed.actor("rev2"), added[0].id, "reject", opinion="建议再核")
    assert bed.waiting_nodes(started.id) == ["sign"]
    operations.complete(bed.ctx, bed.actor("rev1"), original.id, "approve")
    assert bed.waiting_nodes(started.id) == ["yes"]


def test_add_signer_after_passes_the_vote_on(bed: Flowbed) -> None:
    bed.deploy(routed("plain", task("sign", "rev1")))
    started = bed.start("plain")
    original = bed.open_task(started.id, "sign", "rev1")
    added = signers.add_signer(
        bed.ctx, bed.actor("rev1"), original.id, [bed.user_ids["rev2"]], "after"
    )
    assert added[0].status == "pending"
    operations.complete(bed.ctx, bed.actor("rev1"), original.id, "approve")
    assert bed.waiting_nodes(started.id) == ["sign"]
    operations.complete(bed.ctx, bed.actor("rev2"), added[0].id, "reject")
    assert bed.waiting_nodes(started.id) == ["no"]


def test_add_signer_in_parallel_makes_a_countersign(bed: Flowbed) -> None:
    bed.deploy(routed("plain", task("sign", "rev1")))
    started = bed.start("plain")
    original = bed.open_task(started.id, "sign", "rev1")
    with pytest.raises(NotFound):
        signers.add_signer(bed.ctx, bed.actor("rev1"), original.id, [999_999], "parallel")
    signers.add_signer(
        bed.ctx,
        bed.actor("rev1"),
        original.id,
        [bed.user_ids["rev2"], bed.user_ids["rev3"]],
        "parallel",
    )
    operations.complete(bed.ctx, bed.actor("rev1"), original.id)
    _do(bed, started.id, "rev2")
    assert bed.waiting_nodes(started.id) == ["sign"]
    _do(bed, started.id, "rev3")
    assert bed.waiting_nodes(started.id) == ["yes"]


def test_remove_signer_may_decide_and_never_removes_the_last(bed: Flowbed) -> None:
    bed.deploy(routed("all", signer_node("sign", "countersign_all", "rev1,rev2,rev3")))
    started = bed.start("all")
    _do(bed, started.id, "rev1")
    rev2 = bed.open_task(started.id, "sign", "rev2")
    rev3 = bed.open_task(started.id, "sign", "rev3")
    with pytest.raises(Forbidden):
        signers.remove_signer(bed.ctx, bed.actor("boss"), rev3.id)
    signers.remove_signer(bed.ctx, bed.actor("rev2"), rev3.id)
    assert bed.waiting_nodes(started.id) == ["sign"]
    with pytest.raises(Conflict) as last:
        signers.remove_signer(bed.ctx, bed.actor("head"), rev2.id)
    assert last.value.code == "last_signer"
    _do(bed, started.id, "rev2")
    assert bed.waiting_nodes(started.id) == ["yes"]


def test_removing_the_undecided_signer_decides_the_countersign(bed: Flowbed) -> None:
    bed.deploy(routed("all", signer_node("sign", "countersign_all", "rev1,rev2,rev3")))
    started = bed.start("all")
    _do(bed, started.id, "rev1")
    _do(bed, started.id, "rev2")
    rev3 = bed.open_task(started.id, "sign", "rev3")
    # rev3 is the last undecided signer: refused even for a manager
    with pytest.raises(Conflict):
        signers.remove_signer(bed.ctx, bed.actor("head"), rev3.id)


def test_the_benchmarks_countersign_file_runs_as_a_countersign(bed: Flowbed) -> None:
    """tests/data/workflow/countersign.bpmn (bench/workflow.py's second workload, also
    run by SpiffWorkflow): the signers come from the start variables; every signer must
    approve before 审批, and the instance ends after it."""
    source = Path(__file__).parents[2] / "data" / "workflow" / "countersign.bpmn"
    definitions.deploy(bed.ctx, bed.op, source.read_text(encoding="utf-8"), "bpmn")
    started = bed.start("countersign", "boss", {"signers": ["rev1", "rev2", "rev3"]})
    assert len(bed.tasks(started.id)) == 3
    for user in ("rev3", "rev1"):
        _do(bed, started.id, user)
        assert bed.waiting_nodes(started.id) == ["sign"]
    _do(bed, started.id, "rev2")
    approval = bed.open_task(started.id, "approve")
    operations.complete(bed.ctx, bed.actor("boss"), approval.id)
    assert bed.instance(started.id).instance.status == "completed"


def test_a_countersign_approval_that_decides_nothing_does_not_read_the_group(
    bed: Flowbed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The common step of a large 会签 — an approval with other signers still to go —
    is decided from counts (``tasks._still_waiting``); the group's tasks are read only
    for the approval that decides, so a step's cost does not grow with the signers."""
    reads: list[int] = []
    real = task_rules.group_tasks
    monkeypatch.setattr(
        task_rules, "group_tasks", lambda run, group: reads.append(group) or real(run, group)
    )
    bed.deploy(routed("all", signer_node("sign", "countersign_all", "rev1,rev2,rev3")))
    started = bed.start("all")
    _do(bed, started.id, "rev2")
    _do(bed, started.id, "rev1")
    assert reads == [] and bed.waiting_nodes(started.id) == ["sign"]
    _do(bed, started.id, "rev3")
    assert len(reads) == 1
    assert bed.waiting_nodes(started.id) == ["yes"]
