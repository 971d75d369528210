"""Retention: uploads that no record cites are deleted once they are old enough.

People upload files and then never send the command that would cite them: a report
abandoned half-way, a material for an application never submitted. Those bytes are
often personal documents (ID cards, certificates); keeping them forever serves nobody
and breaks data minimisation. The worker job ``files.retention`` therefore deletes

- ``file_object`` rows older than ``files_retention_days`` that no app's record cites,
  and then
- blobs older than that which no ``file_object`` row and no app's record cites.

Only apps know where they keep references (JSON columns, their own tables), so each
answers the ``file_references`` hook for a batch of candidates. Without the hooks (a
context assembled with no plugins) nothing is deleted: an unknown reference must count
as a reference.

Races with commands running at the same time:

- a command citing an old upload reads its row ``FOR SHARE`` (``files.owned``), and the
  purge locks its batch ``FOR UPDATE`` before asking the apps, so one of them waits for
  the other: either the citation commits first and the apps report it, or the row is
  gone first and the command is told the file does not exist; on SQLite the two write
  transactions simply run one after the other;
- an upload of bytes already stored touches the blob (``store_blob``); a blob is moved
  aside, its time looked at again, and put back if it was touched meanwhile; an upload
  that finds the blob moved aside writes it anew.

Every deletion is an audit leaf naming what went.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from xietong.kernel import clock
from xietong.kernel.access import WORKER
from xietong.kernel.context import Context
from xietong.kernel.files.models import StoredFile
from xietong.kernel.files.storage import is_digest
from xietong.kernel.uow import UnitOfWork

JOB_NAME = "files.retention"
INTERVAL_S = 3600.0
BATCH = 500


def cutoff(ctx: Context) -> datetime:
    """Uploads older than this moment are kept only while something cites them."""
    return clock.now() - timedelta(days=ctx.settings.files_retention_days)


def cited(
    ctx: Context, session: Session, file_ids: Sequence[int], digests: Sequence[str]
) -> tuple[set[int], set[str]]:
    """Which of these uploads and blobs some app's record still cites."""
    ids: set[int] = set()
    shas: set[str] = set()
    for found in ctx.hooks.file_references(
        session=session, file_ids=list(file_ids), digests=list(digests)
    ):
        if found is not None:
            ids |= found[0]
            shas |= found[1]
    return ids, shas


def purge_uploads(ctx: Context) -> int:
    """Delete old ``file_object`` rows no app cites, a batch per transaction."""
    before = cutoff(ctx)
    after, deleted = 0, 0
    while True:
        with UnitOfWork(ctx, WORKER) as uow:
            rows = uow.session.execute(
                select(StoredFile.id, StoredFile.sha256)
                .where(StoredFile.id > after, StoredFile.created_at < before)
                .order_by(StoredFile.id)
                .limit(BATCH)
                .with_for_update()
            ).all()
            if not rows:
                return deleted
            after = rows[-1].id
            kept, _ = cited(ctx, uow.session, [row.id for row in rows], [])
            gone = [row for row in rows if row.id not in kept]
            if not gone:
                continue
            uow.session.execute(delete(StoredFile).where(StoredFile.id.in_([r.id for r in gone])))
            uow.record(
                "files.purge",
                "files",
                {
                    "file_ids": [row.id for row in gone],
                    "sha256": sorted({row.sha256 for row in gone}),
                    "created_before": before.isoformat(),
                },
            )
            uow.commit()
            deleted += len(gone)


def _old_blobs(root: Path, before: float) -> Iterator[Path]:
    if not root.is_dir():
        return
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or len(folder.name) != 2:
            continue
        for path in sorted(folder.iterdir()):
            # temporary files (".<sha>.<uuid>.tmp") belong to writes in progress
            if is_digest(path.name) and path.stat().st_mtime < before:
                yield path


def _chunks(paths: Iterator[Path], size: int) -> Iterator[list[Path]]:
    chunk: list[Path] = []
    for path in paths:
        chunk.append(path)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _remove_unless_touched(path: Path, before: float) -> bool:
    """Move the blob aside, then delete it unless an upload touched it meanwhile."""
    aside = path.with_name(f".{path.name}.{uuid.uuid4().hex}.purge")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    if aside.stat().st_mtime >= before:
        os.replace(aside, path)  # the same bytes, whoever wrote them last
        return False
    aside.unlink()
    return True


def purge_blobs(ctx: Context) -> int:
    """Delete old blobs that no upload row and no app's record cites."""
    before = cutoff(ctx).timestamp()
    deleted = 0
    for batch in _chunks(_old_blobs(ctx.settings.files_dir, before), BATCH):
        digests = [path.name for path in batch]
        with ctx.db.read() as session:
            in_use = set(
                session.scalars(select(StoredFile.sha256).where(StoredFile.sha256.in_(digests)))
            )
            in_use |= cited(ctx, session, [], digests)[1]
        gone = [p.name for p in batch if p.name not in in_use and _remove_unless_touched(p, before)]
        if gone:
            with UnitOfWork(ctx, WORKER) as uow:
                uow.record("files.purge_blobs", "files", {"sha256": gone})
                uow.commit()
            deleted += len(gone)
    return deleted


def run_job(ctx: Context) -> int:
    """The worker job: uploads first, so the blobs they held become candidates."""
    if ctx.hooks is None:
        return 0
    return purge_uploads(ctx) + purge_blobs(ctx)
