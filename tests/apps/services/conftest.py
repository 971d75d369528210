"""A small city for the services tests: the demo's departments, a clerk and a head in
each, two applicants, and the demo catalogue (processes, matters, two bundles)."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

import pytest

from xietong.apps.services import demo
from xietong.kernel.access import Actor, Role, operator_actor
from xietong.kernel.context import Context
from xietong.kernel.org import service
from xietong.kernel.org.scopes import actor_for_user

DEPARTMENTS = {
    "wjw": ("430100-wjw", "长沙市卫生健康委员会"),
    "ga": ("430100-ga", "长沙市公安局"),
    "yb": ("430100-yb", "长沙市医疗保障局"),
    "rs": ("430100-rs", "长沙市人力资源和社会保障局"),
    "scjg": ("430100-scjg", "长沙市市场监督管理局"),
    "sw": ("430100-sw", "国家税务总局长沙市税务局"),
}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.7\n" + b"%" * 64


def ofd() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        # a fixed timestamp: the same bytes (and SHA-256) on every call
        entry = zipfile.ZipInfo("OFD.xml", date_time=(2026, 1, 1, 0, 0, 0))
        archive.writestr(entry, "<ofd:OFD xmlns:ofd='http://www.ofdspec.org/2016'/>")
    return buffer.getvalue()


@dataclass
class City:
    ctx: Context
    op: Actor
    dept: dict[str, int] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)

    def actor(self, username: str) -> Actor:
        from sqlalchemy import select

        from xietong.kernel.org.models import User

        with self.ctx.db.read() as session:
            user = session.scalar(select(User).where(User.username == username))
            return actor_for_user(session, user)


def build_city(ctx: Context) -> City:
    op = operator_actor("test")
    service.create_region(ctx, op, "430000", "湖南省", "province")
    service.create_region(ctx, op, "430100", "长沙市", "city", "430000")
    city = City(ctx, op)
    for key, (code, name) in DEPARTMENTS.items():
        city.dept[key] = service.create_department(ctx, op, code, name, "430100").id
        for suffix, roles in (("clerk", [Role.WINDOW_CLERK]), ("head", [Role.HEAD, Role.APPROVER])):
            user = service.add_user(ctx, op, f"{key}.{suffix}", f"{key}{suffix}", "secret-pass")
            city.users[user.username] = user.id
            for role in roles:
                service.grant_membership(ctx, op, user.id, city.dept[key], role)
    for username in ("citizen", "other"):
        user = service.add_user(
            ctx, op, username, "张晓明" if username == "citizen" else "李红", "secret-pass"
        )
        city.users[username] = user.id
    demo.load_catalogue(ctx, op)
    return city


@pytest.fixture
def city(ctx: Context) -> City:
    return build_city(ctx)


BIRTH_FORM = {
    "baby_name": "张小宝",
    "baby_gender": "男",
    "birth_date": "2026-11-20",
    "birth_place": "湖南省妇幼保健院",
    "mother_name": "李红",
    "mother_id_number": "430103199207082468",
    "father_name": "张晓明",
    "father_id_number": "430102199003151234",
    "household_address": "长沙市芙蓉区五一大道 1 号",
    "guardian_mobile": "13800000001",
    "mailing_address": "长沙市芙蓉区五一大道 1 号",
}
