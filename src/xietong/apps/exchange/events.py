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
