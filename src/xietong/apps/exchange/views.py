"""What the catalogue services return: plain frozen values, never live ORM rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from xietong.apps.exchange.models import Item, Resource
from xietong.apps.exchange.rules import CategoryLevel, ItemInput, ResourceInput
from xietong.kernel.org.models import Department


@dataclass(frozen=True)
class ItemView:
    id: int
    name: str
    data_type: str
    classification: str
    description: str

    @classmethod
    def of(cls, row: Item) -> ItemView:
        return cls(row.id, row.name, row.data_type, row.classification, row.description)


@dataclass(frozen=True)
class ResourceView:
    id: int
    code: str
    name: str
    category: tuple[CategoryLevel, ...]
    category_code: str
    provider_id: int
    provider_code: str  # 提供方代码
    provider_name: str  # 提供方
    summary: str
    format: str
    format_detail: str | None
    items: tuple[ItemView, ...]
    share_type: str
    share_conditions: str | None
    not_shared_basis: str | None
    share_methods: tuple[str, ...]
    open_type: str
    open_conditions: str | None
    update_cycle: str
    publish_date: date | None
    related_codes: tuple[str, ...]
    status: str
    version: int
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    withdrawn_at: datetime | None

    @property
    def category_path(self) -> str:
        """``基础信息资源 / 人口基础信息 / 户籍人口`` — the classification for people."""
        return " / ".join(level.name for level in self.category)

    @classmethod
    def of(cls, row: Resource, provider: Department) -> ResourceView:
        return cls(
            id=row.id,
            code=row.code,
            name=row.name,
            category=levels_of(row),
            category_code=row.category_code,
            provider_id=row.provider_id,
            provider_code=provider.code,
            provider_name=provider.name,
            summary=row.summary,
            format=row.format,
            format_detail=row.format_detail,
            items=tuple(ItemView.of(item) for item in row.items),
            share_type=row.share_type,
            share_conditions=row.share_conditions,
            not_shared_basis=row.not_shared_basis,
            share_methods=tuple(row.share_methods or ()),
            open_type=row.open_type,
            open_conditions=row.open_conditions,
            update_cycle=row.update_cycle,
            publish_date=row.publish_date,
            related_codes=tuple(row.related_codes or ()),
            status=row.status,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            published_at=row.published_at,
            withdrawn_at=row.withdrawn_at,
        )

    def to_input(self) -> ResourceInput:
        """The entry as an input again: what an edit starts from, what export writes."""
        return ResourceInput(
            name=self.name,
            category=self.category,
            provider_code=self.provider_code,
            summary=self.summary,
            format=self.format,
            share_type=self.share_type,
            update_cycle=self.update_cycle,
            items=tuple(
                ItemInput(i.name, i.data_type, i.classification, i.description) for i in self.items
            ),
            code=self.code,
            format_detail=self.format_detail,
            share_conditions=self.share_conditions,
            not_shared_basis=self.not_shared_basis,
            share_methods=self.share_methods,
            open_type=self.open_type,
            open_conditions=self.open_conditions,
            publish_date=self.publish_date,
            related_codes=self.related_codes,
        )


@dataclass(frozen=True)
class ResourcePage:
    resources: tuple[ResourceView, ...]
    total: int
    limit: int
    offset: int


def levels_of(row: Resource) -> tuple[CategoryLevel, ...]:
    levels = [
        CategoryLevel(row.class_code, row.class_name),
        CategoryLevel(row.subclass_code, row.subclass_name),
        CategoryLevel(row.group_code, row.group_name),
    ]
    if row.detail_code:
        levels.append(CategoryLevel(row.detail_code, row.detail_name or ""))
    return tuple(levels)
