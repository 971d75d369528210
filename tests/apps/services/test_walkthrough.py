"""The walkthrough drives 出生一件事 through the REST API to delivery."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.apps.services.conftest import build_city
from xietong.app import create_app
from xietong.apps.services import walkthrough
from xietong.kernel.context import Context
from xietong.kernel.org import service


def test_walkthrough_delivers(ctx: Context) -> None:
    city = build_city(ctx)
    service.add_user(ctx, city.op, walkthrough.CITIZEN, "张晓明", "secret-pass")
    lines: list[str] = []
    with TestClient(create_app(ctx)) as client:
        number = walkthrough.run("", "secret-pass", lines.append, client=client)
    assert number.startswith("430100-")
    assert any("签名有效" in line for line in lines)
    assert sum(line.startswith("10. 结果") for line in lines) == 4
