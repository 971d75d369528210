"""Events the hotline publishes (CloudEvents ``type`` = the decorator's name).

They carry the ticket number, status and departments — never the citizen's contact —
so a subscriber (a department's own system, the cockpit) reads details through the API
with its own access rights.
"""

from __future__ import annotations

from dataclasses import dataclass

from xietong.kernel.events import Event, event_type


@dataclass(frozen=True)
class _TicketEvent(Event):
    number: str
    status: str

    @property
    def subject(self) -> str:
        return f"hotline.ticket:{self.number}"


@event_type("hotline.ticket.received", "A ticket was taken in")
@dataclass(frozen=True)
class TicketReceived(_TicketEvent):
    channel: str = ""
    ticket_type: str = ""
    district_code: str | None = None


@event_type("hotline.ticket.dispatched", "A ticket was dispatched to a department")
@dataclass(frozen=True)
class TicketDispatched(_TicketEvent):
    department_code: str = ""
    category: str = ""
    mode: str = ""
    confidence: float | None = None
    model_version: str | None = None


@event_type("hotline.ticket.accepted", "A department accepted a ticket")
@dataclass(frozen=True)
class TicketAccepted(_TicketEvent):
    department_code: str = ""


@event_type("hotline.ticket.sent_back", "A department sent a wrongly dispatched ticket back")
@dataclass(frozen=True)
class TicketSentBack(_TicketEvent):
    department_code: str = ""
    reason: str = ""


@event_type("hotline.ticket.replied", "A department replied to the citizen")
@dataclass(frozen=True)
class TicketReplied(_TicketEvent):
    department_code: str = ""


@event_type("hotline.ticket.rated", "The citizen rated the reply")
@dataclass(frozen=True)
class TicketRated(_TicketEvent):
    rating: str = ""


@event_type("hotline.ticket.reopened", "An unsatisfied rating reopened the ticket (重办)")
@dataclass(frozen=True)
class TicketReopened(_TicketEvent):
    reopen_count: int = 0


@event_type("hotline.ticket.escalated", "Unsatisfied after 重办: handed to supervision")
@dataclass(frozen=True)
class TicketEscalated(_TicketEvent):
    department_code: str = ""


@event_type("hotline.ticket.merged", "A duplicate ticket was merged into another")
@dataclass(frozen=True)
class TicketMerged(_TicketEvent):
    into: str = ""


@event_type("hotline.ticket.sla_warning", "A ticket's reply deadline is near")
@dataclass(frozen=True)
class SlaWarning(_TicketEvent):
    department_code: str = ""
    due_at: str = ""


@event_type("hotline.ticket.sla_breached", "A ticket's reply deadline passed")
@dataclass(frozen=True)
class SlaBreached(_TicketEvent):
    department_code: str = ""
    due_at: str = ""


@event_type("hotline.extension.requested", "A department asked for more time (延期)")
@dataclass(frozen=True)
class ExtensionRequested(_TicketEvent):
    extension_id: int = 0
    hours: int = 0


@event_type("hotline.extension.decided", "The hotline centre decided on a 延期 request")
@dataclass(frozen=True)
class ExtensionDecided(_TicketEvent):
    extension_id: int = 0
    approved: bool = False


@event_type("hotline.classifier.unavailable", "The category model could not be used")
@dataclass(frozen=True)
class ClassifierUnavailable(Event):
    number: str
    reason: str

    @property
    def subject(self) -> str:
        return f"hotline.ticket:{self.number}"


@event_type("hotline.route.changed", "The routing table changed")
@dataclass(frozen=True)
class RouteChanged(Event):
    category: str
    district_code: str
    department_code: str | None

    @property
    def subject(self) -> str:
        return f"hotline.route:{self.category}/{self.district_code or 'default'}"
