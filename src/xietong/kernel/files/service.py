"""Uploads: checked by content, stored once per SHA-256, recorded with their uploader.

``stage`` adds an upload to a unit of work the caller already holds, so that an app
can take a file and the record that refers to it in one transaction (a progress report
with its attachments: both or neither). ``upload`` is the same in a transaction of its
own, for the API's upload endpoint; the returned id is then attached by a later command,
which checks with ``owned`` that the actor uploaded it — an id alone must not let one
user attach, and so read, another's file.

Only the uploader reads a file through the kernel. Anyone else reads it through the
app it is attached to, which checks access to its own record first (``read``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.kernel import clock
from xietong.kernel.access import Actor, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput, NotFound
from xietong.kernel.files.content import DOCUMENTS, check_file, clean_filename
from xietong.kernel.files.models import StoredFile
from xietong.kernel.files.storage import digest, read_blob, store_blob
from xietong.kernel.uow import UnitOfWork

UPLOAD = "files.upload"
READ = "files.read"
MAX_PER_REQUEST = 20


@dataclass(frozen=True)
class FileView:
    id: int
    sha256: str
    size: int
    media_type: str
    filename: str
    uploaded_by: str
    created_at: datetime

    @classmethod
    def of(cls, row: StoredFile) -> FileView:
        return cls(
            row.id,
            row.sha256,
            row.size,
            row.media_type,
            row.filename,
            row.uploaded_by,
            row.created_at,
        )

    def reference(self) -> dict[str, object]:
        """How an app's record refers to the file (kept in its JSON column)."""
        return {
            "file_id": self.id,
            "name": self.filename,
            "sha256": self.sha256,
            "size": self.size,
            "media_type": self.media_type,
        }


@dataclass(frozen=True)
class Incoming:
    """A file as received, before any check."""

    filename: str
    data: bytes


def check_all(items: Sequence[Incoming], *, allowed: Iterable[str] = DOCUMENTS) -> list[str]:
    """Check every file before anything is written; their media types in order."""
    if len(items) > MAX_PER_REQUEST:
        raise InvalidInput(
            f"一次最多上传 {MAX_PER_REQUEST} 个文件",
            f"At most {MAX_PER_REQUEST} files at once",
            code="too_many_files",
        )
    allowed = tuple(allowed)
    return [check_file(clean_filename(i.filename), i.data, allowed=allowed) for i in items]


def stage(
    ctx: Context, uow: UnitOfWork, item: Incoming, *, allowed: Iterable[str] = DOCUMENTS
) -> FileView:
    """Check and keep one file inside ``uow``; its row commits with the caller's change."""
    filename = clean_filename(item.filename)
    media_type = check_file(filename, item.data, allowed=allowed)
    sha256 = store_blob(ctx, item.data)
    session = uow.session
    label = uow.actor.label
    row = session.scalar(
        select(StoredFile).where(
            StoredFile.uploaded_by == label,
            StoredFile.sha256 == sha256,
            StoredFile.filename == filename,
        )
    )
    if row is None:
        row = StoredFile(
            sha256=sha256,
            size=len(item.data),
            media_type=media_type,
            filename=filename,
            uploaded_by=label,
            created_at=clock.now(),
        )
        session.add(row)
        session.flush()
    # recorded even when the same file was uploaded before: the upload happened
    uow.record(
        "files.upload",
        f"file:{row.id}",
        {"sha256": sha256, "size": row.size, "media_type": media_type, "name": filename},
    )
    return FileView.of(row)


def upload(
    ctx: Context,
    actor: Actor,
    filename: str,
    data: bytes,
    *,
    allowed: Iterable[str] = DOCUMENTS,
) -> FileView:
    """Keep one file in a transaction of its own (the API's upload endpoint)."""
    authorize(actor, UPLOAD)
    allowed = tuple(allowed)
    check_file(clean_filename(filename), data, allowed=allowed)  # before any write
    with UnitOfWork(ctx, actor) as uow:
        view = stage(ctx, uow, Incoming(filename, data), allowed=allowed)
        uow.commit()
    return view


def owned(session: Session, actor: Actor, file_ids: Sequence[int]) -> list[FileView]:
    """The files ``actor`` uploaded, in the order asked; an unknown id or another's file
    is refused the same way, so ids cannot be probed."""
    wanted = list(dict.fromkeys(file_ids))
    # FOR SHARE: the retention job cannot delete a row between this check and the
    # commit of the record citing it (see ``retention``)
    found = select(StoredFile).where(StoredFile.id.in_(wanted)).with_for_update(read=True)
    rows = {row.id: row for row in session.scalars(found) if row.uploaded_by == actor.label}
    missing = [i for i in wanted if i not in rows]
    if missing:
        raise InvalidInput(
            f"文件不存在或不是本人上传：{', '.join(map(str, missing))}",
            f"No such file uploaded by you: {', '.join(map(str, missing))}",
            code="file_not_uploaded",
            details={"file_ids": missing},
        )
    return [FileView.of(rows[i]) for i in wanted]


def _view(ctx: Context, file_id: int) -> FileView:
    with ctx.db.read() as session:
        row = session.get(StoredFile, file_id)
        if row is None:
            raise NotFound.of("文件", "File", file_id)
        return FileView.of(row)


def read(ctx: Context, file_id: int) -> tuple[FileView, bytes]:
    """A file's metadata and bytes, for an app that has checked access itself."""
    view = _view(ctx, file_id)
    data = read_blob(ctx, view.sha256)
    if digest(data) != view.sha256:
        # a blob changed on disk: serve nothing rather than bytes nobody uploaded
        raise NotFound.of("文件", "File", file_id)
    return view, data


def describe_own(ctx: Context, actor: Actor, file_id: int) -> FileView:
    """A file's metadata for its uploader, from its row alone: listing a file must not
    cost reading and hashing its bytes (up to ``MAX_BYTES``) on every request."""
    authorize(actor, READ)
    view = _view(ctx, file_id)
    if view.uploaded_by != actor.label:
        raise NotFound.of("文件", "File", file_id)
    return view


def read_own(ctx: Context, actor: Actor, file_id: int) -> tuple[FileView, bytes]:
    """A file for its uploader; anyone else is told it does not exist."""
    authorize(actor, READ)
    view, data = read(ctx, file_id)
    if view.uploaded_by != actor.label:
        raise NotFound.of("文件", "File", file_id)
    return view, data
