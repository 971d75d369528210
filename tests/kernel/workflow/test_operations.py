"""Approval operations: 退回, 驳回, 转办, 委派, 撤回, 拿回, 催办, 抄送, 挂起/激活/终止, 跳转,
代理, and migration of running instances."""

from __future__ import annotations

from datetime import timedelta

import pytest

from xietong.kernel import clock
from xietong.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound, RateLimited
from xietong.kernel.org import add_delegation
from xietong.kernel.workflow import instances, operations, returns
from xietong.kernel.workflow.store import WfHistory
from xietong.kernel.workflow.views import TaskView

from .conftest import Flowbed, graph, line, node, signers, task


def forked(key: str = "forked") -> object:
    """start → apply → fork → (a1 → a2) ‖ (b) → join → final → end."""
    return graph(
        key,
        [
            node("start", "start"),
            task("apply", "applicant"),
            node("fork", "parallel"),
            task("a1", "rev1"),
            task("a2", "rev1"),
            task("b", "rev2"),
            node("join", "parallel"),
            task("final", "boss"),
            node("end", "end"),
        ],
        [
            ("start", "apply"),
            ("apply", "fork"),
            ("fork", "a1"),
            ("a1", "a2"),
            ("fork", "b"),
            ("a2", "join"),
            ("b", "join"),
            ("join", "final"),
            ("final", "end"),
        ],
    )


def _complete(bed: Flowbed, instance_id: int, node_id: str, user: str) -> TaskView:
    return operations.complete(bed.ctx, bed.actor(user), bed.open_task(instance_id, node_id).id)


def _started_forked(bed: Flowbed) -> int:
    bed.deploy(forked())
    started = bed.start("forked")
    _complete(bed, started.id, "apply", "applicant")
    return started.id


def test_send_back_within_a_branch_leaves_the_other_branch_alone(bed: Flowbed) -> None:
    instance_id = _started_forked(bed)
    _complete(bed, instance_id, "a1", "rev1")
    a2 = bed.open_task(instance_id, "a2")
    returns.send_back(bed.ctx, bed.actor("rev1"), a2.id, "a1", opinion="重新核对")
    assert bed.waiting_nodes(instance_id) == ["a1", "b"]
    assert bed.open_task(instance_id, "a1").assignee_id == bed.user_ids["rev1"]
    _complete(bed, instance_id, "b", "rev2")
    _complete(bed, instance_id, "a1", "rev1")
    _complete(bed, instance_id, "a2", "rev1")
    assert bed.waiting_nodes(instance_id) == ["final"]


def test_send_back_before_the_fork_cancels_every_branch(bed: Flowbed) -> None:
    instance_id = _started_forked(bed)
    _complete(bed, instance_id, "b", "rev2")  # b waits at the join
    a1 = bed.open_task(instance_id, "a1")
    returns.send_back(bed.ctx, bed.actor("rev1"), a1.id, "apply", opinion="材料不全")
    assert bed.waiting_nodes(instance_id) == ["apply"]
    detail = bed.instance(instance_id)
    sent = next(t for t in detail.tasks if t.id == a1.id)
    assert (sent.status, sent.outcome, sent.opinion) == ("completed", "send_back", "材料不全")
    # the fork runs again from the start
    _complete(bed, instance_id, "apply", "applicant")
    assert bed.waiting_nodes(instance_id) == ["a1", "b"]
    _complete(bed, instance_id, "a1", "rev1")
    _complete(bed, instance_id, "a2", "rev1")
    _complete(bed, instance_id, "b", "rev2")
    assert bed.waiting_nodes(instance_id) == ["final"]


def test_send_back_from_the_other_open_branch_cancels_it(bed: Flowbed) -> None:
    instance_id = _started_forked(bed)
    b = bed.open_task(instance_id, "b")
    a1 = bed.open_task(instance_id, "a1")
    returns.send_back(bed.ctx, bed.actor("rev2"), b.id, "apply")
    cancelled = next(t for t in bed.tasks(instance_id, None) if t.id == a1.id)
    assert (cancelled.status, cancelled.cancel_reason) == ("cancelled", "send_back")


