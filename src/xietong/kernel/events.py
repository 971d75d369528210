"""Typed, registered domain events and their CloudEvents 1.0 form.

Every event type is a frozen dataclass decorated with ``@event_type("org.user.created")``
before use; emitting an unregistered class is an error, so the catalogue of events an
integrator can subscribe to is exactly the registry (``registered_types()``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from xietong.kernel.canonical import rfc3339

SPEC_VERSION = "1.0"
SOURCE_PREFIX = "/xietong"


@dataclasses.dataclass(frozen=True)
class Event:
    """Base of all domain events. Subclasses add typed fields; ``subject`` names the thing."""

    type: ClassVar[str] = ""
    description: ClassVar[str] = ""

    @property
    def subject(self) -> str:
        return ""

    def data(self) -> dict[str, Any]:
        # field by field rather than dataclasses.asdict, which deep-copies every value
        # first; this runs for every event of every command
        return _jsonable(self)


_REGISTRY: dict[str, type[Event]] = {}

E = TypeVar("E", bound=type[Event])


def event_type(name: str, description: str = "") -> Callable[[E], E]:
    """Register an event dataclass under its CloudEvents ``type``."""

    def register(cls: E) -> E:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass")
        existing = _REGISTRY.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"event type {name!r} already registered by {existing!r}")
        cls.type = name
        cls.description = description or (cls.__doc__ or "").strip().splitlines()[0]
        _REGISTRY[name] = cls
        return cls

    return register


def registered_types() -> dict[str, type[Event]]:
    return dict(_REGISTRY)


def ensure_registered(event: Event) -> None:
    if _REGISTRY.get(type(event).type) is not type(event):
        raise TypeError(f"event class {type(event).__name__} is not registered with @event_type")


def to_cloudevent(
    event: Event, *, event_id: str, time: datetime, module: str, time_text: str | None = None
) -> dict[str, Any]:
    """``time_text``: ``rfc3339(time)`` when the caller has it already (a command's
    events all share one moment, and formatting it cost as much as the rest)."""
    ensure_registered(event)
    cloud: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": event_id,
        "source": f"{SOURCE_PREFIX}/{module}",
        "type": event.type,
        "time": rfc3339(time) if time_text is None else time_text,
        "datacontenttype": "application/json",
        "data": event.data(),
    }
    if event.subject:
        cloud["subject"] = event.subject
    return cloud


_FIELDS: dict[type[Any], tuple[str, ...]] = {}


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _jsonable(value: Any) -> Any:
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, datetime):
        return rfc3339(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _jsonable(getattr(value, name)) for name in _field_names(type(value))}
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(item) for item in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
