"""Writing a checked ``ResourceInput`` into rows, shared by the service and the importer.

``write`` changes only what differs and says whether anything did, so re-importing an
unchanged workbook (or saving an unchanged form) bumps no version and emits no event.
Items are matched by name: an edit keeps an item's id, which later grants refer to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from xietong.apps.exchange.models import Item, Resource
from xietong.apps.exchange.rules import CODE, ResourceInput, category_code, make_code
from xietong.apps.exchange.views import ResourceView
from xietong.apps.exchange.vocab import Status
from xietong.kernel import clock
from xietong.kernel.canonical import canonical_json
from xietong.kernel.errors import InvalidInput

MAX_SEQUENCE = 999_999


def _columns(data: ResourceInput) -> dict[str, Any]:
    levels = list(data.category)
    detail = levels[3] if len(levels) > 3 else None
    return {
        "name": data.name,
        "class_code": levels[0].code,
        "class_name": levels[0].name,
        "subclass_code": levels[1].code,
        "subclass_name": levels[1].name,
        "group_code": levels[2].code,
        "group_name": levels[2].name,
        "detail_code": detail.code if detail else None,
        "detail_name": detail.name if detail else None,
        "category_code": category_code(data.category),
        "summary": data.summary,
        "format": data.format,
        "format_detail": data.format_detail,
        "share_type": data.share_type,
        "share_conditions": data.share_conditions,
        "not_shared_basis": data.not_shared_basis,
        "share_methods": list(data.share_methods),
        "open_type": data.open_type,
        "open_conditions": data.open_conditions,
        "update_cycle": data.update_cycle,
        "related_codes": list(data.related_codes),
    }


def new_row(code: str, provider_id: int, now: datetime) -> Resource:
    return Resource(
        code=code,
        provider_id=provider_id,
        status=Status.DRAFT.value,
        version=1,
        created_at=now,
        updated_at=now,
    )


def write(row: Resource, data: ResourceInput, provider_id: int) -> bool:
    """Apply a checked input to ``row``; True when anything changed.

    A blank ``publish_date`` keeps the stored one: the date is set when the entry is
    first published, and an edit form or a sheet that leaves it out must not erase it.
    """
    changed = False
    for key, value in _columns(data).items():
        if getattr(row, key) != value:
            setattr(row, key, value)
            changed = True
    if row.provider_id != provider_id:
        row.provider_id = provider_id
        changed = True
    if data.publish_date is not None and row.publish_date != data.publish_date:
        row.publish_date = data.publish_date
        changed = True
    wanted = [(i.name, i.data_type, i.classification, i.description) for i in data.items]
    current = [(i.name, i.data_type, i.classification, i.description) for i in row.items]
    if wanted != current:
        by_name = {item.name: item for item in row.items}
        kept: list[Item] = []
        for position, (name, data_type, level, description) in enumerate(wanted):
            item = by_name.pop(name, None) or Item(name=name)
            item.position, item.data_type = position, data_type
            item.classification, item.description = level, description
            kept.append(item)
        row.items = kept  # the items left out are orphans, deleted on flush
        changed = True
    return changed


def mark_published(row: Resource, now: datetime) -> None:
    """The state change of publishing; 发布日期 defaults to today (China time)."""
    row.status = Status.PUBLISHED.value
    row.published_at, row.withdrawn_at, row.updated_at = now, None, now
    row.publish_date = row.publish_date or clock.local_now().date()
    row.version += 1


def next_code(session: Session, category: str, reserved: Iterable[str] = ()) -> str:
    """The next free code in ``category``: one past the highest stored or ``reserved``."""
    prefix = f"{category}/"
    # Sequences have a fixed width, so the greatest code is the greatest sequence.
    highest = session.scalar(
        select(func.max(Resource.code)).where(Resource.code.like(f"{prefix}%"))
    )
    found = [
        int(match["sequence"])
        for code in (highest, *reserved)
        if code and (match := CODE.fullmatch(code)) and match["category"] == category
    ]
    sequence = max(found, default=0) + 1
    if sequence > MAX_SEQUENCE:
        raise InvalidInput(
            f"分类 {category} 的顺序码已用完",
            f"No sequence numbers left in category {category}",
            code="category_full",
        )
    return make_code(category, sequence)


def entry_digest(view: ResourceView) -> str:
    """SHA-256 of the entry's content: the audit leaf pins exactly what was catalogued."""
    content = asdict(view.to_input())
    content["publish_date"] = view.publish_date.isoformat() if view.publish_date else None
    return hashlib.sha256(canonical_json(content)).hexdigest()


def audit_payload(view: ResourceView, **extra: Any) -> dict[str, Any]:
    return {
        "code": view.code,
        "name": view.name,
        "provider_code": view.provider_code,
        "status": view.status,
        "version": view.version,
        "sha256": entry_digest(view),
        **extra,
    }
