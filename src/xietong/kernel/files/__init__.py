"""Files (材料与附件): uploads checked by content and stored content-addressed.

- ``content``: what a file is, by its magic bytes; size, type and extension checks.
- ``storage``: the bytes, once per SHA-256 under the data dir.
- ``models`` / ``service``: one metadata row per upload, with its uploader; apps
  attach files by id and serve them after their own access check.
"""

from xietong.kernel.files.content import (
    DOCUMENTS,
    MATERIALS,
    MAX_BYTES,
    TYPES,
    check_file,
    clean_filename,
    sniff,
)
from xietong.kernel.files.service import (
    READ,
    UPLOAD,
    FileView,
    Incoming,
    check_all,
    describe_own,
    owned,
    read,
    read_own,
    stage,
    upload,
)
from xietong.kernel.files.storage import blob_path, read_blob, store_blob

__all__ = [
    "DOCUMENTS",
    "MATERIALS",
    "MAX_BYTES",
    "READ",
    "TYPES",
    "UPLOAD",
    "FileView",
    "Incoming",
    "blob_path",
    "check_all",
    "check_file",
    "clean_filename",
    "describe_own",
    "owned",
    "read",
    "read_blob",
    "read_own",
    "sniff",
    "stage",
    "store_blob",
    "upload",
]