def test_send_back_after_the_join_reruns_one_branch(bed: Flowbed) -> None:
    instance_id = _started_forked(bed)
    _complete(bed, instance_id, "a1", "rev1")
    _complete(bed, instance_id, "a2", "rev1")
    _complete(bed, instance_id, "b", "rev2")
    final = bed.open_task(instance_id, "final")
    returns.send_back(bed.ctx, bed.actor("boss"), final.id, "b", opinion="审核B重做")
    assert bed.waiting_nodes(instance_id) == ["b", "join"]
    _complete(bed, instance_id, "b", "rev2")
    assert bed.waiting_nodes(instance_id) == ["final"]  # branch a is not redone
    _complete(bed, instance_id, "final", "boss")
    assert bed.instance(instance_id).instance.status == "completed"


def test_send_back_into_a_running_sibling_branch_is_refused(bed: Flowbed) -> None:
    instance_id = _started_forked(bed)
    _complete(bed, instance_id, "a1", "rev1")
    b = bed.open_task(instance_id, "b")
    with pytest.raises(InvalidInput) as error:
        returns.send_back(bed.ctx, bed.actor("rev2"), b.id, "a1")
    assert error.value.code == "node_in_other_branch"


def test_send_back_to_a_node_never_reached_changes_nothing(bed: Flowbed) -> None:
    instance_id = _started_forked(bed)
    a1 = bed.open_task(instance_id, "a1")
    size = bed.audit_size()
    with pytest.raises(InvalidInput) as error:
        returns.send_back(bed.ctx, bed.actor("rev1"), a1.id, "final")
    assert error.value.code == "node_not_reached"
    with pytest.raises(InvalidInput):
        returns.send_back(bed.ctx, bed.actor("rev1"), a1.id, "nope")
    assert bed.audit_size() == size
    assert bed.open_task(instance_id, "a1").version == a1.version


def test_send_back_out_of_a_countersign_cancels_the_other_signers(bed: Flowbed) -> None:
    bed.deploy(
        line(
            "cs",
            task("apply", "applicant"),
            signers("sign", "countersign_all", "rev1,rev2,rev3"),
        )
    )
    started = bed.start("cs")
    _complete(bed, started.id, "apply", "applicant")
    operations.complete(bed.ctx, bed.actor("rev1"), bed.open_task(started.id, "sign", "rev1").id)
    rev2 = bed.open_task(started.id, "sign", "rev2")
    returns.send_back(bed.ctx, bed.actor("rev2"), rev2.id, "apply")
    assert bed.waiting_nodes(started.id) == ["apply"]
    signs = [t for t in bed.tasks(started.id, None) if t.node_id == "sign"]
    assert sorted((t.status, t.cancel_reason) for t in signs) == [
        ("cancelled", "send_back"),
        ("completed", None),
        ("completed", None),
    ]
    _complete(bed, started.id, "apply", "applicant")
    assert len(bed.tasks(started.id)) == 3  # a fresh countersign


def test_reject_to_applicant(bed: Flowbed) -> None:
    instance_id = _started_forked(bed)
    a1 = bed.open_task(instance_id, "a1")
    returns.reject_to_applicant(bed.ctx, bed.actor("rev1"), a1.id, opinion="驳回")
    assert bed.waiting_nodes(instance_id) == ["apply"]
    assert bed.open_task(instance_id, "apply").assignee_id == bed.user_ids["applicant"]
    kinds = [h.kind for h in bed.instance(instance_id).history]
    assert "reject_to_applicant" in kinds


