"""The one decision point: roles, department scope, sharing, admin, anonymous."""

from __future__ import annotations

import pytest

from xietong.kernel.access import (
    ANONYMOUS,
    Actor,
    Resource,
    Role,
    authorize,
    can,
    register_action,
    visible_departments,
)
from xietong.kernel.errors import Forbidden, Unauthenticated

register_action("test.case.read", "department", [Role.REVIEWER], "读", "read", read_only=True)
register_action("test.case.update", "department", [Role.REVIEWER], "改", "update")
register_action("test.report", "global", [Role.SUPERVISOR], "报", "report")

REVIEWER_A = Actor(kind="user", id=1, name="a", scopes={Role.REVIEWER: frozenset({10, 11})})
CLERK_A = Actor(kind="user", id=2, name="c", scopes={Role.WINDOW_CLERK: frozenset({10})})
ADMIN = Actor(kind="user", id=3, name="root", scopes={Role.ADMIN: frozenset()})


def test_department_scope_covers_own_departments_only() -> None:
    assert can(REVIEWER_A, "test.case.update", Resource("case", department_id=10))
    assert can(REVIEWER_A, "test.case.update", Resource("case", department_id=11))
    assert not can(REVIEWER_A, "test.case.update", Resource("case", department_id=20))
    assert not can(CLERK_A, "test.case.read", Resource("case", department_id=10))


def test_sharing_opens_reads_not_writes() -> None:
    shared = Resource("case", department_id=20, shared_with=frozenset({10}))
    assert can(REVIEWER_A, "test.case.read", shared)
    assert not can(REVIEWER_A, "test.case.update", shared)


def test_global_actions_and_admin() -> None:
    supervisor = Actor(kind="user", id=4, name="s", scopes={Role.SUPERVISOR: frozenset({99})})
    assert can(supervisor, "test.report")
    assert not can(REVIEWER_A, "test.report")
    assert can(ADMIN, "test.case.update", Resource("case", department_id=20))


def test_errors_tell_apart_anonymous_and_forbidden() -> None:
    with pytest.raises(Unauthenticated):
        authorize(ANONYMOUS, "test.case.read", Resource("case", department_id=10))
    with pytest.raises(Forbidden) as refused:
        authorize(CLERK_A, "test.case.read", Resource("case", department_id=10))
    assert refused.value.status == 403 and refused.value.message_zh


def test_visible_departments_for_listings() -> None:
    assert visible_departments(REVIEWER_A, "test.case.read") == frozenset({10, 11})
    assert visible_departments(CLERK_A, "test.case.read") == frozenset()
    assert visible_departments(ADMIN, "test.case.read") is None


def test_undeclared_actions_are_a_programming_error() -> None:
    with pytest.raises(KeyError):
        can(ADMIN, "no.such.action")
    with pytest.raises(ValueError):
        register_action("test.report", "public", [], "x", "y")
