"""From memberships to an ``Actor``: roles scoped to departments and their sub-departments.

A role held in a department covers every department below it (a 局's head also heads its
科室). The department tree is small — hundreds of rows for a city — so it is read in one
query and walked in Python rather than with a recursive query per membership.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.kernel.access import Actor, Role
from xietong.kernel.org.models import ConnectedSystem, Department, Membership, User


class DepartmentTree:
    """Parent→children map of all departments, with the set of active ones."""

    def __init__(self, session: Session) -> None:
        rows = session.execute(select(Department.id, Department.parent_id, Department.active))
        self.children: dict[int | None, list[int]] = defaultdict(list)
        self.active: set[int] = set()
        for dept_id, parent_id, active in rows:
            self.children[parent_id].append(dept_id)
            if active:
                self.active.add(dept_id)

    def subtree(self, root: int) -> set[int]:
        """``root`` and everything below it (iterative, and safe against a cycle)."""
        found: set[int] = set()
        stack = [root]
        while stack:
            node = stack.pop()
            if node in found:
                continue
            found.add(node)
            stack.extend(self.children.get(node, ()))
        return found

    def expand(self, roots: Iterable[int]) -> frozenset[int]:
        """Active departments under any of ``roots``; a deactivated one grants nothing."""
        found: set[int] = set()
        for root in roots:
            found |= self.subtree(root)
        return frozenset(found & self.active)


def department_subtree(session: Session, department_id: int) -> frozenset[int]:
    """Ids of ``department_id`` and all its sub-departments, active or not."""
    return frozenset(DepartmentTree(session).subtree(department_id))


def _scopes(tree: DepartmentTree, grants: Iterable[tuple[str, int]]) -> dict[Role, frozenset[int]]:
    roots: dict[Role, set[int]] = defaultdict(set)
    for role_value, department_id in grants:
        try:
            role = Role(role_value)
        except ValueError:  # a role this version does not know grants nothing
            continue
        roots[role].add(department_id)
    scopes = {role: tree.expand(departments) for role, departments in roots.items()}
    return {role: departments for role, departments in scopes.items() if departments}


def actor_for_user(session: Session, user: User) -> Actor:
    """The acting principal for a signed-in user; a deactivated user gets no roles.

    ``department_ids`` are the departments the user is a member of (not expanded);
    ``scopes`` maps each role to the departments where it applies (expanded).
    """
    grants: list[tuple[str, int]] = []
    if user.active:
        rows = session.execute(
            select(Membership.role, Membership.department_id).where(Membership.user_id == user.id)
        )
        grants = [(role, department_id) for role, department_id in rows]
    tree = DepartmentTree(session)
    return Actor(
        kind="user",
        id=user.id,
        name=user.username,
        display_name=user.display_name,
        scopes=_scopes(tree, grants),
        department_ids=frozenset(d for _r, d in grants if d in tree.active),
    )


def actor_for_system(session: Session, system: ConnectedSystem) -> Actor:
    """A connected system acts with its declared roles in its own department (and below)."""
    grants = [(role, system.department_id) for role in system.roles] if system.active else []
    tree = DepartmentTree(session)
    return Actor(
        kind="system",
        id=system.id,
        name=system.code,
        display_name=system.name,
        scopes=_scopes(tree, grants),
        department_ids=frozenset({system.department_id} & tree.active),
    )