def test_transfer_and_reclaim(bed: Flowbed) -> None:
    bed.deploy(line("tr", task("a", "rev1")))
    started = bed.start("tr")
    a = bed.open_task(started.id, "a")
    with pytest.raises(NotFound):
        operations.transfer(bed.ctx, bed.actor("rev1"), a.id, 999_999)
    with pytest.raises(Forbidden):
        operations.transfer(bed.ctx, bed.actor("rev2"), a.id, bed.user_ids["rev3"])
    moved = operations.transfer(bed.ctx, bed.actor("rev1"), a.id, bed.user_ids["rev2"])
    assert moved.assignee_id == bed.user_ids["rev2"]
    with pytest.raises(Forbidden):
        operations.complete(bed.ctx, bed.actor("rev1"), a.id)
    with pytest.raises(Forbidden):
        returns.reclaim(bed.ctx, bed.actor("rev3"), a.id)
    back = returns.reclaim(bed.ctx, bed.actor("rev1"), a.id)
    assert back.assignee_id == bed.user_ids["rev1"]
    operations.transfer(bed.ctx, bed.actor("rev1"), a.id, bed.user_ids["rev2"])
    operations.complete(bed.ctx, bed.actor("rev2"), a.id, opinion="已办")
    kinds = [h.kind for h in bed.instance(started.id).history]
    assert kinds.count("task.transfer") == 2 and "task.reclaim" in kinds


def test_delegate_and_resolve(bed: Flowbed) -> None:
    bed.deploy(line("dl", task("a", "boss")))
    started = bed.start("dl")
    a = bed.open_task(started.id, "a")
    lent = operations.delegate(bed.ctx, bed.actor("boss"), a.id, bed.user_ids["rev1"])
    assert (lent.status, lent.owner_id) == ("delegated", bed.user_ids["boss"])
    with pytest.raises(Conflict) as delegated:
        operations.complete(bed.ctx, bed.actor("rev1"), a.id)
    assert delegated.value.code == "task_delegated"
    back = operations.resolve(bed.ctx, bed.actor("rev1"), a.id, opinion="已核实")
    assert (back.status, back.assignee_id, back.owner_id) == ("open", bed.user_ids["boss"], None)
    operations.complete(bed.ctx, bed.actor("boss"), a.id)
    history = bed.instance(started.id).history
    resolved = next(h for h in history if h.kind == "task.resolve")
    assert resolved.details["opinion"] == "已核实"


def test_withdraw_before_the_next_step_starts(bed: Flowbed) -> None:
    bed.deploy(line("wd", task("a", "rev1"), task("b", "rev2"), task("c", "rev3")))
    started = bed.start("wd")
    a = _complete(bed, started.id, "a", "rev1")
    with pytest.raises(Forbidden):
        returns.withdraw(bed.ctx, bed.actor("rev2"), a.id)
    reopened = returns.withdraw(bed.ctx, bed.actor("rev1"), a.id)
    assert (reopened.status, reopened.outcome) == ("open", None)
    assert bed.waiting_nodes(started.id) == ["a"]
    b_tasks = [t for t in bed.tasks(started.id, None) if t.node_id == "b"]
    assert [(t.status, t.cancel_reason) for t in b_tasks] == [("cancelled", "withdraw")]
    # completing again, then the next holder starts: too late to withdraw
    operations.complete(bed.ctx, bed.actor("rev1"), a.id)
    _complete(bed, started.id, "b", "rev2")
    with pytest.raises(Conflict) as late:
        returns.withdraw(bed.ctx, bed.actor("rev1"), a.id)
    assert late.value.code == "already_started"


def test_withdraw_inside_a_sequential_sign(bed: Flowbed) -> None:
    bed.deploy(line("wseq", signers("sign", "sequential_sign", "rev1,rev2")))
    started = bed.start("wseq")
    first = bed.open_task(started.id, "sign", "rev1")
    operations.complete(bed.ctx, bed.actor("rev1"), first.id)
    assert bed.open_task(started.id, "sign").assignee_id == bed.user_ids["rev2"]
    returns.withdraw(bed.ctx, bed.actor("rev1"), first.id)
    assert bed.open_task(started.id, "sign").assignee_id == bed.user_ids["rev1"]
    assert len(bed.tasks(started.id, "pending")) == 1


