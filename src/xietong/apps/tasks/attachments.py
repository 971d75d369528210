"""Files attached to progress reports (附件) and to 销号 requests (佐证材料).

The files themselves are the kernel's (``xietong.kernel.files``): checked by content and
stored once per digest. A report or closure keeps references, ``{file_id, name, sha256,
size, media_type}``, and links to documents kept elsewhere, ``{name, url}``. Files sent
with the command are staged in its unit of work (the record and its files commit
together); files cited by id must have been uploaded by the actor.

A file is served to whoever may see the task, and only when the task's own records cite
it: a file id alone opens nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.apps.tasks import rights
from xietong.apps.tasks.models import Closure, ProgressReport
from xietong.apps.tasks.rules import Attachments
from xietong.kernel import files
from xietong.kernel.access import Actor, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import NotFound
from xietong.kernel.uow import UnitOfWork


def precheck(uploads: Sequence[files.Incoming]) -> None:
    """Every incoming file's checks, before any unit of work opens."""
    files.check_all(uploads, allowed=files.DOCUMENTS)


def collect(
    ctx: Context,
    uow: UnitOfWork,
    actor: Actor,
    checked: Attachments,
    uploads: Sequence[files.Incoming],
) -> list[dict[str, Any]]:
    """The references to keep on the record: cited files, new uploads, then links."""
    cited = files.owned(uow.session, actor, checked.file_ids) if checked.file_ids else []
    staged = [files.stage(ctx, uow, item, allowed=files.DOCUMENTS) for item in uploads]
    seen: set[int] = set()
    found: list[dict[str, Any]] = []
    for view in [*cited, *staged]:
        if view.id not in seen:
            seen.add(view.id)
            found.append(view.reference())
    return found + [dict(link) for link in checked.links]


def file_count(references: list[dict[str, Any]]) -> int:
    return sum(1 for ref in references if ref.get("file_id") is not None)


def read(ctx: Context, actor: Actor, task_id: int, file_id: int) -> tuple[files.FileView, bytes]:
    """A file attached to the task's reports or closures, for those who may see it."""
    authorize(actor, rights.READ)
    with ctx.db.read() as session:
        task = rights.load_visible(session, actor, task_id)
        lists = [
            *session.scalars(
                select(ProgressReport.attachments).where(ProgressReport.task_id == task.id)
            ),
            *session.scalars(select(Closure.evidence).where(Closure.task_id == task.id)),
        ]
    if not any(ref.get("file_id") == file_id for refs in lists for ref in refs or []):
        raise NotFound.of("附件", "Attachment", file_id)
    return files.read(ctx, file_id)


def cited_files(session: Session, file_ids: Sequence[int]) -> set[int]:
    """Which of these uploads a progress report or a 销号 request cites (the files
    retention job keeps those). The references live in JSON lists, so every list is read:
    a daily job's cost, never a request's."""
    wanted = set(file_ids)
    if not wanted:
        return set()
    found: set[int] = set()
    for column in (ProgressReport.attachments, Closure.evidence):
        for refs in session.execute(select(column).execution_options(yield_per=1000)).scalars():
            found.update(ref["file_id"] for ref in refs or [] if ref.get("file_id") in wanted)
    return found
