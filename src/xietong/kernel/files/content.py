"""What a file is, judged by its content (magic bytes), never by its name.

Accepted: PDF (``%PDF-``), JPEG (``FF D8 FF``), PNG (the 8-byte signature), and three
ZIP containers told apart by the parts they hold: OFD (``OFD.xml``, GB/T 33190), DOCX
(``word/document.xml``) and XLSX (``xl/workbook.xml``), both with the OOXML
``[Content_Types].xml``. A ZIP that cannot be opened is none of them. A name whose
extension belongs to another accepted type is a forged extension and refused; an
extension the platform does not know (``.txt`` on a PDF) says nothing and is ignored,
which keeps uploads from systems that name files oddly working.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Iterable

from xietong.kernel.errors import InvalidInput

MAX_BYTES = 20 * 1024 * 1024
PDF = "application/pdf"
JPEG = "image/jpeg"
PNG = "image/png"
OFD = "application/ofd"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# media type -> (extensions, the first being the one shown; label in messages)
TYPES: dict[str, tuple[tuple[str, ...], str]] = {
    PDF: (("pdf",), "PDF"),
    JPEG: (("jpg", "jpeg"), "JPG"),
    PNG: (("png",), "PNG"),
    OFD: (("ofd",), "OFD"),
    DOCX: (("docx",), "DOCX"),
    XLSX: (("xlsx",), "XLSX"),
}
MATERIALS = (PDF, JPEG, PNG, OFD)  # 申请材料: scans and signed documents
DOCUMENTS = (*MATERIALS, DOCX, XLSX)  # work documents: reports, ledgers, evidence


def _zip_kind(data: bytes) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = {name.lstrip("/") for name in archive.namelist()}
    except (zipfile.BadZipFile, ValueError, OSError):
        return None
    if "OFD.XML" in {name.upper() for name in names}:
        return OFD
    if "[Content_Types].xml" in names:
        if "word/document.xml" in names:
            return DOCX
        if "xl/workbook.xml" in names:
            return XLSX
    return None


def sniff(data: bytes) -> str | None:
    """The media type the content is, or None when it is none of the accepted ones."""
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"PK\x03\x04"):
        return _zip_kind(data)
    return None


# C0 controls and DEL: a CR/LF from an RFC 2231 ``filename*`` would otherwise reach the
# Content-Disposition header of a download (and fail it), a NUL the file system.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def clean_filename(filename: str | None) -> str:
    """The base name only (no directories from the client, no control characters), at
    most 255 characters."""
    name = _CONTROLS.sub("", filename or "")
    name = os.path.basename(name.replace("\\", "/")).strip()
    return name[:255] or "file"


def extension(filename: str) -> str:
    return filename.rsplit(".", 1)[-1].lower() if "." in filename else ""


def check_file(
    filename: str,
    data: bytes,
    *,
    allowed: Iterable[str] = DOCUMENTS,
    max_bytes: int = MAX_BYTES,
) -> str:
    """The file's media type; ``InvalidInput`` when empty, too big, not an allowed type
    (by content) or carrying another type's extension. Nothing is written."""
    allowed = tuple(allowed)
    if not data:
        raise InvalidInput("文件为空", "The file is empty", code="empty_file")
    if len(data) > max_bytes:
        mb = max_bytes / (1024 * 1024)
        raise InvalidInput(
            f"文件超过 {mb:g} MB",
            f"The file exceeds {mb:g} MB",
            code="file_too_large",
            details={"max_bytes": max_bytes, "size": len(data)},
        )
    media_type = sniff(data)
    if media_type is None or media_type not in allowed:
        labels = "、".join(TYPES[t][1] for t in allowed)
        raise InvalidInput(
            f"仅接受 {labels} 文件（按文件内容判断）",
            f"Only {', '.join(TYPES[t][1] for t in allowed)} files are accepted "
            "(judged by content)",
            code="unsupported_file_type",
            details={"accepted": [TYPES[t][0][0] for t in allowed]},
        )
    ext = extension(filename)
    known = {e for exts, _label in TYPES.values() for e in exts}
    own = TYPES[media_type][0]
    if ext in known and ext not in own:
        raise InvalidInput(
            f"文件扩展名 .{ext} 与内容（{own[0]}）不符",
            f"The extension .{ext} does not match the content ({own[0]})",
            code="forged_extension",
        )
    return media_type
