"""The engine writes its own rows (``_rows``) and leaves the session as a flush would."""

from __future__ import annotations

from inspect import signature

import pytest
from sqlalchemy import String, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session, attributes
from sqlalchemy.orm.attributes import NO_VALUE
from sqlalchemy.orm.identity import IdentityMap
from sqlalchemy.types import TypeEngine

from xietong.kernel.access import operator_actor
from xietong.kernel.errors import Conflict
from xietong.kernel.uow import UnitOfWork
from xietong.kernel.workflow import _ops, _rows, operations
from xietong.kernel.workflow._ops import load_task
from xietong.kernel.workflow._run import Run
from xietong.kernel.workflow.store import WfInstance, WfTask, WfToken

from .conftest import Flowbed, line, task


def _instance_with_task(bed: Flowbed) -> tuple[int, int]:
    bed.deploy(line("rows", task("a", "rev1"), task("b", "rev2")))
    started = bed.start("rows")
    return started.id, bed.open_task(started.id, "a").id


def test_the_private_sqlalchemy_names_used_still_exist() -> None:
    """_rows and kernel.db lean on SQLAlchemy internals (pyproject pins below 2.2): an
    upgrade that renames them must fail here, not silently slow down or misbehave."""
    register = getattr(Session, "_register_persistent", None)
    assert callable(register) and _rows._REGISTER_PERSISTENT is register
    assert list(signature(register).parameters) == ["self", "states"]
    assert attributes.NO_VALUE is NO_VALUE
    row = WfTask(id=1, opinion="x")
    state = sa_inspect(row)
    assert isinstance(state.committed_state, dict)
    assert state.committed_state.get("opinion", NO_VALUE) is NO_VALUE  # never loaded
    process = getattr(TypeEngine, "_cached_bind_processor", None)
    assert callable(process)
    assert list(signature(process).parameters) == ["self", "dialect"]
    assert String()._cached_bind_processor(sqlite.dialect()) is None
    # reading rows (_rows.load_rows, add_new) as the ORM's loader builds objects
    result = getattr(TypeEngine, "_cached_result_processor", None)
    assert callable(result)
    assert list(signature(result).parameters) == ["self", "dialect", "coltype"]
    assert callable(getattr(IdentityMap, "_add_unpresent", None))
    assert callable(sa_inspect(WfTask).class_manager.new_instance)
    assert isinstance(Session().hash_key, int)


