"""Import and export the catalogue as the data office's xlsx workbook (资源 / 信息项).

All or nothing: every row is validated first and every problem is reported with its
sheet, row and column; only a workbook without errors is written, in one unit of work.
Each resource it creates, changes or publishes gets the same audit leaf and event as
the API command would (so a resource's history does not depend on how it was edited),
plus one leaf for the import with the file's SHA-256. Rows are matched by 代码:
re-importing an exported workbook changes nothing. The import adds and updates; it
never deletes or withdraws an entry the workbook leaves out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from xietong.apps.exchange import _store
from xietong.apps.exchange._import_plan import Op, RowError, make_plan
from xietong.apps.exchange.events import (
    CatalogueImported,
    ResourceCreated,
    ResourcePublished,
    ResourceUpdated,
)
from xietong.apps.exchange.queries import ResourceQuery, all_visible
from xietong.apps.exchange.service import MANAGE
from xietong.apps.exchange.views import ResourceView
from xietong.apps.exchange.vocab import (
    Classification,
    DataType,
    OpenType,
    ResourceFormat,
    ShareMethod,
    ShareType,
    Status,
    UpdateCycle,
    label,
)
from xietong.apps.exchange.workbook import (
    LIST_SEPARATOR,
    catalogue_template_xlsx,
    read_catalogue_workbook,
    write_catalogue_workbook,
)
from xietong.kernel import clock
from xietong.kernel.access import Actor, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict
from xietong.kernel.uow import UnitOfWork

__all__ = [
    "ImportReport",
    "RowError",
    "catalogue_template_xlsx",
    "export_catalogue_xlsx",
    "import_catalogue_xlsx",
]


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    published: int = 0
    codes: list[str] = field(default_factory=list)  # every code the workbook touched
    errors: list[RowError] = field(default_factory=list)
    sha256: str = ""
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors


def import_catalogue_xlsx(
    ctx: Context,
    actor: Actor,
    source: bytes | Path,
    *,
    publish: bool = False,
    dry_run: bool = False,
) -> ImportReport:
    """Validate the workbook and, without errors and unless ``dry_run``, write it.

    ``publish`` also publishes every entry of the workbook that is not published yet.
    A dry run goes through the same writes and rolls them back, so its counts (and the
    codes it would assign) are exactly what a real import would do.
    """
    authorize(actor, MANAGE)
    data = source.read_bytes() if isinstance(source, Path) else bytes(source)
    sha256 = hashlib.sha256(data).hexdigest()
    sheets = read_catalogue_workbook(data)
    report = ImportReport(sha256=sha256, dry_run=dry_run)
    try:
        with UnitOfWork(ctx, actor) as uow:
            # Planned inside the write transaction: what was checked is what is written,
            # and numbering blank codes sees every code committed before it.
            plan = make_plan(uow.session, actor, sheets, publish=publish)
            if plan.errors:
                report.errors = plan.errors
                return report
            for op in plan.ops:
                _apply(uow, op, publish, report)
            if dry_run or report.unchanged == len(plan.ops):
                # Leaving the block without commit rolls everything back; an import that
                # changes nothing records nothing (the demo loads its catalogue this way).
                return report
            counts = {
                "created": report.created,
                "updated": report.updated,
                "published": report.published,
                "unchanged": report.unchanged,
            }
            subject = f"exchange.import:{sha256[:16]}"
            uow.record("exchange.catalogue.import", subject, {"sha256": sha256, **counts})
            imported = CatalogueImported(sha256, report.created, report.updated, report.published)
            uow.emit(imported, "exchange")
            uow.commit()
    except IntegrityError as clash:
        raise Conflict(
            "导入时目录被同时修改，请重试",
            "The catalogue changed during the import; try again",
            code="import_conflict",
        ) from clash
    return report


def _apply(uow: UnitOfWork, op: Op, publish: bool, report: ImportReport) -> None:
    session, now = uow.session, clock.now()
    code = op.data.code or ""
    row = op.existing
    created = row is None
    if row is None:
        row = _store.new_row(code, op.provider.id, now)
        session.add(row)
    changed = _store.write(row, op.data, op.provider.id)
    if changed and not created:
        row.version += 1
        row.updated_at = now
    publishing = publish and row.status != Status.PUBLISHED
    session.flush()
    subject = f"exchange.resource:{code}"
    if created or changed:
        view = ResourceView.of(row, op.provider)
        action = "exchange.resource.create" if created else "exchange.resource.update"
        uow.record(action, subject, _store.audit_payload(view, import_row=op.row))
        if created:
            event: Any = ResourceCreated(row.id, code, op.provider.code, row.version, row.name)
        else:
            event = ResourceUpdated(
                row.id, code, op.provider.code, row.version, row.name, row.status
            )
        uow.emit(event, "exchange")
    if publishing:
        _store.mark_published(row, now)
        session.flush()
        view = ResourceView.of(row, op.provider)
        uow.record("exchange.resource.publish", subject, _store.audit_payload(view))
        uow.emit(
            ResourcePublished(
                row.id, code, op.provider.code, row.version, row.name, row.share_type
            ),
            "exchange",
        )
    report.codes.append(code)
    report.created += created
    report.updated += changed and not created
    report.published += publishing
    report.unchanged += not (created or changed or publishing)


def _level_cell(view: ResourceView, index: int) -> str:
    if index >= len(view.category):
        return ""
    level = view.category[index]
    return f"{level.code} {level.name}"


def _resource_row(view: ResourceView) -> list[Any]:
    fmt = label(ResourceFormat(view.format))
    return [
        *(_level_cell(view, index) for index in range(4)),
        view.name,
        view.code,
        view.provider_code,
        view.summary,
        f"{fmt}/{view.format_detail}" if view.format_detail else fmt,
        label(ShareType(view.share_type)),
        view.share_conditions or "",
        view.not_shared_basis or "",
        LIST_SEPARATOR.join(label(ShareMethod(method)) for method in view.share_methods),
        label(OpenType(view.open_type)),
        view.open_conditions or "",
        label(UpdateCycle(view.update_cycle)),
        view.publish_date,
        LIST_SEPARATOR.join(view.related_codes),
    ]


def export_catalogue_xlsx(ctx: Context, actor: Actor, query: ResourceQuery | None = None) -> bytes:
    """The entries ``actor`` may see (filtered by ``query``) as a workbook that imports
    back unchanged. Catalogue metadata only — no personal data — so it is not audited."""
    views = all_visible(ctx, actor, query or ResourceQuery())
    items = [
        [
            view.code,
            item.name,
            label(DataType(item.data_type)),
            label(Classification(item.classification)),
            item.description,
        ]
        for view in views
        for item in view.items
    ]
    return write_catalogue_workbook([_resource_row(view) for view in views], items)
