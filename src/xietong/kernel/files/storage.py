"""Content-addressed bytes: one file per SHA-256 under ``<data dir>/files``.

A blob is written to a temporary name, fsynced and renamed, so a process that dies
mid-write leaves no half file under the final name. A blob written for a transaction
that then rolls back is harmless: nothing refers to it, and the next upload of the same
bytes finds it. Blobs are never rewritten (same name, same bytes) and never deleted by
a request, so concurrent uploads of one file need no lock; the retention job
(``retention``) deletes blobs nothing cites, long after their last upload.

Before the kernel kept files, the services app stored its materials under
``<data dir>/services/blobs``; ``read_blob`` still finds those, so an installation
upgraded in place keeps every material readable without moving files.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from pathlib import Path

from xietong.kernel.context import Context
from xietong.kernel.errors import NotFound

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_digest(name: str) -> bool:
    return bool(_SHA256.match(name))


def _checked(sha256: str) -> str:
    # the digest becomes a path: only 64 hex digits, never "../" from a caller
    if not _SHA256.match(sha256 or ""):
        raise NotFound.of("文件", "File", sha256)
    return sha256


def blob_path(ctx: Context, sha256: str) -> Path:
    sha256 = _checked(sha256)
    return ctx.settings.files_dir / sha256[:2] / sha256


def _legacy_path(ctx: Context, sha256: str) -> Path:
    return ctx.settings.data_dir / "services" / "blobs" / sha256[:2] / sha256


def store_blob(ctx: Context, data: bytes) -> str:
    """Keep ``data``; its SHA-256 (the same bytes are stored once)."""
    sha256 = digest(data)
    path = blob_path(ctx, sha256)
    try:
        # touched, not just found: the retention job spares a blob used since it looked
        os.utime(path)
        return sha256
    except FileNotFoundError:
        pass
    # citizens' documents: readable by the platform's user only, whatever the umask
    path.parent.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    # a name of its own per write: two threads of one process storing the same bytes
    # at once must not truncate each other's temporary file before its rename; O_EXCL
    # never follows a link planted under that name
    temp = path.with_name(f".{sha256}.{uuid.uuid4().hex}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    return sha256


def read_blob(ctx: Context, sha256: str) -> bytes:
    for path in (blob_path(ctx, sha256), _legacy_path(ctx, sha256)):
        if path.is_file():
            return path.read_bytes()
    raise NotFound.of("文件", "File", sha256)
