"""The files retention job and 申请材料: a citizen's uploads and an application's
materials are kept however old; bytes nobody cites are deleted."""

from __future__ import annotations

import os

from sqlalchemy import select

from tests.apps.services.conftest import PDF, City
from tests.apps.services.test_flow import apply
from xietong.apps.services import files as materials
from xietong.apps.services.models import ApplicationMaterial
from xietong.kernel import files
from xietong.kernel.files import retention


def test_materials_stay_and_stray_bytes_go(city: City) -> None:
    apply(city)
    # bytes stored for an upload whose transaction then rolled back: nothing cites them
    stray = files.store_blob(city.ctx, PDF + b"rolled back")
    stored = [p.name for p in city.ctx.settings.files_dir.rglob("*") if p.is_file()]
    with city.ctx.db.read() as session:
        used = set(session.scalars(select(ApplicationMaterial.sha256)))
        cited = materials.cited_digests(session, stored)
    assert len(used) == 4 and used <= cited and set(stored) - cited == {stray}
    for sha in stored:
        os.utime(files.blob_path(city.ctx, sha), (0, 0))  # all long before the window
    assert retention.run_job(city.ctx) == 1
    assert not files.blob_path(city.ctx, stray).exists()
    assert all(files.blob_path(city.ctx, sha).exists() for sha in cited)
