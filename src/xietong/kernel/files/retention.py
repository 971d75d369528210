"""Retention: uploads that no record cites are deleted once they are old enough.

People upload files and then never send the command that would cite them: a report
abandoned half-way, an attachment for a request that then failed; bytes are also
stored for transactions that roll back. Those bytes are often personal documents (ID
cards, certificates); keeping them forever serves nobody and breaks data minimisation.
(What an app keeps on purpose stays: the services app counts every applicant's
uploaded material as cited, so a person can reuse it in later applications.)

The worker job ``files.retention`` therefore deletes

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

Every deletion is an audit leaf, committed before the bytes go: blobs are moved aside,
the leaf naming them commits, then they are deleted (put back if the commit fails;
moved-aside blobs a crash left behind are put back by the next pass).

Apps may answer ``file_references`` by reading all their references (the tasks app's
live in JSON lists), so each pass asks them once, in a read transaction, for every old
upload; only the uploads nobody cited are then locked, asked about again and deleted.
A cited upload therefore costs no write lock, pass after pass.
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
    with ctx.db.read() as session:
        old = list(
            session.scalars(
                select(StoredFile.id).where(StoredFile.created_at < before).order_by(StoredFile.id)
            )
        )
        kept_before = cited(ctx, session, old, [])[0] if old else set()
    uncited = [i for i in old if i not in kept_before]
    deleted = 0
    for start in range(0, len(uncited), BATCH):
        with UnitOfWork(ctx, WORKER) as uow:
            rows = uow.session.execute(
                select(StoredFile.id, StoredFile.sha256)
                .where(StoredFile.id.in_(uncited[start : start + BATCH]))
                .order_by(StoredFile.id)
                .with_for_update()
            ).all()
            # asked again under the lock: a command may have cited one since
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
    return deleted


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


_ASIDE = ".purge"


def _move_aside(path: Path, before: float) -> Path | None:
    """The blob moved to a name no reader looks at, unless an upload touched it since
    the pass judged it old (then it stays, and ``None``)."""
    aside = path.with_name(f".{path.name}.{uuid.uuid4().hex}{_ASIDE}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return None
    if aside.stat().st_mtime >= before:
        _put_back(aside)
        return None
    return aside


def _digest_of(aside: Path) -> str:
    return aside.name[1:].split(".", 1)[0]


def _put_back(aside: Path) -> None:
    os.replace(aside, aside.with_name(_digest_of(aside)))  # the same bytes, whoever wrote


def _restore_leftovers(root: Path) -> None:
    """Blobs a pass moved aside and then died before deleting (its audit leaf may not
    have committed) go back: this pass judges them again."""
    if root.is_dir():
        for aside in root.glob(f"??/.*{_ASIDE}"):
            _put_back(aside)


def purge_blobs(ctx: Context) -> int:
    """Delete old blobs that no upload row and no app's record cites."""
    before = cutoff(ctx).timestamp()
    _restore_leftovers(ctx.settings.files_dir)
    deleted = 0
    for batch in _chunks(_old_blobs(ctx.settings.files_dir, before), BATCH):
        digests = [path.name for path in batch]
        with ctx.db.read() as session:
            in_use = set(
                session.scalars(select(StoredFile.sha256).where(StoredFile.sha256.in_(digests)))
            )
            in_use |= cited(ctx, session, [], digests)[1]
        moved = [
            aside
            for path in batch
            if path.name not in in_use and (aside := _move_aside(path, before)) is not None
        ]
        if not moved:
            continue
        try:
            with UnitOfWork(ctx, WORKER) as uow:
                names = [_digest_of(aside) for aside in moved]
                uow.record("files.purge_blobs", "files", {"sha256": names})
                uow.commit()
        except BaseException:
            for aside in moved:
                _put_back(aside)
            raise
        for aside in moved:
            aside.unlink()
        deleted += len(moved)
    return deleted


def run_job(ctx: Context) -> int:
    """The worker job: uploads first, so the blobs they held become candidates."""
    if ctx.hooks is None:
        return 0
    return purge_uploads(ctx) + purge_blobs(ctx)
