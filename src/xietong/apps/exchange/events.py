"""Events the catalogue publishes (CloudEvents ``type`` = the decorator's name).

They carry codes, names and counts — never item values — so a subscriber learns that
the catalogue changed and reads the entry through the API with its own access rights.
Subscriptions (同步机制, a later part of the exchange) build on these.
"""

from __future__ import annotations

from dataclasses import dataclass

from xietong.kernel.events import Event, event_type


@dataclass(frozen=True)
class _ResourceEvent(Event):
    resource_id: int
    code: str
    provider_code: str
    version: int

    @property
    def subject(self) -> str:
        return f"exchange.resource:{self.code}"


@event_type("exchange.resource.created", "A catalogue entry was drafted")
@dataclass(frozen=True)
class ResourceCreated(_ResourceEvent):
    name: str = ""


@event_type("exchange.resource.updated", "A catalogue entry was edited")
@dataclass(frozen=True)
class ResourceUpdated(_ResourceEvent):
    name: str = ""
    status: str = ""


@event_type("exchange.resource.published", "A catalogue entry was published")
@dataclass(frozen=True)
class ResourcePublished(_ResourceEvent):
    name: str = ""
    share_type: str = ""


@event_type("exchange.resource.withdrawn", "A published catalogue entry was withdrawn")
@dataclass(frozen=True)
class ResourceWithdrawn(_ResourceEvent):
    reason: str = ""


@event_type("exchange.resource.deleted", "A draft catalogue entry was deleted")
@dataclass(frozen=True)
class ResourceDeleted(_ResourceEvent):
    pass


@event_type("exchange.catalogue.imported", "A catalogue workbook was imported")
@dataclass(frozen=True)
class CatalogueImported(Event):
    sha256: str
    created: int
    updated: int
    published: int

    @property
    def subject(self) -> str:
        return f"exchange.import:{self.sha256[:16]}"


# --- sharing: requests, grants, changes -------------------------------------------
# Each names the departments involved (``department_ids``): a department-scoped webhook
# subscription receives the events of its own requests and grants, nothing else.


@dataclass(frozen=True)
class _SharingEvent(Event):
    resource_code: str
    department_id: int  # the consuming department
    department_ids: tuple[int, ...]  # provider and consumer


@event_type("exchange.request.submitted", "A department requested a resource")
@dataclass(frozen=True)
class ShareRequested(_SharingEvent):
    request_id: int
    share_type: str

    @property
    def subject(self) -> str:
        return f"exchange.request:{self.request_id}"


@event_type("exchange.request.decided", "A share request was approved or refused")
@dataclass(frozen=True)
class ShareRequestDecided(_SharingEvent):
    request_id: int
    status: str

    @property
    def subject(self) -> str:
        return f"exchange.request:{self.request_id}"


@event_type("exchange.grant.created", "A department was granted a resource")
@dataclass(frozen=True)
class GrantCreated(_SharingEvent):
    grant_id: int
    items: tuple[str, ...]
    valid_until: str

    @property
    def subject(self) -> str:
        return f"exchange.grant:{self.grant_id}"


@event_type("exchange.grant.revoked", "A grant was revoked")
@dataclass(frozen=True)
class GrantRevoked(_SharingEvent):
    grant_id: int
    reason: str

    @property
    def subject(self) -> str:
        return f"exchange.grant:{self.grant_id}"


@event_type(
    "exchange.change.delivered",
    "A provider's change, cut to one subscriber's grant and masked",
)
@dataclass(frozen=True)
class ChangeDelivered(_SharingEvent):
    change_id: int
    subscription_id: int
    op: str
    key: str
    values: dict[str, object]  # the record by item name, cut to the grant and masked

    @property
    def subject(self) -> str:
        return f"exchange.change:{self.change_id}"
