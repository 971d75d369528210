"""What the services app returns: plain frozen values, never live ORM rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from xietong.apps.services.models import Matter
from xietong.apps.services.vocab import MATTER_TYPE_ZH, MatterType


@dataclass(frozen=True)
class MatterView:
    id: int
    code: str
    name: str
    department_id: int
    department_code: str
    department_name: str
    matter_type: str
    matter_type_zh: str
    legal_basis: str
    materials: list[dict[str, Any]]
    form_schema: dict[str, Any]
    promised_days: int
    statutory_days: int
    fee: str
    process_key: str
    outputs: list[dict[str, Any]]
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime
    external_system_code: str | None = None

    @classmethod
    def of(cls, row: Matter, dept_code: str, dept_name: str) -> MatterView:
        return cls(
            id=row.id,
            code=row.code,
            name=row.name,
            department_id=row.department_id,
            department_code=dept_code,
            department_name=dept_name,
            matter_type=row.matter_type,
            matter_type_zh=MATTER_TYPE_ZH[MatterType(row.matter_type)],
            legal_basis=row.legal_basis,
            materials=list(row.materials or []),
            form_schema=dict(row.form_schema or {}),
            promised_days=row.promised_days,
            statutory_days=row.statutory_days,
            fee=f"{Decimal(row.fee):.2f}",
            process_key=row.process_key,
            outputs=list(row.outputs or []),
            active=row.active,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            external_system_code=row.external_system_code,
        )


@dataclass(frozen=True)
class BundleMatterView:
    matter_code: str
    matter_name: str
    department_id: int
    department_name: str
    depends_on: list[str]
    mappings: list[dict[str, str]]
    promised_days: int


@dataclass(frozen=True)
class BundleView:
    id: int
    code: str
    name: str
    description: str
    life_event: str
    audience: str
    lead_department_id: int
    lead_department_name: str
    region_code: str
    status: str
    matters: list[BundleMatterView]
    merged_form: dict[str, Any]
    merged_materials: list[dict[str, Any]]
    promised_days: int
    version: int
    published_at: datetime | None


@dataclass(frozen=True)
class SubCaseView:
    id: int
    matter_code: str
    matter_name: str
    department_id: int
    department_name: str
    status: str
    status_zh: str
    instance_id: int | None
    outputs: dict[str, Any]
    opinion: str | None
    refusal_kind: str | None
    reason: str | None
    supplement: dict[str, Any] | None
    started_at: datetime | None
    due_date: date | None
    ended_at: datetime | None
    depends_on: list[str]
    output_titles: dict[str, str]


@dataclass(frozen=True)
class MaterialView:
    code: str
    name: str
    sha256: str
    size: int
    media_type: str
    filename: str
    revision: int


@dataclass(frozen=True)
class DocumentView:
    id: int
    title: str
    sha256: str
    signature: str
    content: dict[str, Any]
    sub_case_id: int | None
    created_at: datetime


@dataclass(frozen=True)
class ApplicationView:
    id: int
    number: str
    bundle_code: str
    bundle_name: str
    applicant_user_id: int
    applicant_name: str
    status: str
    submitted_at: datetime
    due_date: date
    due_estimated: bool
    delivered_at: datetime | None
    sub_cases: list[SubCaseView]
    materials: list[MaterialView]
    documents: list[DocumentView]
    notice: dict[str, Any] | None
    ratings: list[dict[str, Any]]
    rectifications: list[dict[str, Any]]
    created: bool = False  # False when an idempotent resubmission found it
