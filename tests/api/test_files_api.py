"""POST /api/v1/files: an upload, refused with a 4xx JSON error when bad, read back by
its uploader only."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.api.conftest import World
from tests.kernel.test_files import DOCX, PDF, PNG
from xietong.kernel.files.models import StoredFile


def count(world: World) -> int:
    with world.ctx.db.read() as session:
        return session.scalar(select(func.count()).select_from(StoredFile)) or 0


def test_upload_and_read_back(world: World) -> None:
    head = world.token("clerk_a")
    r = world.client.post("/api/v1/files", headers=head, files={"file": ("整改台账.docx", DOCX)})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["filename"] == "整改台账.docx" and body["size"] == len(DOCX)
    assert body["media_type"].endswith("wordprocessingml.document")
    got = world.client.get(f"/api/v1/files/{body['id']}/content", headers=head)
    assert got.status_code == 200 and got.content == DOCX
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-disposition"].startswith("attachment;")
    other = world.client.get(f"/api/v1/files/{body['id']}", headers=world.token("clerk_b"))
    assert other.status_code == 404 and other.json()["code"] == "not_found"
    anonymous = world.client.get(f"/api/v1/files/{body['id']}/content")
    assert anonymous.status_code == 401


def test_control_characters_leave_the_filename_and_metadata_needs_no_blob(world: World) -> None:
    head = world.token("clerk_a")
    # control characters in the part's header (python-multipart passes all but CR LF)
    # would reach Content-Disposition, which the HTTP server then refuses to send
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; '
        b'filename="a\x0bX\x01\x1f\x7f.pdf"\r\n'
        b"Content-Type: application/pdf\r\n\r\n" + PDF + b"ctl\r\n--b--\r\n"
    )
    r = world.client.post(
        "/api/v1/files",
        headers={**head, "Content-Type": "multipart/form-data; boundary=b"},
        content=body,
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["filename"] == "aX.pdf"
    got = world.client.get(f"/api/v1/files/{made['id']}/content", headers=head)
    assert got.status_code == 200
    assert got.headers["content-disposition"] == (
        "attachment; filename=\"aX.pdf\"; filename*=UTF-8''aX.pdf"
    )
    # the metadata comes from the row: a lost blob does not make it fail, the content does
    from xietong.kernel import files

    files.blob_path(world.ctx, made["sha256"]).unlink()
    meta = world.client.get(f"/api/v1/files/{made['id']}", headers=head)
    assert meta.status_code == 200 and meta.json()["sha256"] == made["sha256"]
    gone = world.client.get(f"/api/v1/files/{made['id']}/content", headers=head)
    assert gone.status_code == 404


@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
        ("empty.pdf", b"", 422, "empty_file"),
        ("big.pdf", PDF + b"0" * (20 * 1024 * 1024), 422, "file_too_large"),
        ("huge.pdf", PDF + b"0" * (22 * 1024 * 1024), 413, "payload_too_large"),
        ("tool.exe", b"MZ\x90\x00", 422, "unsupported_file_type"),
        ("photo.pdf", PNG, 422, "forged_extension"),
    ],
)
def test_bad_uploads_change_nothing(
    world: World, name: str, data: bytes, status: int, code: str
) -> None:
    r = world.client.post(
        "/api/v1/files", headers=world.token("clerk_a"), files={"file": (name, data)}
    )
    assert r.status_code == status, r.text
    assert r.json()["code"] == code
    assert r.json()["message_zh"] and r.json()["message_en"]
    assert count(world) == 0


def test_a_json_body_keeps_the_small_limit(world: World) -> None:
    r = world.client.post(
        "/api/v1/auth/token",
        content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
