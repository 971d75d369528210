"""Access control: one decision point, ``authorize(actor, action, resource)``.

Every endpoint and service declares an *action* (registered below or by an app through
the ``register_actions`` hook). An action names the roles that may perform it and its
scope:

- ``department``: the actor must hold one of the roles in the resource's department
  (a role held in a department covers its sub-departments); read actions also pass
  for departments the resource was shared with.
- ``global``: one of the roles anywhere (auditors, the hotline centre's dispatchers).
- ``authenticated``: any signed-in person or connected system.
- ``public``: anyone, signed in or not.

An actor whose only role is 外部系统 (``Role.EXTERNAL``, an outside party's system)
passes only actions that name that role — not ``authenticated`` ones.

The 管理员 (admin) role passes every check. A department sees its own records and what
was shared with it — nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from xietong.kernel.errors import Forbidden, Unauthenticated


class Role(StrEnum):
    WINDOW_CLERK = "window_clerk"
    REVIEWER = "reviewer"
    APPROVER = "approver"
    HEAD = "head"
    DATA_STEWARD = "data_steward"
    SUPERVISOR = "supervisor"
    DISPATCHER = "dispatcher"
    AUDITOR = "auditor"
    ADMIN = "admin"
    # An outside party's system (the bank that answers for a matter): it passes only the
    # actions that name this role, never the department's staff actions.
    EXTERNAL = "external"


ROLE_NAMES: dict[Role, tuple[str, str]] = {
    Role.WINDOW_CLERK: ("窗口受理", "Window clerk"),
    Role.REVIEWER: ("审核", "Reviewer"),
    Role.APPROVER: ("审批", "Approver"),
    Role.HEAD: ("负责人", "Department head"),
    Role.DATA_STEWARD: ("数据管理员", "Data steward"),
    Role.SUPERVISOR: ("督办员", "Supervisor"),
    Role.DISPATCHER: ("派单员", "Dispatcher"),
    Role.AUDITOR: ("审计员", "Auditor"),
    Role.ADMIN: ("管理员", "Administrator"),
    Role.EXTERNAL: ("外部系统", "External system"),
}

ROLE_BY_NAME: dict[str, Role] = {
    **{zh: role for role, (zh, _en) in ROLE_NAMES.items()},
    **{role.value: role for role in Role},
}

Scope = Literal["department", "global", "authenticated", "public"]


@dataclass(frozen=True)
class Action:
    name: str
    scope: Scope
    roles: frozenset[Role]
    description_zh: str
    description_en: str
    read_only: bool = False


_ACTIONS: dict[str, Action] = {}


def register_action(
    name: str,
    scope: Scope,
    roles: Iterable[Role],
    description_zh: str,
    description_en: str,
    *,
    read_only: bool = False,
) -> Action:
    action = Action(name, scope, frozenset(roles), description_zh, description_en, read_only)
    existing = _ACTIONS.get(name)
    if existing is not None and existing != action:
        raise ValueError(f"action {name!r} registered twice with different rules")
    _ACTIONS[name] = action
    return action


def get_action(name: str) -> Action:
    try:
        return _ACTIONS[name]
    except KeyError:
        raise KeyError(f"unregistered action {name!r}: declare it before use") from None


def registered_actions() -> dict[str, Action]:
    return dict(_ACTIONS)


@dataclass(frozen=True)
class Actor:
    """The acting principal a service function receives explicitly."""

    kind: Literal["user", "system", "anonymous", "worker"]
    id: int | None
    name: str
    display_name: str = ""
    # role -> departments where it applies (already expanded to sub-departments)
    scopes: Mapping[Role, frozenset[int]] = field(default_factory=dict)
    department_ids: frozenset[int] = frozenset()

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def is_authenticated(self) -> bool:
        return self.kind != "anonymous"

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.scopes

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(self.scopes)

    @property
    def is_external_only(self) -> bool:
        """Holds only the external-system role: an outside party, not department staff."""
        return self.roles == {Role.EXTERNAL}

    def has_role(self, role: Role) -> bool:
        return role in self.scopes or self.is_admin

    def departments_for(self, roles: Iterable[Role]) -> frozenset[int]:
        found: set[int] = set()
        for role in roles:
            found |= self.scopes.get(role, frozenset())
        return frozenset(found)


ANONYMOUS = Actor(kind="anonymous", id=None, name="anonymous", display_name="访客")
WORKER = Actor(
    kind="worker",
    id=None,
    name="worker",
    display_name="系统后台",
    scopes={Role.ADMIN: frozenset()},
)


@dataclass(frozen=True)
class Resource:
    """What an action touches: its owning department and whom it was shared with."""

    kind: str
    department_id: int | None = None
    shared_with: frozenset[int] = frozenset()
    id: object = None


def can(actor: Actor, action_name: str, resource: Resource | None = None) -> bool:
    action = get_action(action_name)
    if action.scope == "public":
        return True
    if not actor.is_authenticated:
        return False
    if actor.is_external_only and Role.EXTERNAL not in action.roles:
        return False
    if actor.is_admin or action.scope == "authenticated":
        return True
    if not (action.roles & actor.roles):
        return False
    if action.scope == "global":
        return True
    if resource is None or resource.department_id is None:
        # A department-scoped action with no department (e.g. listing): the caller
        # filters by ``visible_departments`` instead.
        return True
    allowed = actor.departments_for(action.roles)
    if resource.department_id in allowed:
        return True
    return action.read_only and bool(resource.shared_with & allowed)


def authorize(actor: Actor, action_name: str, resource: Resource | None = None) -> None:
    """Raise unless ``actor`` may perform ``action_name`` on ``resource``."""
    if can(actor, action_name, resource):
        return
    if not actor.is_authenticated:
        raise Unauthenticated()
    action = get_action(action_name)
    raise Forbidden(
        f"无权执行此操作：{action.description_zh}",
        f"Not allowed: {action.description_en}",
        details={"action": action_name},
    )


def visible_departments(actor: Actor, action_name: str) -> frozenset[int] | None:
    """Departments whose records ``actor`` may see for a listing; ``None`` means all."""
    action = get_action(action_name)
    if actor.is_admin or action.scope in {"public", "global", "authenticated"}:
        return None if can(actor, action_name) else frozenset()
    return actor.departments_for(action.roles)


def operator_actor(name: str) -> Actor:
    """Whoever holds the data dir and its keys (CLI, demo loader) acts as administrator."""
    return Actor(
        kind="system",
        id=None,
        name=name,
        display_name=f"本地操作员 ({name})",
        scopes={Role.ADMIN: frozenset()},
    )
