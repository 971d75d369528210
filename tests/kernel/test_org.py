"""The org module: identity numbers, encryption at rest, users, scopes, delegations, API keys.

Every storage test runs on SQLite and PostgreSQL (the ``ctx`` fixture). 身份证号 here are
fictitious but checksum-valid, made with ``stdnum.cn.ric.calc_check_digit``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from stdnum.cn import ric, uscc

from xietong.kernel import audit, clock
from xietong.kernel.access import Actor, Role
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from xietong.kernel.org import (
    active_delegates_for,
    actor_for_user,
    add_delegation,
    add_user,
    authenticate_api_key,
    create_department,
    create_region,
    deactivate_system,
    deactivate_user,
    department_subtree,
    get_user_by_username,
    grant_membership,
    list_users,
    mask_id_number,
    mask_mobile,
    mask_name,
    normalize_id_number,
    normalize_mobile,
    normalize_uscc,
    register_connected_system,
    register_organization,
    register_person,
    reveal_person_id_number,
    revoke_delegation,
    revoke_membership,
    rotate_system_key,
)
from xietong.kernel.org.models import ConnectedSystem, Person, User
from xietong.kernel.outbox import OutboxEvent
from xietong.plugins import plugin_manager

ADMIN = Actor(kind="user", id=None, name="admin", scopes={Role.ADMIN: frozenset()})


@pytest.fixture(autouse=True)
def _actions() -> None:
    plugin_manager()  # registers the kernel's actions


def id_number(body: str) -> str:
    """A checksum-valid 18-character number from its first 17 digits."""
    return body + ric.calc_check_digit(body + "0")


ZHANG = id_number("43010219900307123")  # fictitious, born 1990-03-07 in 芙蓉区


def tree_size(ctx: Context) -> int:
    with ctx.db.read() as session:
        return audit.tree_size(session)


def seed_regions(ctx: Context) -> None:
    create_region(ctx, ADMIN, "430000", "湖南省", "province")
    create_region(ctx, ADMIN, "430100", "长沙市", "city", "430000")
    create_region(ctx, ADMIN, "430102", "芙蓉区", "county", "430100")
    create_region(ctx, ADMIN, "430103", "天心区", "county", "430100")


def actor_of(ctx: Context, user_id: int) -> Actor:
    with ctx.db.read() as session:
        return actor_for_user(session, session.get(User, user_id))


# --- identity numbers and masking (no storage) ------------------------------------------


def test_id_number_validation_and_masking() -> None:
    assert normalize_id_number(f" {ZHANG} ") == ZHANG
    with_x = next(
        id_number(f"4301021990030712{d}")
        for d in "0123456789"
        if id_number(f"4301021990030712{d}").endswith("X")
    )
    assert normalize_id_number(with_x.lower()) == with_x
    wrong_check = ZHANG[:-1] + ("1" if ZHANG[-1] != "1" else "2")
    bad_date = id_number("43010219901345123")  # month 13
    future = id_number(f"430102{clock.local_now().year + 1}0101123")
    for bad in (wrong_check, bad_date, future, "43010219900307", "", "abc"):
        with pytest.raises(InvalidInput) as caught:
            normalize_id_number(bad)
        assert caught.value.code == "invalid_id_number"
    assert mask_id_number(ZHANG) == ZHANG[:6] + "********" + ZHANG[-4:]
    assert mask_mobile("13812345678") == "138****5678"
    assert [mask_name(n) for n in ("张三", "张小三", "欧阳小明", "李")] == [
        "张*",
        "张*三",
        "欧**明",
        "李",
    ]


def test_uscc_and_mobile_validation() -> None:
    valid = "91110000600037341L"
    assert normalize_uscc("9111 0000-6000 3734 1l") == valid
    body = "91430102MA4L0000"
    made = body + "0"
    made = made + uscc.calc_check_digit(made + "0")
    assert normalize_uscc(made) == made
    for bad in ("91110000600037341A", "12345", "A1110000600037341L", ""):
        with pytest.raises(InvalidInput) as caught:
            normalize_uscc(bad)
        assert caught.value.code == "invalid_uscc"
    assert normalize_mobile("+86 138-1234-5678") == "13812345678"
    for bad in ("12812345678", "1381234567", "138123456789", "phone"):
        with pytest.raises(InvalidInput) as caught:
            normalize_mobile(bad)
        assert caught.value.code == "invalid_mobile"


# --- persons and organisations -----------------------------------------------------------


def test_person_encrypted_at_rest_masked_and_revealed(ctx: Context) -> None:
    view = register_person(ctx, ADMIN, "张三", ZHANG, mobile="13812345678")
    assert view.id_number_masked == mask_id_number(ZHANG)
    assert view.mobile_masked == "138****5678"
    assert view.name_masked == "张*"
    with ctx.db.read() as session:
        row = session.execute(text("SELECT * FROM person")).mappings().one()
        stored = " ".join(
            bytes(value).hex() if isinstance(value, bytes | memoryview) else str(value)
            for value in row.values()
        )
        payloads = " ".join(session.scalars(select(audit.AuditLeaf.payload)))
        events = " ".join(session.scalars(select(OutboxEvent.cloudevent)))
    for plain in (ZHANG, "13812345678"):
        assert plain not in stored
        assert plain.encode().hex() not in stored
        assert plain not in payloads
        assert plain not in events
    clerk = Actor(kind="user", id=7, name="clerk", scopes={Role.WINDOW_CLERK: frozenset({1})})
    before = tree_size(ctx)
    assert reveal_person_id_number(ctx, clerk, view.id, reason="受理核验") == ZHANG
    assert tree_size(ctx) == before + 1  # the reveal itself is audited
    head = Actor(kind="user", id=8, name="head", scopes={Role.HEAD: frozenset({1})})
    with pytest.raises(Forbidden):
        reveal_person_id_number(ctx, head, view.id)
    with pytest.raises(NotFound):
        reveal_person_id_number(ctx, ADMIN, 9999)


def test_person_registration_is_idempotent_and_validated(ctx: Context) -> None:
    first = register_person(ctx, ADMIN, "张三", ZHANG)
    again = register_person(ctx, ADMIN, "张三", ZHANG.replace("X", "x"))
    assert again.id == first.id
    with ctx.db.read() as session:
        assert len(session.scalars(select(Person)).all()) == 1
    before = tree_size(ctx)
    with pytest.raises(InvalidInput) as caught:
        register_person(ctx, ADMIN, "李四", ZHANG[:-1] + ("0" if ZHANG[-1] != "0" else "1"))
    assert caught.value.code == "invalid_id_number"
    assert tree_size(ctx) == before


def test_organization_registration(ctx: Context) -> None:
    org = register_organization(ctx, ADMIN, "某某科技有限公司", "91110000600037341L")
    assert org.uscc == "91110000600037341L"
    assert register_organization(ctx, ADMIN, "某某科技", "91110000600037341l").id == org.id
    before = tree_size(ctx)
    with pytest.raises(InvalidInput) as caught:
        register_organization(ctx, ADMIN, "假公司", "91110000600037341A")
    assert caught.value.code == "invalid_uscc"
    assert tree_size(ctx) == before


# --- regions, departments, users --------------------------------------------------------


def test_region_codes_must_fit_level_and_parent(ctx: Context) -> None:
    seed_regions(ctx)
    create_region(ctx, ADMIN, "430102001", "五里牌街道", "street", "430102")
    cases = [
        (("430104", "岳麓区", "city", "430000"), "invalid_region_code"),
        (("440103", "荔湾区", "county", "430100"), "region_parent_mismatch"),
        (("43010", "错码", "county", None), "invalid_region_code"),
        (("430111", "雨花区", "town", "430100"), "invalid_region_level"),
    ]
    for args, code in cases:
        with pytest.raises(InvalidInput) as caught:
            create_region(ctx, ADMIN, *args)
        assert caught.value.code == code
    with pytest.raises(Conflict):
        create_region(ctx, ADMIN, "430102", "芙蓉区", "county", "430100")
    with pytest.raises(NotFound):
        create_department(ctx, ADMIN, "x", "无区划", "439999")


def test_users_hash_passwords_and_reject_duplicates(ctx: Context) -> None:
    user = add_user(ctx, ADMIN, "zhangsan", "张三", "secret", mobile="13812345678")
    assert user.mobile_masked == "138****5678"
    with ctx.db.read() as session:
        row = session.get(User, user.id)
        assert row.password_hash.startswith("$argon2")
        assert "secret" not in row.password_hash
        assert b"13812345678" not in (row.mobile_cipher or b"")
    before = tree_size(ctx)
    with pytest.raises(Conflict) as caught:
        add_user(ctx, ADMIN, "zhangsan", "另一个张三", "secret")
    assert caught.value.code == "username_taken"
    assert tree_size(ctx) == before
    with ctx.db.read() as session:
        assert len(session.scalars(select(User)).all()) == 1
    for bad, code in (("ZhangSan", "invalid_username"), ("a", "invalid_username")):
        with pytest.raises(InvalidInput) as caught:
            add_user(ctx, ADMIN, bad, "x", "secret")
        assert caught.value.code == code
    with pytest.raises(InvalidInput) as caught:
        add_user(ctx, ADMIN, "lisi", "李四", "abc")
    assert caught.value.code == "weak_password"
    clerk = Actor(kind="user", id=1, name="c", scopes={Role.HEAD: frozenset({1})})
    with pytest.raises(Forbidden):
        add_user(ctx, clerk, "wangwu", "王五", "secret")
    assert tree_size(ctx) == before


# --- scopes and department management ---------------------------------------------------


def build_org(ctx: Context) -> dict[str, int]:
    seed_regions(ctx)
    a = create_department(ctx, ADMIN, "A", "市政务服务局", "430100").id
    a1 = create_department(ctx, ADMIN, "A1", "审批科", "430100", parent_id=a).id
    a11 = create_department(ctx, ADMIN, "A11", "窗口组", "430102", parent_id=a1).id
    b = create_department(ctx, ADMIN, "B", "市公安局", "430100").id
    head = add_user(ctx, ADMIN, "head", "局长", "secret").id
    clerk = add_user(ctx, ADMIN, "clerk", "窗口员", "secret").id
    grant_membership(ctx, ADMIN, head, a, Role.HEAD)
    grant_membership(ctx, ADMIN, clerk, a11, "窗口受理")
    return {"A": a, "A1": a1, "A11": a11, "B": b, "head": head, "clerk": clerk}


def test_scopes_expand_to_sub_departments(ctx: Context) -> None:
    ids = build_org(ctx)
    head = actor_of(ctx, ids["head"])
    assert head.scopes[Role.HEAD] == frozenset({ids["A"], ids["A1"], ids["A11"]})
    assert head.department_ids == frozenset({ids["A"]})
    clerk = actor_of(ctx, ids["clerk"])
    assert clerk.scopes == {Role.WINDOW_CLERK: frozenset({ids["A11"]})}
    with ctx.db.read() as session:
        assert department_subtree(session, ids["A1"]) == {ids["A1"], ids["A11"]}
        assert department_subtree(session, ids["B"]) == {ids["B"]}
    listed = {user.username: user for user in list_users(ctx, head)}
    assert [(m.department_code, m.role) for m in listed["clerk"].memberships] == [
        ("A11", "window_clerk")
    ]
    assert listed["clerk"].memberships[0].role_name_zh == "窗口受理"
    found = get_user_by_username(ctx, "head")
    assert found is not None and found.memberships[0].department_id == ids["A"]


def test_head_manages_only_own_departments(ctx: Context) -> None:
    ids = build_org(ctx)
    head = actor_of(ctx, ids["head"])
    worker = add_user(ctx, ADMIN, "worker", "科员", "secret").id
    grant_membership(ctx, head, worker, ids["A1"], Role.REVIEWER)  # a sub-department: fine
    before = tree_size(ctx)
    with pytest.raises(Forbidden):
        grant_membership(ctx, head, worker, ids["B"], Role.REVIEWER)
    with pytest.raises(Forbidden):
        revoke_membership(ctx, head, ids["clerk"], ids["B"], Role.WINDOW_CLERK)
    with pytest.raises(Forbidden) as caught:
        grant_membership(ctx, head, worker, ids["A1"], Role.AUDITOR)
    assert caught.value.code == "role_needs_admin"
    with pytest.raises(InvalidInput) as unknown:
        grant_membership(ctx, head, worker, ids["A1"], "门卫")
    assert unknown.value.code == "unknown_role"
    with pytest.raises(Conflict):
        grant_membership(ctx, head, worker, ids["A1"], "审核")
    assert tree_size(ctx) == before
    revoke_membership(ctx, head, worker, ids["A1"], Role.REVIEWER)
    assert actor_of(ctx, worker).scopes == {}


def test_deactivated_user_has_no_roles(ctx: Context) -> None:
    ids = build_org(ctx)
    deactivate_user(ctx, ADMIN, ids["head"])
    assert actor_of(ctx, ids["head"]).scopes == {}
    with ctx.db.read() as session:
        types = set(session.scalars(select(OutboxEvent.type)))
    assert {"org.user.created", "org.user.deactivated", "org.membership.granted"} <= types


# --- delegations -------------------------------------------------------------------------


def test_delegation_rules(ctx: Context) -> None:
    ids = build_org(ctx)
    a, b = ids["head"], ids["clerk"]
    c = add_user(ctx, ADMIN, "deputy", "副局长", "secret").id
    t0 = datetime(2025, 3, 1, 9, tzinfo=UTC)
    day = timedelta(days=1)
    head = actor_of(ctx, a)
    first = add_delegation(ctx, head, a, b, t0, t0 + 5 * day, reason="出差")
    before = tree_size(ctx)
    bad_calls = [
        ((a, a, t0, t0 + day), InvalidInput),  # to oneself
        ((a, b, t0 + day, t0), InvalidInput),  # ends before it starts
        ((a, c, t0 + 4 * day, t0 + 9 * day), Conflict),  # overlaps the first
        ((a, 9999, t0 + 10 * day, t0 + 11 * day), NotFound),
    ]
    for args, error in bad_calls:
        with pytest.raises(error):
            add_delegation(ctx, head, *args)
    with pytest.raises(Forbidden):  # someone else's work is not the clerk's to give away
        add_delegation(ctx, actor_of(ctx, b), a, b, t0 + 20 * day, t0 + 21 * day)
    assert tree_size(ctx) == before
    # Another process may overlap; so may a period after the first ends.
    add_delegation(ctx, head, a, c, t0, t0 + 2 * day, process_key="birth")
    add_delegation(ctx, ADMIN, a, c, t0 + 5 * day, t0 + 6 * day)

    def delegates(at: datetime, process_key: str | None = None) -> list[str]:
        with ctx.db.read() as session:
            found = active_delegates_for(session, a, at=at, process_key=process_key)
            return sorted(d.username for d in found)

    assert delegates(t0 + day) == ["clerk"]
    assert delegates(t0 + day, "birth") == ["clerk", "deputy"]
    assert delegates(t0 + 3 * day, "birth") == ["clerk"]
    assert delegates(t0 + 5 * day) == ["deputy"]
    assert delegates(t0 - day) == []
    revoke_delegation(ctx, head, first.id)
    assert delegates(t0 + day) == []
    with pytest.raises(Conflict):
        revoke_delegation(ctx, head, first.id)


# --- connected systems -------------------------------------------------------------------


def test_api_keys(ctx: Context) -> None:
    ids = build_org(ctx)
    head = actor_of(ctx, ids["head"])
    issued = register_connected_system(ctx, head, "A1-approval", "审批系统", ids["A1"], ["审核"])
    key = issued.api_key
    assert key.startswith("xt_") and len(key) >= 40
    assert key not in repr(issued)
    with ctx.db.read() as session:
        row = session.get(ConnectedSystem, issued.system.id)
        assert row.last_used_at is None
        dump = " ".join(
            str(v) for v in session.execute(text("SELECT * FROM connected_system")).one()
        )
    assert key not in dump and key[8:] not in dump

    actor = authenticate_api_key(ctx, key)
    assert actor is not None and actor.kind == "system" and actor.name == "A1-approval"
    assert actor.scopes == {Role.REVIEWER: frozenset({ids["A1"], ids["A11"]})}
    with ctx.db.read() as session:
        assert session.get(ConnectedSystem, issued.system.id).last_used_at is not None
    assert authenticate_api_key(ctx, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert authenticate_api_key(ctx, "not-a-key") is None
    assert authenticate_api_key(ctx, "") is None

    rotated = rotate_system_key(ctx, head, issued.system.id)
    assert authenticate_api_key(ctx, key) is None
    assert authenticate_api_key(ctx, rotated.api_key) is not None
    deactivate_system(ctx, head, issued.system.id)
    assert authenticate_api_key(ctx, rotated.api_key) is None

    with pytest.raises(InvalidInput):
        register_connected_system(ctx, ADMIN, "root", "超级系统", ids["A"], ["admin"])
    with pytest.raises(Forbidden):
        register_connected_system(ctx, head, "b-sys", "他局系统", ids["B"], ["审核"])
    with pytest.raises(Conflict):
        register_connected_system(ctx, head, "A1-approval", "重名", ids["A1"], [])
