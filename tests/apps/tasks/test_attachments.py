"""Progress attachments and 销号 evidence are real uploads: checked by the kernel's files
module, kept with the report in one transaction, served only to those who may see the
task, and refused (nothing changed) when bad — in the service, the API and the pages."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.api.conftest import World
from tests.apps.tasks.conftest import City, count, csrf, signed_in, task_input, tree_size
from tests.apps.tasks.test_tasks_api import API, body, error, size
from tests.kernel.test_files import DOCX, PDF, PNG, XLSX
from xietong.apps.tasks import attachments, closure, queries, service
from xietong.apps.tasks.models import Closure, ProgressReport
from xietong.kernel import clock, files
from xietong.kernel.errors import InvalidInput, NotFound
from xietong.kernel.files.models import StoredFile

LEDGER = files.Incoming("排查台账.xlsx", XLSX)


def blobs(city: City) -> list[Path]:
    root = city.ctx.settings.files_dir
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def tree(city: City) -> tuple[int, int, int]:
    root = service.create_task(
        city.ctx, city.supervisor, task_input("专班", "dc", supervising_department_code="dc")
    )
    lead = service.create_task(
        city.ctx,
        city.supervisor,
        task_input("门店排查", "scjg", parent_id=root.id, cooperating_codes=("xf",)),
    )
    other = service.create_task(city.ctx, city.supervisor, task_input("另一项", "dc"))
    return root.id, lead.id, other.id


def test_report_with_uploads_and_who_may_download(city: City) -> None:
    _root, lead, other = tree(city)
    report = service.report_progress(
        city.ctx,
        city.scjg_clerk,
        lead,
        40,
        "已排查 120 家",
        uploads=[LEDGER, files.Incoming("现场照片.png", PNG)],
        attachments=[{"name": "OA 台账", "url": "https://oa.example.gov.cn/tz"}],
    )
    names = [a["name"] for a in report.attachments]
    assert names == ["排查台账.xlsx", "现场照片.png", "OA 台账"]
    ledger = report.attachments[0]
    assert ledger["media_type"] == files.content.XLSX and ledger["size"] == len(XLSX)
    assert len(blobs(city)) == 2
    # the lead's staff, a cooperating department and the supervising office may read it
    for actor in (city.scjg_clerk, city.xf_clerk, city.supervisor):
        view, data = attachments.read(city.ctx, actor, lead, ledger["file_id"])
        assert data == XLSX and view.filename == "排查台账.xlsx"
    # a department outside the tree may not; nor may a task that does not cite the file
    with pytest.raises(NotFound):
        attachments.read(city.ctx, city.jy_head, lead, ledger["file_id"])
    with pytest.raises(NotFound):
        attachments.read(city.ctx, city.supervisor, other, ledger["file_id"])
    # a file uploaded before and cited by id is attached without a second copy
    mine = files.upload(city.ctx, city.scjg_clerk, "复查记录.docx", DOCX)
    again = service.report_progress(
        city.ctx, city.scjg_clerk, lead, 60, "复查", attachments=[{"file_id": mine.id}]
    )
    assert again.attachments[0]["file_id"] == mine.id and len(blobs(city)) == 3


@pytest.mark.parametrize(
    ("item", "code"),
    [
        (files.Incoming("empty.pdf", b""), "empty_file"),
        (files.Incoming("big.pdf", PDF + b"0" * files.MAX_BYTES), "file_too_large"),
        (files.Incoming("tool.exe", b"MZ\x90\x00"), "unsupported_file_type"),
        (files.Incoming("scan.pdf", PNG), "forged_extension"),
    ],
)
def test_a_bad_file_changes_nothing(city: City, item: files.Incoming, code: str) -> None:
    _root, lead, _other = tree(city)
    before = (tree_size(city.ctx), count(city.ctx, ProgressReport), count(city.ctx, StoredFile))
    with pytest.raises(InvalidInput) as error:
        service.report_progress(city.ctx, city.scjg_clerk, lead, 30, "报送", uploads=[LEDGER, item])
    assert error.value.code == code
    after = (tree_size(city.ctx), count(city.ctx, ProgressReport), count(city.ctx, StoredFile))
    assert after == before and blobs(city) == []  # not even the good file was kept
    assert queries.get_task(city.ctx, city.scjg_head, lead).task.progress == 0


def test_citing_another_users_file_is_refused(city: City) -> None:
    _root, lead, _other = tree(city)
    theirs = files.upload(city.ctx, city.xf_clerk, "消防检查.pdf", PDF)
    before = (tree_size(city.ctx), count(city.ctx, ProgressReport))
    with pytest.raises(InvalidInput) as error:
        service.report_progress(
            city.ctx, city.scjg_clerk, lead, 30, "报送", attachments=[{"file_id": theirs.id}]
        )
    assert error.value.code == "file_not_uploaded"
    with pytest.raises(InvalidInput) as link:
        service.report_progress(
            city.ctx,
            city.scjg_clerk,
            lead,
            30,
            "报送",
            attachments=[{"name": "x", "url": "javascript:alert(1)"}],
        )
    assert link.value.code == "invalid_link"
    assert (tree_size(city.ctx), count(city.ctx, ProgressReport)) == before


def test_closure_evidence_is_uploaded_and_served(city: City) -> None:
    _root, lead, _other = tree(city)
    service.report_progress(city.ctx, city.scjg_clerk, lead, 100, "完成")
    before = (tree_size(city.ctx), count(city.ctx, Closure), count(city.ctx, StoredFile))
    with pytest.raises(InvalidInput) as forged:
        closure.request_closure(
            city.ctx, city.scjg_head, lead, [], uploads=[files.Incoming("验收.pdf", PNG)]
        )
    assert forged.value.code == "forged_extension"
    assert (tree_size(city.ctx), count(city.ctx, Closure), count(city.ctx, StoredFile)) == before
    view = closure.request_closure(
        city.ctx, city.scjg_head, lead, [], "验收完毕", uploads=[files.Incoming("验收.pdf", PDF)]
    )
    evidence = view.evidence[0]
    assert evidence["name"] == "验收.pdf" and evidence["media_type"] == files.content.PDF
    _view, data = attachments.read(city.ctx, city.supervisor, lead, evidence["file_id"])
    assert data == PDF


def test_attachments_over_http(world: World) -> None:
    client = world.client
    head, clerk, outsider = world.token("head_a"), world.token("clerk_a"), world.token("clerk_b")
    task = client.post(API, json=body("带附件的任务"), headers=head).json()
    up = client.post("/api/v1/files", files={"file": ("台账.xlsx", XLSX)}, headers=clerk)
    assert up.status_code == 201, up.text
    file_id = up.json()["id"]
    # another user cannot attach the clerk's file by its id
    before = size(world)
    error(
        client.post(
            f"{API}/{task['id']}/progress",
            json={"percent": 10, "text": "x", "attachments": [{"file_id": file_id}]},
            headers=head,
        ),
        422,
        "file_not_uploaded",
    )
    error(
        client.post(
            f"{API}/{task['id']}/progress",
            json={"percent": 10, "text": "x", "attachments": [{"sha256": "a" * 64}]},
            headers=clerk,
        ),
        422,
        "invalid_request",
    )
    assert size(world) == before
    made = client.post(
        f"{API}/{task['id']}/progress",
        json={"percent": 10, "text": "已建台账", "attachments": [{"file_id": file_id}]},
        headers=clerk,
    )
    assert made.status_code == 201, made.text
    url = f"{API}/{task['id']}/files/{file_id}"
    got = client.get(url, headers=head)
    assert got.status_code == 200 and got.content == XLSX
    assert got.headers["content-disposition"].startswith("attachment;")
    error(client.get(url, headers=outsider), 404, "not_found")
    assert client.get(url).status_code == 401


def test_attachments_through_the_pages(city: City) -> None:
    _root, lead, _other = tree(city)
    client = signed_in(city.ctx, "scjg_clerk")
    token = csrf(client.get(f"/tasks/{lead}").text)
    before = (tree_size(city.ctx), count(city.ctx, ProgressReport))
    bad = client.post(
        f"/tasks/{lead}/progress",
        data={"percent": "30", "text": "报送", "csrf_token": token},
        files=[("files", ("照片.pdf", PNG, "application/pdf"))],
    )
    assert bad.status_code == 200 and "与内容（png）不符" in bad.text
    assert (tree_size(city.ctx), count(city.ctx, ProgressReport)) == before
    good = client.post(
        f"/tasks/{lead}/progress",
        data={"percent": "30", "text": "已排查", "csrf_token": token},
        files=[("files", ("排查台账.xlsx", XLSX, "application/octet-stream"))],
    )
    assert good.status_code == 200 and "已报送进展" in good.text
    link = re.search(rf'href="(/tasks/{lead}/files/(\d+))"', good.text)
    assert link is not None and "排查台账.xlsx" in good.text
    assert client.get(link.group(1)).content == XLSX
    english = client.get(f"/tasks/{lead}?lang=en")
    assert english.status_code == 200 and "Files (PDF, JPG, PNG, OFD, DOCX, XLSX" in english.text


def test_retention_keeps_attachments_and_drops_abandoned_uploads(
    city: City, frozen: clock.FrozenClock
) -> None:
    from xietong.kernel.files import retention

    _root, lead, _other = tree(city)
    sent = files.upload(city.ctx, city.scjg_clerk, "台账.pdf", PDF + b"sent")
    service.report_progress(
        city.ctx, city.scjg_clerk, lead, 40, "已排查", attachments=[{"file_id": sent.id}]
    )
    abandoned = files.upload(city.ctx, city.scjg_clerk, "草稿.pdf", PDF + b"never sent")
    with city.ctx.db.read() as session:
        assert attachments.cited_files(session, [sent.id, abandoned.id]) == {sent.id}
    frozen.advance(timedelta(days=city.ctx.settings.files_retention_days + 1))
    assert retention.run_job(city.ctx) == 1  # the row; its bytes wait for their own age
    with city.ctx.db.read() as session:
        assert set(session.scalars(select(StoredFile.id))) == {sent.id}
    _view, data = attachments.read(city.ctx, city.supervisor, lead, sent.id)
    assert data == PDF + b"sent"
