"""Files retention: old uploads no record cites are deleted, rows and bytes, with an
audit leaf; cited, shared and young ones stay; a blob used during the pass survives."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from xietong.kernel import clock, files
from xietong.kernel.access import Actor
from xietong.kernel.audit import AuditLeaf
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput
from xietong.kernel.files import retention
from xietong.kernel.files.models import StoredFile

PDF = b"%PDF-1.7\n1 0 obj\n"


def user(name: str) -> Actor:
    return Actor(kind="user", id=1, name=name)


@dataclass
class Citing:
    """The apps' answer to ``file_references``, chosen by the test."""

    ids: set[int] = field(default_factory=set)
    digests: set[str] = field(default_factory=set)

    def file_references(
        self, session: object, file_ids: list[int], digests: list[str]
    ) -> list[tuple[set[int], set[str]] | None]:
        return [(self.ids & set(file_ids), self.digests & set(digests)), None]


@pytest.fixture
def later() -> Iterator[clock.FrozenClock]:
    frozen = clock.FrozenClock(datetime.now(UTC))
    previous = clock.use_clock(frozen)
    yield frozen
    clock.use_clock(previous)


@pytest.fixture
def citing(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> Citing:
    answer = Citing()
    monkeypatch.setattr(ctx, "hooks", answer)
    return answer


def _rows(ctx: Context) -> set[int]:
    with ctx.db.read() as session:
        return set(session.scalars(select(StoredFile.id)))


def _purges(ctx: Context) -> list[dict[str, object]]:
    with ctx.db.read() as session:
        leaves = [json.loads(leaf) for leaf in session.scalars(select(AuditLeaf.leaf))]
    return [leaf for leaf in leaves if leaf["action"].startswith("files.purge")]


def test_old_uncited_uploads_go_and_the_rest_stay(
    ctx: Context, later: clock.FrozenClock, citing: Citing
) -> None:
    alice = user("alice")
    abandoned = files.upload(ctx, alice, "a.pdf", PDF + b"abandoned")
    cited = files.upload(ctx, alice, "b.pdf", PDF + b"cited")
    citing.ids.add(cited.id)
    later.advance(timedelta(days=ctx.settings.files_retention_days + 1))
    young = files.upload(ctx, alice, "c.pdf", PDF + b"young")

    assert retention.run_job(ctx) == 2  # the row and then its blob
    assert _rows(ctx) == {cited.id, young.id}
    assert not files.blob_path(ctx, abandoned.sha256).exists()
    assert files.blob_path(ctx, cited.sha256).exists()
    assert files.blob_path(ctx, young.sha256).exists()  # an old mtime, but its row is young
    with ctx.db.read() as session, pytest.raises(InvalidInput) as error:
        files.owned(session, alice, [abandoned.id])
    assert error.value.code == "file_not_uploaded"
    [rows, blobs] = _purges(ctx)
    assert rows["action"] == "files.purge" and rows["actor"] == "worker:worker"
    assert blobs["action"] == "files.purge_blobs"
    assert retention.run_job(ctx) == 0  # nothing more to do


def test_bytes_shared_with_a_kept_upload_stay(
    ctx: Context, later: clock.FrozenClock, citing: Citing
) -> None:
    mine = files.upload(ctx, user("alice"), "a.pdf", PDF + b"same")
    theirs = files.upload(ctx, user("bob"), "b.pdf", PDF + b"same")
    citing.ids.add(theirs.id)
    later.advance(timedelta(days=ctx.settings.files_retention_days + 1))
    assert retention.run_job(ctx) == 1
    assert _rows(ctx) == {theirs.id}
    assert files.blob_path(ctx, mine.sha256).read_bytes() == PDF + b"same"


def test_a_blob_an_app_cites_by_digest_stays(
    ctx: Context, later: clock.FrozenClock, citing: Citing
) -> None:
    # the services app keeps its materials by digest, without file_object rows
    kept = files.store_blob(ctx, PDF + b"material")
    dropped = files.store_blob(ctx, PDF + b"never used")
    citing.digests.add(kept)
    later.advance(timedelta(days=ctx.settings.files_retention_days + 1))
    assert retention.run_job(ctx) == 1
    assert files.blob_path(ctx, kept).exists() and not files.blob_path(ctx, dropped).exists()
    leftovers = [p.name for p in files.blob_path(ctx, kept).parent.parent.rglob(".*")]
    assert leftovers == []


def test_without_the_apps_answers_nothing_is_deleted(
    ctx: Context, later: clock.FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = files.upload(ctx, user("alice"), "a.pdf", PDF + b"x")
    monkeypatch.setattr(ctx, "hooks", None)
    later.advance(timedelta(days=ctx.settings.files_retention_days + 1))
    assert retention.run_job(ctx) == 0
    assert _rows(ctx) == {view.id} and files.blob_path(ctx, view.sha256).exists()


def test_a_blob_touched_during_the_pass_is_put_back(ctx: Context) -> None:
    sha = files.store_blob(ctx, PDF + b"busy")
    path = files.blob_path(ctx, sha)
    # the pass judged the blob old at ``before``; an upload touched it since
    assert retention._move_aside(path, before=time.time() - 60) is None
    assert path.read_bytes() == PDF + b"busy"
    assert [p.name for p in path.parent.iterdir()] == [sha]
    aside = retention._move_aside(path, before=time.time() + 60)
    assert aside is not None and not path.exists() and aside.read_bytes() == PDF + b"busy"


def test_bytes_go_only_once_their_audit_leaf_commits(
    ctx: Context, later: clock.FrozenClock, citing: Citing, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = files.store_blob(ctx, PDF + b"uncited")
    path = files.blob_path(ctx, sha)
    later.advance(timedelta(days=ctx.settings.files_retention_days + 1))

    def fail(_self: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(retention.UnitOfWork, "commit", fail)
    with pytest.raises(OSError):
        retention.run_job(ctx)
    assert path.read_bytes() == PDF + b"uncited"  # put back: no leaf, no deletion
    assert [p.name for p in path.parent.iterdir()] == [sha]
    # a pass that died between moving the blob aside and deleting it
    monkeypatch.undo()
    monkeypatch.setattr(ctx, "hooks", citing)
    aside = retention._move_aside(path, before=time.time() + 60)
    assert aside is not None and not path.exists()
    citing.digests.add(sha)  # cited meanwhile: the next pass puts it back and keeps it
    assert retention.run_job(ctx) == 0
    assert path.read_bytes() == PDF + b"uncited" and not aside.exists()
    assert _purges(ctx) == []


def test_an_upload_touches_the_blob_or_writes_it_anew(ctx: Context) -> None:
    sha = files.store_blob(ctx, PDF + b"again")
    path = files.blob_path(ctx, sha)
    os.utime(path, (0, 0))
    files.store_blob(ctx, PDF + b"again")
    assert path.stat().st_mtime > time.time() - 60  # touched: the next pass spares it
    path.rename(path.with_name(".moved-aside"))  # a pass moved it aside meanwhile
    files.store_blob(ctx, PDF + b"again")
    assert path.read_bytes() == PDF + b"again"
