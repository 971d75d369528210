"""Materials stored content-addressed: one file per SHA-256 under the data dir.

The type is decided by the content (magic bytes), never by the name: PDF (``%PDF-``),
JPEG (``FF D8 FF``), PNG (the 8-byte signature) and OFD (a ZIP container holding
``OFD.xml``, GB/T 33190). A name whose extension says another type is refused as a
forged extension. Files are written to a temporary name, fsynced and renamed, so a
process that dies mid-write leaves no half file under the final name; a file written
for a transaction that then rolls back is harmless (nothing refers to it, and the next
upload of the same bytes finds it).
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from xietong.apps.services.models import Upload
from xietong.kernel import clock
from xietong.kernel.access import Actor, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput, NotFound
from xietong.kernel.uow import UnitOfWork

MAX_BYTES = 20 * 1024 * 1024
SUBMIT = "services.application.submit"
TYPES = {
    "application/pdf": ("pdf",),
    "image/jpeg": ("jpg", "jpeg"),
    "image/png": ("png",),
    "application/ofd": ("ofd",),
}


@dataclass(frozen=True)
class UploadView:
    sha256: str
    size: int
    media_type: str
    filename: str


def sniff(data: bytes) -> str | None:
    """The media type the content is, or None when it is none of the accepted ones."""
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = {name.lstrip("/").upper() for name in archive.namelist()}
        except (zipfile.BadZipFile, ValueError):
            return None
        if "OFD.XML" in names:
            return "application/ofd"
    return None


def check_file(filename: str, data: bytes) -> str:
    """The file's media type; ``InvalidInput`` when empty, too big, unknown or forged."""
    if not data:
        raise InvalidInput("文件为空", "The file is empty", code="empty_file")
    if len(data) > MAX_BYTES:
        raise InvalidInput(
            "文件超过 20 MB",
            "The file exceeds 20 MB",
            code="file_too_large",
            details={"max_bytes": MAX_BYTES, "size": len(data)},
        )
    media_type = sniff(data)
    if media_type is None:
        raise InvalidInput(
            "仅接受 PDF、JPG、PNG、OFD 文件（按文件内容判断）",
            "Only PDF, JPG, PNG and OFD files are accepted (judged by content)",
            code="unsupported_file_type",
        )
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    known = {ext for exts in TYPES.values() for ext in exts}
    if extension in known and extension not in TYPES[media_type]:
        raise InvalidInput(
            f"文件扩展名 .{extension} 与内容（{TYPES[media_type][0]}）不符",
            f"The extension .{extension} does not match the content ({TYPES[media_type][0]})",
            code="forged_extension",
        )
    return media_type


def blob_path(ctx: Context, sha256: str) -> Path:
    return ctx.settings.data_dir / "services" / "blobs" / sha256[:2] / sha256


def store_blob(ctx: Context, sha256: str, data: bytes) -> None:
    path = blob_path(ctx, sha256)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{sha256}.{os.getpid()}.tmp")
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def read_blob(ctx: Context, sha256: str) -> bytes:
    path = blob_path(ctx, sha256)
    if not path.is_file():
        raise NotFound.of("文件", "File", sha256)
    return path.read_bytes()


def upload(ctx: Context, actor: Actor, filename: str, data: bytes) -> UploadView:
    """Keep a material for the actor's applications (the same bytes are stored once)."""
    authorize(actor, SUBMIT)
    if actor.kind != "user" or actor.id is None:
        raise InvalidInput(
            "仅个人账号可上传材料", "Only a person's account may upload", code="not_a_user"
        )
    filename = os.path.basename((filename or "").replace("\\", "/")).strip()[:255] or "file"
    media_type = check_file(filename, data)
    sha256 = hashlib.sha256(data).hexdigest()
    store_blob(ctx, sha256, data)
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
