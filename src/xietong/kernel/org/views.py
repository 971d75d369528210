"""What the org services return: plain frozen values, never live ORM rows.

Callers (routes, other kernel modules, apps through their APIs) get data they can render
or serialise without a session, and without the columns that must not travel: password
hashes, key digests and ciphertexts stay in the models.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from xietong.kernel.access import ROLE_NAMES, Role
from xietong.kernel.org.identity import mask_name
from xietong.kernel.org.models import (
    ConnectedSystem,
    Delegation,
    Department,
    Organization,
    Person,
    Region,
)


@dataclass(frozen=True)
class RegionView:
    code: str
    name: str
    level: str
    parent_code: str | None

    @classmethod
    def of(cls, row: Region) -> RegionView:
        return cls(row.code, row.name, row.level, row.parent_code)


@dataclass(frozen=True)
class DepartmentView:
    id: int
    code: str
    name: str
    short_name: str | None
    region_code: str
    parent_id: int | None
    active: bool

    @classmethod
    def of(cls, row: Department) -> DepartmentView:
        return cls(
            row.id, row.code, row.name, row.short_name, row.region_code, row.parent_id, row.active
        )


@dataclass(frozen=True)
class MembershipView:
    department_id: int
    department_code: str
    department_name: str
    role: str

    @property
    def role_name_zh(self) -> str:
        try:
            return ROLE_NAMES[Role(self.role)][0]
        except ValueError:
            return self.role


@dataclass(frozen=True)
class UserView:
    id: int
    username: str
    display_name: str
    active: bool
    mobile_masked: str | None
    created_at: datetime
    memberships: tuple[MembershipView, ...] = ()


@dataclass(frozen=True)
class DelegationView:
    id: int
    from_user_id: int
    to_user_id: int
    starts_at: datetime
    ends_at: datetime
    process_key: str | None
    reason: str
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: Delegation) -> DelegationView:
        return cls(
            row.id,
            row.from_user_id,
            row.to_user_id,
            row.starts_at,
            row.ends_at,
            row.process_key,
            row.reason,
            row.revoked_at,
        )


@dataclass(frozen=True)
class Delegate:
    """A user currently acting for another, and the delegation that allows it."""

    user_id: int
    username: str
    display_name: str
    delegation_id: int
    ends_at: datetime


@dataclass(frozen=True)
class PersonView:
    """A natural person as staff see them by default: numbers masked."""

    id: int
    name: str
    id_number_masked: str
    mobile_masked: str | None
    created_at: datetime

    @property
    def name_masked(self) -> str:
        return mask_name(self.name)

    @classmethod
    def of(cls, row: Person) -> PersonView:
        return cls(row.id, row.name, row.id_number_masked, row.mobile_masked, row.created_at)


@dataclass(frozen=True)
class OrganizationView:
    id: int
    name: str
    uscc: str
    legal_representative: str | None
    region_code: str | None

    @classmethod
    def of(cls, row: Organization) -> OrganizationView:
        return cls(row.id, row.name, row.uscc, row.legal_representative, row.region_code)


@dataclass(frozen=True)
class SystemView:
    id: int
    code: str
    name: str
    department_id: int
    api_key_prefix: str
    roles: tuple[str, ...]
    active: bool
    last_used_at: datetime | None

    @classmethod
    def of(cls, row: ConnectedSystem) -> SystemView:
        return cls(
            row.id,
            row.code,
            row.name,
            row.department_id,
            row.api_key_prefix,
            tuple(row.roles),
            row.active,
            row.last_used_at,
        )


@dataclass(frozen=True)
class IssuedKey:
    """A connected system with its plaintext API key — shown once, never stored."""

    system: SystemView
    api_key: str

    def __repr__(self) -> str:  # keep the key out of logs and tracebacks
        return f"IssuedKey(system={self.system!r}, api_key='{self.system.api_key_prefix}…')"
