"""The engine writes its own rows (``_rows``) and leaves the session as a flush would."""

from __future__ import annotations

from inspect import signature

import pytest
from sqlalchemy import String, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session, attributes
from sqlalchemy.orm.attributes import NO_VALUE
from sqlalchemy.types import TypeEngine

from xietong.kernel.access import operator_actor
from xietong.kernel.errors import Conflict
from xietong.kernel.uow import UnitOfWork
from xietong.kernel.workflow import _rows, operations
from xietong.kernel.workflow._ops import load_task
from xietong.kernel.workflow._run import Run
from xietong.kernel.workflow.store import WfTask, WfToken

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
