"""Events of 一件事一次办 (CloudEvents ``type`` = the decorator's name).

They carry codes, numbers and statuses — never form values or personal data.
"""

from __future__ import annotations

from dataclasses import dataclass

from xietong.kernel.events import Event, event_type

MODULE = "services"


@event_type("services.matter.changed", "A matter was created or edited")
@dataclass(frozen=True)
class MatterChanged(Event):
    code: str
    version: int
    created: bool

    @property
    def subject(self) -> str:
        return f"services.matter:{self.code}"


@event_type("services.bundle.published", "A bundle (一件事) was published")
@dataclass(frozen=True)
class BundlePublished(Event):
    code: str
    version: int

    @property
    def subject(self) -> str:
        return f"services.bundle:{self.code}"


@dataclass(frozen=True)
class _ApplicationEvent(Event):
    number: str

    @property
    def subject(self) -> str:
        return f"services.application:{self.number}"


@event_type("services.application.submitted", "An application was submitted")
@dataclass(frozen=True)
class ApplicationSubmitted(_ApplicationEvent):
    bundle_code: str = ""


@event_type("services.sub_case.changed", "A sub-case changed status")
@dataclass(frozen=True)
class SubCaseChanged(_ApplicationEvent):
    matter_code: str = ""
    department_id: int = 0
    status: str = ""


@event_type("services.application.delivered", "An application's results were delivered")
@dataclass(frozen=True)
class ApplicationDelivered(_ApplicationEvent):
    concluded: int = 0
    refused: int = 0


@event_type("services.rating.given", "An applicant rated a bundle or a department")
@dataclass(frozen=True)
class RatingGiven(_ApplicationEvent):
    target: str = ""
    level: int = 0


@event_type("services.rectification.changed", "A rectification was opened or completed")
@dataclass(frozen=True)
class RectificationChanged(_ApplicationEvent):
    rectification_id: int = 0
    department_id: int = 0
    status: str = ""
