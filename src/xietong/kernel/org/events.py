"""Events the org module publishes (CloudEvents ``type`` = the decorator's name).

They carry ids, codes and masked values only — never a plaintext 身份证号 or mobile
number — because events leave the process (bus, webhooks) and outlive any access check.
"""

from __future__ import annotations

from dataclasses import dataclass

from xietong.kernel.events import Event, event_type


@event_type("org.department.created", "A department was created")
@dataclass(frozen=True)
class DepartmentCreated(Event):
    department_id: int
    code: str
    name: str
    region_code: str
    parent_id: int | None

    @property
    def subject(self) -> str:
        return f"department:{self.department_id}"


@event_type("org.user.created", "A user account was created")
@dataclass(frozen=True)
class UserCreated(Event):
    user_id: int
    username: str
    display_name: str

    @property
    def subject(self) -> str:
        return f"user:{self.user_id}"


@event_type("org.user.deactivated", "A user account was deactivated")
@dataclass(frozen=True)
class UserDeactivated(Event):
    user_id: int
    username: str

    @property
    def subject(self) -> str:
        return f"user:{self.user_id}"


@event_type("org.membership.granted", "A user was given a role in a department")
@dataclass(frozen=True)
class MembershipGranted(Event):
    user_id: int
    department_id: int
    role: str

    @property
    def subject(self) -> str:
        return f"user:{self.user_id}"


@event_type("org.membership.revoked", "A user's role in a department was removed")
@dataclass(frozen=True)
class MembershipRevoked(Event):
    user_id: int
    department_id: int
    role: str

    @property
    def subject(self) -> str:
        return f"user:{self.user_id}"


@event_type("org.delegation.added", "A user's work is delegated to another user")
@dataclass(frozen=True)
class DelegationAdded(Event):
    delegation_id: int
    from_user_id: int
    to_user_id: int
    starts_at: str
    ends_at: str
    process_key: str | None

    @property
    def subject(self) -> str:
        return f"delegation:{self.delegation_id}"


@event_type("org.delegation.revoked", "A delegation was revoked")
@dataclass(frozen=True)
class DelegationRevoked(Event):
    delegation_id: int
    from_user_id: int
    to_user_id: int

    @property
    def subject(self) -> str:
        return f"delegation:{self.delegation_id}"


@event_type("org.person.registered", "A natural person was registered")
@dataclass(frozen=True)
class PersonRegistered(Event):
    person_id: int
    id_number_masked: str

    @property
    def subject(self) -> str:
        return f"person:{self.person_id}"


@event_type("org.organization.registered", "A legal person was registered")
@dataclass(frozen=True)
class OrganizationRegistered(Event):
    organization_id: int
    uscc: str
    name: str

    @property
    def subject(self) -> str:
        return f"organization:{self.organization_id}"


@event_type("org.system.changed", "A connected system was registered, re-keyed or deactivated")
@dataclass(frozen=True)
class SystemChanged(Event):
    system_id: int
    code: str
    department_id: int
    change: str  # registered | key_rotated | deactivated

    @property
    def subject(self) -> str:
        return f"connected_system:{self.system_id}"


@event_type("org.imported", "An organisation workbook was imported")
@dataclass(frozen=True)
class OrgImported(Event):
    sha256: str
    created: dict[str, int]
    updated: dict[str, int]

    @property
    def subject(self) -> str:
        return f"import:{self.sha256[:16]}"
