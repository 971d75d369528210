"""The kernel's files: content decides the type; bad files are refused before any write."""

from __future__ import annotations

import io
import zipfile

import pytest
from sqlalchemy import func, select

from xietong.kernel import files
from xietong.kernel.access import Actor
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput, NotFound
from xietong.kernel.files.models import StoredFile

PDF = b"%PDF-1.7\n1 0 obj\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16


def zipped(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, "<x/>")
    return buffer.getvalue()


DOCX = zipped("[Content_Types].xml", "word/document.xml")
XLSX = zipped("[Content_Types].xml", "xl/workbook.xml")
OFD = zipped("OFD.xml", "Doc_0/Document.xml")


def user(name: str) -> Actor:
    return Actor(kind="user", id=1, name=name)


@pytest.mark.parametrize(
    ("data", "media_type"),
    [
        (PDF, files.content.PDF),
        (PNG, files.content.PNG),
        (JPEG, files.content.JPEG),
        (OFD, files.content.OFD),
        (DOCX, files.content.DOCX),
        (XLSX, files.content.XLSX),
        (zipped("[Content_Types].xml"), None),  # an OOXML package that is neither
        (zipped("readme.txt"), None),
        (b"PK\x03\x04 not really a zip", None),
        (b"MZ\x90\x00", None),
    ],
)
def test_sniff_by_content(data: bytes, media_type: str | None) -> None:
    assert files.sniff(data) == media_type


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("empty.pdf", b"", "empty_file"),
        ("big.pdf", PDF + b"0" * files.MAX_BYTES, "file_too_large"),
        ("tool.exe", b"MZ\x90\x00", "unsupported_file_type"),
        ("photo.pdf", PNG, "forged_extension"),
        ("ledger.docx", XLSX, "forged_extension"),
        ("scan.jpg", PDF, "forged_extension"),
    ],
)
def test_bad_files_are_refused(name: str, data: bytes, code: str) -> None:
    with pytest.raises(InvalidInput) as error:
        files.check_file(name, data)
    assert error.value.code == code


def test_allowed_types_narrow_what_is_accepted() -> None:
    assert files.check_file("a.docx", DOCX) == files.content.DOCX
    with pytest.raises(InvalidInput) as error:
        files.check_file("a.docx", DOCX, allowed=files.MATERIALS)
    assert error.value.code == "unsupported_file_type"
    assert "DOCX" not in error.value.message_zh and "PDF" in error.value.message_zh
    # an extension the platform does not know says nothing about the content
    assert files.check_file("scan.PDF", PDF) == files.content.PDF
    assert files.check_file("no-extension", PDF) == files.content.PDF


def test_upload_stores_once_by_digest_and_reads_back(ctx: Context) -> None:
    alice, bob = user("alice"), user("bob")
    first = files.upload(ctx, alice, "../../etc/年度报告.pdf", PDF + b"a")
    assert first.filename == "年度报告.pdf"  # directories from the client are dropped
    again = files.upload(ctx, alice, "年度报告.pdf", PDF + b"a")
    assert again.id == first.id  # the same person, bytes and name: one row
    other = files.upload(ctx, bob, "copy.pdf", PDF + b"a")
    assert other.id != first.id and other.sha256 == first.sha256
    blob = files.blob_path(ctx, first.sha256)
    assert blob.read_bytes() == PDF + b"a"
    assert list(blob.parent.iterdir()) == [blob]  # one blob, no temporary left behind
    view, data = files.read_own(ctx, alice, first.id)
    assert view == first and data == PDF + b"a"
    with pytest.raises(NotFound):
        files.read_own(ctx, bob, first.id)  # someone else's upload does not exist for bob


def test_bad_upload_writes_nothing(ctx: Context) -> None:
    with pytest.raises(InvalidInput):
        files.upload(ctx, user("alice"), "photo.pdf", PNG)
    with ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(StoredFile)) == 0
    assert not ctx.settings.files_dir.exists() or not any(ctx.settings.files_dir.rglob("*"))


def test_owned_refuses_unknown_and_others_files(ctx: Context) -> None:
    alice, bob = user("alice"), user("bob")
    mine = files.upload(ctx, alice, "a.pdf", PDF + b"1")
    theirs = files.upload(ctx, bob, "b.pdf", PDF + b"2")
    with ctx.db.read() as session:
        assert [v.id for v in files.owned(session, alice, [mine.id, mine.id])] == [mine.id]
        with pytest.raises(InvalidInput) as error:
            files.owned(session, alice, [mine.id, theirs.id, 999])
    assert error.value.code == "file_not_uploaded"
    assert error.value.details == {"file_ids": [theirs.id, 999]}


def test_a_changed_blob_is_not_served(ctx: Context) -> None:
    view = files.upload(ctx, user("alice"), "a.pdf", PDF + b"x")
    files.blob_path(ctx, view.sha256).write_bytes(PDF + b"tampered")
    with pytest.raises(NotFound):
        files.read(ctx, view.id)


def test_services_blobs_from_before_the_kernel_are_still_read(ctx: Context) -> None:
    data = PDF + b"legacy"
    sha = files.storage.digest(data)
    legacy = ctx.settings.data_dir / "services" / "blobs" / sha[:2] / sha
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(data)
    assert files.read_blob(ctx, sha) == data
    with pytest.raises(NotFound):
        files.read_blob(ctx, "../" + sha[3:])


def test_concurrent_writes_of_the_same_bytes_leave_one_whole_blob(ctx: Context) -> None:
    from concurrent.futures import ThreadPoolExecutor

    data = PDF + b"z" * 2_000_000
    with ThreadPoolExecutor(8) as pool:
        digests = set(pool.map(lambda _: files.store_blob(ctx, data), range(16)))
    [sha] = digests
    path = files.blob_path(ctx, sha)
    assert path.read_bytes() == data
    assert [p.name for p in path.parent.iterdir()] == [sha]  # no temporary left behind


def test_control_characters_are_stripped_from_filenames() -> None:
    assert files.clean_filename("a\r\nSet-Cookie: x=1.pdf") == "aSet-Cookie: x=1.pdf"
    assert files.clean_filename("\x00\x1f\x7f报告.pdf") == "报告.pdf"
    assert files.clean_filename("dir/\r\n") == "file"


def test_blobs_are_private_to_the_platforms_user(ctx: Context) -> None:
    import stat

    sha256 = files.store_blob(ctx, PDF + b"private")
    path = files.blob_path(ctx, sha256)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