def test_urge_is_limited_to_once_an_hour(bed: Flowbed) -> None:
    bed.deploy(line("urge", task("a", "rev1")))
    started = bed.start("urge")
    a = bed.open_task(started.id, "a")
    with pytest.raises(Forbidden):
        operations.urge(bed.ctx, bed.actor("clerk_b"), a.id)
    operations.urge(bed.ctx, bed.actor("applicant"), a.id, message="请尽快")
    with pytest.raises(RateLimited):
        operations.urge(bed.ctx, bed.actor("applicant"), a.id)
    frozen = clock.FrozenClock(clock.now() + timedelta(hours=2))
    previous = clock.use_clock(frozen)
    try:
        operations.urge(bed.ctx, bed.actor("head"), a.id)
    finally:
        clock.use_clock(previous)
    urged = [h for h in bed.instance(started.id).history if h.kind == "task.urged"]
    assert len(urged) == 2


def test_cc_with_read_status(bed: Flowbed) -> None:
    bed.deploy(line("cc", task("a", "rev1")))
    started = bed.start("cc")
    with pytest.raises(Forbidden):
        operations.cc(bed.ctx, bed.actor("clerk_b"), started.id, [bed.user_ids["rev2"]])
    with pytest.raises(NotFound):
        operations.cc(bed.ctx, bed.actor("applicant"), started.id, [999_999])
    copies = operations.cc(
        bed.ctx, bed.actor("applicant"), started.id, [bed.user_ids["rev2"]], note="知悉"
    )
    assert copies[0].read_at is None
    with pytest.raises(NotFound):
        operations.mark_cc_read(bed.ctx, bed.actor("rev3"), copies[0].id)
    read = operations.mark_cc_read(bed.ctx, bed.actor("rev2"), copies[0].id)
    assert read.read_at is not None


def test_suspend_resume_and_terminate(bed: Flowbed) -> None:
    bed.deploy(line("ctl", task("a", "rev1")))
    started = bed.start("ctl")
    a = bed.open_task(started.id, "a")
    with pytest.raises(Forbidden):
        instances.suspend(bed.ctx, bed.actor("rev1"), started.id)
    instances.suspend(bed.ctx, bed.actor("head"), started.id, reason="待补材料")
    with pytest.raises(Conflict):
        instances.suspend(bed.ctx, bed.actor("head"), started.id)
    for attempt in (
        lambda: operations.transfer(bed.ctx, bed.actor("rev1"), a.id, bed.user_ids["rev2"]),
        lambda: operations.urge(bed.ctx, bed.actor("applicant"), a.id),
        lambda: returns.send_back(bed.ctx, bed.actor("rev1"), a.id, "a"),
    ):
        with pytest.raises(Conflict) as error:
            attempt()
        assert error.value.code == "instance_suspended"
    instances.resume(bed.ctx, bed.actor("head"), started.id)
    with pytest.raises(Conflict):
        instances.resume(bed.ctx, bed.actor("head"), started.id)
    ended = instances.terminate(bed.ctx, bed.actor("head"), started.id, reason="撤件")
    assert ended.status == "terminated"
    assert bed.tasks(started.id, "cancelled")[0].cancel_reason == "terminate"
    with pytest.raises(Conflict):
        instances.terminate(bed.ctx, bed.actor("head"), started.id)


def test_jump_by_an_administrator(bed: Flowbed) -> None:
    instance_id = _started_forked(bed)
    with pytest.raises(Forbidden):
        instances.jump(bed.ctx, bed.actor("head"), instance_id, "final")
    instances.jump(bed.ctx, bed.actor("admin"), instance_id, "final")
    assert bed.waiting_nodes(instance_id) == ["final"]
    with pytest.raises(InvalidInput):
        instances.jump(bed.ctx, bed.actor("admin"), instance_id, "nowhere")


