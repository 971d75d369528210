"""A hotline world: 长沙市 with two districts, three departments, the routing table,
people in each role, the 12345 call-centre system with its API key, a frozen clock on a
working Tuesday, and a deterministic stand-in for the trained model."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from xietong.app import create_app
from xietong.apps.hotline import _model, dispatch
from xietong.apps.hotline._model import Guess
from xietong.apps.hotline.models import Ticket
from xietong.kernel import audit, clock
from xietong.kernel.access import Role, operator_actor
from xietong.kernel.clock import CST
from xietong.kernel.context import Context
from xietong.kernel.org import service
from xietong.kernel.org.systems import register_connected_system

ADMIN = operator_actor("test")
# a Tuesday in office hours, in the past: PyJWT checks "iat" against the real clock
START = datetime(2026, 11, 3, 10, 0, tzinfo=CST)
MODEL_VERSION = "test-model-1"


def fake_predict(items: Sequence[dict[str, str]]) -> list[Guess]:
    """Keyword rules standing in for the model: confident on noise and building,
    unsure (not auto) on wages — so both dispatch paths are exercised."""
    out = []
    for item in items:
        joined = item["title"] + item["text"]
        if "噪音" in joined or "油烟" in joined:
            top = [("环境保护", 0.99), ("城乡建设", 0.006), ("交通运输", 0.004)]
        elif "工资" in joined:
            top = [("劳动和社会保障", 0.62), ("商贸旅游", 0.3), ("城乡建设", 0.08)]
        else:
            top = [("城乡建设", 0.985), ("环境保护", 0.01), ("交通运输", 0.005)]
        category, confidence = top[0]
        out.append(Guess(category, confidence, confidence >= 0.95, top, MODEL_VERSION))
    return out


@dataclass
class Hotline:
    client: TestClient
    ctx: Context
    frozen: clock.FrozenClock
    api_key: dict[str, str]

    def login(self, username: str) -> dict[str, str]:
        response = self.client.post(
            "/api/v1/auth/token", json={"username": username, "password": "secret"}
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def tickets(self) -> int:
        with self.ctx.db.read() as session:
            return session.scalar(select(func.count()).select_from(Ticket)) or 0

    def audit_size(self) -> int:
        with self.ctx.db.read() as session:
            return audit.tree_size(session)

    def ticket(self, number: str) -> Ticket:
        with self.ctx.db.read() as session:
            row = session.scalar(select(Ticket).where(Ticket.number == number))
            assert row is not None
            session.expunge(row)
            return row

    def submit(self, **fields: object) -> dict:
        body = {"text": "小区门口路灯坏了一个月没人修", "contact_phone": "13900001111"}
        body.update(fields)
        response = self.client.post("/api/v1/hotline/tickets", json=body, headers=self.api_key)
        assert response.status_code in (200, 201), response.text
        return response.json()


@pytest.fixture
def hotline(ctx: Context) -> Iterator[Hotline]:
    frozen = clock.FrozenClock(START)
    previous = clock.use_clock(frozen)
    _model.use_predictor(fake_predict)
    try:
        service.create_region(ctx, ADMIN, "430000", "湖南省", "province")
        service.create_region(ctx, ADMIN, "430100", "长沙市", "city", "430000")
        service.create_region(ctx, ADMIN, "430104", "岳麓区", "county", "430100")
        service.create_region(ctx, ADMIN, "430111", "雨花区", "county", "430100")
        zj = service.create_department(ctx, ADMIN, "zj", "住建局", "430100", short_name="市住建局")
        yl = service.create_department(
            ctx, ADMIN, "yl-zj", "岳麓区住建局", "430104", short_name="岳麓区住建局"
        )
        hb = service.create_department(ctx, ADMIN, "hb", "生态环境局", "430100")
        rs = service.create_department(ctx, ADMIN, "rs", "人社局", "430100")
        rx = service.create_department(ctx, ADMIN, "rx", "12345热线中心", "430100")
        for username, dept, roles in [
            ("admin", rx.id, [Role.ADMIN]),
            ("dispatcher", rx.id, [Role.DISPATCHER]),
            ("supervisor", rx.id, [Role.SUPERVISOR]),
            ("zj_clerk", zj.id, [Role.WINDOW_CLERK]),
            ("yl_clerk", yl.id, [Role.WINDOW_CLERK]),
            ("hb_clerk", hb.id, [Role.WINDOW_CLERK]),
            ("rs_clerk", rs.id, [Role.WINDOW_CLERK]),
        ]:
            user = service.add_user(ctx, ADMIN, username, username.upper(), "secret")
            for role in roles:
                service.grant_membership(ctx, ADMIN, user.id, dept, role)
        for category, code in [("城乡建设", "zj"), ("环境保护", "hb"), ("劳动和社会保障", "rs")]:
            dispatch.set_route(ctx, ADMIN, category=category, department_code=code)
        dispatch.set_route(
            ctx, ADMIN, category="城乡建设", department_code="yl-zj", district_code="430104"
        )
        issued = register_connected_system(
            ctx, ADMIN, "12345-callcentre", "12345话务系统", rx.id, [Role.DISPATCHER]
        )
        app = create_app(ctx)
        with TestClient(app) as client:
            yield Hotline(client, ctx, frozen, {"X-API-Key": issued.api_key})
    finally:
        _model.use_predictor(None)
        clock.use_clock(previous)
