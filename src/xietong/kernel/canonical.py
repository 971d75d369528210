"""Canonical JSON and timestamps: the exact bytes that get hashed and signed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def canonical_json(value: Any) -> bytes:
    """Sorted keys, UTF-8, no insignificant whitespace — the same bytes on every machine."""
    return json.dumps(
        value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def rfc3339(moment: datetime) -> str:
    """UTC with microseconds and a ``Z``: sortable as text, exact to the stored value."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