def test_a_jump_that_cannot_feed_a_join_alone_is_refused(bed: Flowbed) -> None:
    """b sits before a split of its own whose two flows go straight to the join that
    also waits for a: no branch of that join can be made for b, so the jump is refused
    and nothing changes."""
    nodes = [
        node("start", "start"),
        node("fork", "parallel"),
        task("a", "rev1"),
        task("b", "rev2"),
        node("fork2", "parallel"),
        task("c", "rev1"),
        task("d", "rev2"),
        node("join", "parallel"),
        node("end", "end"),
    ]
    flows = [
        ("start", "fork"),
        ("fork", "a"),
        ("fork", "b"),
        ("b", "fork2"),
        ("fork2", "c"),
        ("fork2", "d"),
        ("a", "join"),
        ("c", "join"),
        ("d", "join"),
        ("join", "end"),
    ]
    bed.deploy(graph("unjoinable", nodes, flows), check=False)
    started = bed.start("unjoinable")
    before = bed.waiting_nodes(started.id)
    with pytest.raises(InvalidInput) as error:
        instances.jump(bed.ctx, bed.actor("admin"), started.id, "b")
    assert error.value.code == "jump_into_branch"
    assert bed.waiting_nodes(started.id) == before
    instances.jump(bed.ctx, bed.actor("admin"), started.id, "c")  # c alone can: d, a wait
    assert bed.waiting_nodes(started.id) == ["c", "join", "join"]


def test_proxy_through_a_delegation_records_b_for_a(bed: Flowbed) -> None:
    bed.deploy(line("proxy", task("a", "boss")))
    started = bed.start("proxy")
    a = bed.open_task(started.id, "a")
    with pytest.raises(Forbidden):
        operations.complete(bed.ctx, bed.actor("rev1"), a.id)
    now = clock.now()
    add_delegation(
        bed.ctx,
        bed.actor("boss"),
        bed.user_ids["boss"],
        bed.user_ids["rev1"],
        now - timedelta(hours=1),
        now + timedelta(days=1),
        process_key="proxy",
    )
    done = operations.complete(bed.ctx, bed.actor("rev1"), a.id, opinion="代为同意")
    assert done.completed_by_user_id == bed.user_ids["rev1"]
    assert done.on_behalf_of_user_id == bed.user_ids["boss"]
    with bed.ctx.db.read() as session:
        row = session.query(WfHistory).filter_by(kind="task.completed").one()
        assert (row.user_id, row.on_behalf_of_user_id) == (
            bed.user_ids["rev1"],
            bed.user_ids["boss"],
        )


def test_a_delegation_for_another_process_does_not_apply(bed: Flowbed) -> None:
    bed.deploy(line("proxy", task("a", "boss")))
    started = bed.start("proxy")
    now = clock.now()
    add_delegation(
        bed.ctx,
        bed.actor("boss"),
        bed.user_ids["boss"],
        bed.user_ids["rev1"],
        now - timedelta(hours=1),
        now + timedelta(days=1),
        process_key="something-else",
    )
    with pytest.raises(Forbidden):
        operations.complete(bed.ctx, bed.actor("rev1"), bed.open_task(started.id, "a").id)


def test_migrate_running_instances(bed: Flowbed) -> None:
    bed.deploy(line("mig", task("a", "rev1"), task("b", "rev2")))
    first = bed.start("mig")
    second = bed.start("mig")
    _complete(bed, second.id, "a", "rev1")
    bed.deploy(line("mig", task("a2", "rev1"), task("b", "rev2"), task("c", "rev3")))
    with pytest.raises(InvalidInput) as unmapped:
        instances.migrate_instances(bed.ctx, bed.actor("admin"), "mig", 1, 2)
    assert unmapped.value.code == "node_unmapped"
    assert bed.instance(second.id).instance.version == 1  # nothing moved
    moved = instances.migrate_instances(bed.ctx, bed.actor("admin"), "mig", 1, 2, {"a": "a2"})
    assert sorted(moved) == sorted([first.id, second.id])
    assert bed.instance(first.id).instance.version == 2
    _complete(bed, first.id, "a2", "rev1")
    _complete(bed, first.id, "b", "rev2")
    assert bed.waiting_nodes(first.id) == ["c"]
