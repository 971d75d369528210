"""申请材料: a citizen's uploads, reusable across the matters of a bundle.

Checking (by content: PDF, JPG, PNG or OFD; size; forged extensions) and storage
(content-addressed under the data dir) are the kernel's (``xietong.kernel.files``).
The app keeps its own ``svc_upload`` table: a material belongs to the person who
uploaded it, once per SHA-256, and an application may only cite its applicant's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.apps.services.models import ApplicationMaterial, Upload
from xietong.kernel import clock
from xietong.kernel.access import Actor, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput
from xietong.kernel.files import MATERIALS, MAX_BYTES, check_file, clean_filename, store_blob
from xietong.kernel.files import read_blob as read_blob
from xietong.kernel.uow import UnitOfWork

SUBMIT = "services.application.submit"
__all__ = ["MAX_BYTES", "UploadView", "read_blob", "upload"]


@dataclass(frozen=True)
class UploadView:
    sha256: str
    size: int
    media_type: str
    filename: str


def upload(ctx: Context, actor: Actor, filename: str, data: bytes) -> UploadView:
    """Keep a material for the actor's applications (the same bytes are stored once)."""
    authorize(actor, SUBMIT)
    if actor.kind != "user" or actor.id is None:
        raise InvalidInput(
            "仅个人账号可上传材料", "Only a person's account may upload", code="not_a_user"
        )
    filename = clean_filename(filename)
    media_type = check_file(filename, data, allowed=MATERIALS)
    sha256 = store_blob(ctx, data)
    with UnitOfWork(ctx, actor) as uow:
        existing = uow.session.scalar(
            select(Upload).where(Upload.user_id == actor.id, Upload.sha256 == sha256)
        )
        if existing is None:
            uow.session.add(
                Upload(
                    user_id=actor.id,
                    sha256=sha256,
                    size=len(data),
                    media_type=media_type,
                    filename=filename,
                    created_at=clock.now(),
                )
            )
        uow.record(
            "services.material.upload",
            f"services.upload:{sha256[:16]}",
            {"sha256": sha256, "size": len(data), "media_type": media_type},
        )
        uow.commit()
    return UploadView(sha256, len(data), media_type, filename)


def cited_digests(session: Session, digests: Sequence[str]) -> set[str]:
    """Which of these blobs the app still uses: every applicant's upload (a person's
    materials stay reusable for later applications) and every application's material."""
    if not digests:
        return set()
    wanted = list(digests)
    return set(session.scalars(select(Upload.sha256).where(Upload.sha256.in_(wanted)))) | set(
        session.scalars(
            select(ApplicationMaterial.sha256).where(ApplicationMaterial.sha256.in_(wanted))
        )
    )
