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


register_action("test.external.answer", "department", [Role.EXTERNAL], "回执", "answer")
register_action("test.signed_in", "authenticated", [], "登录即可", "signed in")
register_action("test.open", "public", [], "公开", "public")

BANK = Actor(kind="system", id=9, name="bank", scopes={Role.EXTERNAL: frozenset({10})})


def test_external_role_passes_only_actions_naming_it() -> None:
    assert can(BANK, "test.external.answer", Resource("case", department_id=10))
    assert not can(BANK, "test.external.answer", Resource("case", department_id=20))
    # Not the department's staff actions, nor those open to any signed-in principal.
    assert not can(BANK, "test.case.read", Resource("case", department_id=10))
    assert not can(BANK, "test.signed_in")
    assert visible_departments(BANK, "test.signed_in") == frozenset()
    assert can(BANK, "test.open")
    with pytest.raises(Forbidden):
        authorize(BANK, "test.signed_in")
    # A principal holding another role besides keeps its ordinary powers.
    both = Actor(
        kind="system",
        id=10,
        name="mixed",
        scopes={Role.EXTERNAL: frozenset({10}), Role.REVIEWER: frozenset({10})},
    )
    assert can(both, "test.signed_in")
    assert can(both, "test.case.read", Resource("case", department_id=10))


def test_external_role_has_labels_and_import_names() -> None:
    from xietong.kernel.access import ROLE_BY_NAME, ROLE_NAMES

    assert ROLE_NAMES[Role.EXTERNAL] == ("外部系统", "External system")
    assert ROLE_BY_NAME["外部系统"] is Role.EXTERNAL
    assert ROLE_BY_NAME["external"] is Role.EXTERNAL