@pytest.mark.parametrize("fast", [True, False], ids=["register_persistent", "public"])
def test_a_step_leaves_its_rows_written_persistent_and_unmodified(
    bed: Flowbed, fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not fast:  # an SQLAlchemy without the private call: the public fallback
        monkeypatch.setattr(_rows, "_REGISTER_PERSISTENT", None)
    instance_id, task_id = _instance_with_task(bed)
    with UnitOfWork(bed.ctx, bed.actor("rev1")) as uow:
        run = Run(uow)
        state, row = load_task(run, task_id)
        version = row.version
        operations.finish_task(run, state, row, "approve", opinion="好")
        new_task = next(t for t in uow.session.new if isinstance(t, WfTask))
        run.flush()
        session = uow.session
        # as after the ORM's flush: nothing pending, nothing dirty, all in the identity map
        assert not [o for o in session.new if isinstance(o, WfTask | WfToken)]
        assert not [o for o in session.dirty if isinstance(o, WfTask | WfToken)]
        assert session.get(WfTask, new_task.id) is new_task
        for written in (new_task, row):
            written_state = sa_inspect(written)
            assert written_state.persistent and not written_state.modified
            assert not written_state.committed_state
        assert row.version == version + 1
        # defaults the ORM would have applied are on the object and in the row
        assert new_task.kind == "normal" and new_task.counts is True and new_task.version == 1
        stored = session.execute(
            select(WfTask.status, WfTask.outcome, WfTask.opinion, WfTask.version).where(
                WfTask.id == task_id
            )
        ).one()
        assert tuple(stored) == ("completed", "approve", "好", version + 1)
        # a later change of a written row is an UPDATE of that column only
        new_task.opinion = "later"
        run.flush()
        assert session.scalar(select(WfTask.opinion).where(WfTask.id == new_task.id)) == "later"
        assert new_task.version == 2
        run.require_active(state)
        uow.record("test.rows", f"task:{task_id}", {})
        run.finish()
        uow.commit()
    assert [t.node_id for t in bed.tasks(instance_id)] == ["b"]


def test_a_stale_version_is_a_conflict_and_changes_nothing(bed: Flowbed) -> None:
    instance_id, task_id = _instance_with_task(bed)
    size = bed.audit_size()
    with pytest.raises(Conflict), UnitOfWork(bed.ctx, operator_actor("test")) as uow:
        run = Run(uow)
        _state, row = load_task(run, task_id)
        # another transaction moved the version on since this one read the row
        uow.session.connection().exec_driver_sql(
            "UPDATE wf_task SET version = version + 1 WHERE id = ?"
            if bed.ctx.db.is_sqlite
            else "UPDATE wf_task SET version = version + 1 WHERE id = %s",
            (task_id,),
        )
        row.opinion = "stale"
        run.flush()
    assert bed.audit_size() == size
    (open_task,) = bed.tasks(instance_id)
    assert open_task.id == task_id and open_task.opinion is None and open_task.version == 1


def _columns(row: object) -> dict[str, object]:
    return {key: value for key, value in vars(row).items() if not key.startswith("_")}


def test_rows_read_through_the_driver_equal_the_orms_and_are_tracked(bed: Flowbed) -> None:
    """``_rows.load_rows`` makes the objects the ORM's loader would: the same values (JSON,
    UTC datetimes, booleans, floats converted), persistent, unmodified, in the identity
    map; a later change is tracked and written like any other."""
    instance_id, task_id = _instance_with_task(bed)
    with bed.ctx.db.read() as session:
        expected = session.execute(
            select(WfTask, WfInstance, WfToken)
            .join(WfInstance, WfInstance.id == WfTask.instance_id)
            .join(WfToken, WfToken.id == WfTask.token_id)
            .where(WfTask.id == task_id)
        ).one()
        expected_values = [_columns(row) for row in expected]
    with UnitOfWork(bed.ctx, bed.actor("rev1")) as uow:
        run = Run(uow)
        state, row = load_task(run, task_id)
        token = uow.session.get(WfToken, row.token_id)
        loaded = (row, state.row, token)
        assert [_columns(item) for item in loaded] == expected_values
        for item in loaded:
            item_state = sa_inspect(item)
            assert item_state.persistent and not item_state.modified
            assert uow.session.get(type(item), item.id) is item
        assert row.created_at.tzinfo is not None and isinstance(token.state, dict)
        # a row the session holds comes back as that object; refresh=True refuses it
        sql = _rows.reader_sql(
            uow.session.connection().dialect,
            (WfTask,),
            "SELECT {0} FROM wf_task AS c0 WHERE c0.id = ?",
        )
        assert _rows.load_rows(uow.session, (WfTask,), sql, (task_id,))[0][0] is row
        with pytest.raises(_rows.Known):
            _rows.load_rows(uow.session, (WfTask,), sql, (task_id,), refresh=True)
        row.opinion = "改"
        assert row in uow.session.dirty
    with bed.ctx.db.read() as session:  # rolled back: nothing written
        assert session.get(WfTask, task_id).opinion is None
    assert bed.instance(instance_id).instance.status == "running"


def test_load_task_with_rows_held_or_changes_pending_reads_through_the_orm(
    bed: Flowbed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver read never sees past what the ORM would: a session holding the row, or
    with unflushed changes (which the ORM's query flushes first), reads through the ORM."""
    _instance_id, task_id = _instance_with_task(bed)
    orm_reads: list[int] = []
    real = _ops._load_task_orm
    monkeypatch.setattr(
        _ops, "_load_task_orm", lambda run, task: orm_reads.append(task) or real(run, task)
    )
    with UnitOfWork(bed.ctx, bed.actor("rev1")) as uow:
        load_task(Run(uow), task_id)
        assert orm_reads == []  # a fresh step: through the driver
    with UnitOfWork(bed.ctx, bed.actor("rev1")) as uow:
        held = uow.session.get(WfTask, task_id)
        assert held is not None
        held.opinion = "内存中的"  # autoflushed by the ORM's query, then read back
        _state, row = load_task(Run(uow), task_id)
        assert row is held and row.opinion == "内存中的"
        assert orm_reads == [task_id]
