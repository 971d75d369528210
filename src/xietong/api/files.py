"""Uploads (文件): POST a file, attach its id in an app's command, read back your own.

A file is read by anyone else only through the app record it is attached to, whose
route checks access to that record first (see ``download``).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from xietong.api.deps import allow, get_ctx
from xietong.kernel import files
from xietong.kernel.access import Actor
from xietong.kernel.context import Context

router = APIRouter(prefix="/files", tags=["files 文件"])
CtxDep = Annotated[Context, Depends(get_ctx)]
Uploader = Annotated[Actor, Depends(allow(files.UPLOAD))]
Reader = Annotated[Actor, Depends(allow(files.READ))]
# the body limit of the upload routes: one file at its limit plus the multipart framing
MAX_UPLOAD_BODY = files.MAX_BYTES + 1024 * 1024


def download(view: files.FileView, data: bytes) -> Response:
    """The bytes as an attachment: never rendered inline, never sniffed by the browser."""
    ascii_name = view.filename.encode("ascii", "replace").decode().replace('"', "_")
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(view.filename)}"
    return Response(
        data,
        media_type=view.media_type,
        headers={
            "Content-Disposition": disposition,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


@router.post("", status_code=201)
async def upload(
    ctx: CtxDep,
    actor: Uploader,
    file: Annotated[UploadFile, File(description="pdf/jpg/png/ofd/docx/xlsx, ≤ 20 MB")],
) -> Any:
    data = await file.read(files.MAX_BYTES + 1)
    # hashing, type sniffing, fsync and the DB write would stall the event loop the
    # async exchange gateway shares: run them on a worker thread
    return asdict(await run_in_threadpool(files.upload, ctx, actor, file.filename or "", data))


@router.get("/{file_id}")
def metadata(file_id: int, ctx: CtxDep, actor: Reader) -> Any:
    return asdict(files.describe_own(ctx, actor, file_id))


@router.get("/{file_id}/content")
def content(file_id: int, ctx: CtxDep, actor: Reader) -> Response:
    return download(*files.read_own(ctx, actor, file_id))
