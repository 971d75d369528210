"""The gateway end to end over HTTP: request, grant, query, masking, audit receipt."""

from __future__ import annotations

import base64
from datetime import date, timedelta

from sqlalchemy import func, select

from tests.apps.exchange.conftest import Sharing, drain, tree_size
from xietong.apps.exchange.receipts import verify_receipt
from xietong.apps.exchange.sharing_models import Grant, QueryLog
from xietong.kernel.keys import Keys

API = "/api/v1/exchange"


def request_body(code: str, items: list[str] | None = None) -> dict[str, object]:
    return {
        "resource_code": code,
        "items": items or ["姓名", "公民身份号码", "出生日期"],
        "purpose": "出生一件事：核验父母身份",
        "legal_basis": "《湖南省政务数据资源管理办法》第二十条",
        "valid_until": (date.today() + timedelta(days=90)).isoformat(),
    }


def grant(s: Sharing, items: list[str] | None = None) -> dict[str, object]:
    made = s.world.client.post(
        f"{API}/requests", json=request_body(s.code, items), headers=s.consumer
    )
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "approved"
    return made.json()


def query(s: Sharing, body: dict[str, object] | None = None, **headers: str):
    return s.world.client.post(
        f"{API}/resources/{s.code}/query", json=body or {}, headers={**s.system(), **headers}
    )


def test_unconditional_grant_and_masked_query_with_verifiable_receipt(sharing: Sharing) -> None:
    s = sharing
    made = grant(s)
    assert made["grant_id"] is not None
    answer = query(s, {"limit": 5})
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["items"] == ["姓名", "公民身份号码", "出生日期"]
    assert data["masked"] == {"姓名": "name", "公民身份号码": "id_number"}
    assert len(data["rows"]) == 5 and data["has_more"] is True
    first, real = data["rows"][0], s.rows[0]
    assert set(first) == {"姓名", "公民身份号码", "出生日期"}  # only granted items
    assert first["出生日期"] == real["出生日期"]
    assert (
        first["公民身份号码"] == real["公民身份号码"][:6] + "********" + real["公民身份号码"][-4:]
    )
    assert first["姓名"][0] == real["姓名"][0] and set(first["姓名"][1:]) == {"*"}
    index = int(answer.headers["X-Xietong-Audit-Index"])
    assert index == data["audit_index"]

    receipt = s.world.client.get(f"{API}/receipts/{index}", headers=s.system())
    assert receipt.status_code == 200, receipt.text
    payload = verify_receipt(
        receipt.json(), Keys.load(s.world.ctx.settings.keys_dir).public_key_raw
    )
    assert payload["consumer_system"] == "dept-b-sys"
    assert payload["client"] == "dept-b/population-check"
    assert payload["row_count"] == 5 and payload["outcome"] == "ok"
    assert payload["response_sha256"] == data["response_sha256"]
    assert payload["purpose"] == "出生一件事：核验父母身份"

    # the auditor's audit API serves the same leaf with a proof that verifies too
    auditor = s.world.token("auditor")
    head = s.world.client.get("/api/v1/audit/tree-head", headers=auditor).json()
    proof = s.world.client.get(
        "/api/v1/audit/proofs/inclusion",
        params={"index": index, "tree_size": head["tree_size"]},
        headers=auditor,
    ).json()
    leaf = s.world.client.get(f"/api/v1/audit/entries/{index}", headers=auditor).json()
    verify_receipt(
        {
            "index": index,
            "leaf": leaf["leaf"],
            "payload": leaf["payload"],
            "tree_head": head,
            "proof": proof["proof"],
        },
        base64.b64decode(head["public_key"]),
    )

    # a tampered payload or proof fails
    bad = dict(receipt.json(), payload=receipt.json()["payload"].replace("ok", "no"))
    try:
        verify_receipt(bad, base64.b64decode(head["public_key"]))
    except ValueError:
        pass
    else:
        raise AssertionError("a tampered payload verified")


def test_filters_paging_and_injection(sharing: Sharing) -> None:
    s = sharing
    grant(s)
    target = s.rows[7]
    found = query(s, {"filters": {"公民身份号码": target["公民身份号码"]}})
    assert found.status_code == 200, found.text
    assert len(found.json()["rows"]) == 1
    assert found.json()["rows"][0]["出生日期"] == target["出生日期"]
    page2 = query(s, {"limit": 10, "offset": 10}).json()
    assert [r["出生日期"] for r in page2["rows"]] == [r["出生日期"] for r in s.rows[10:20]]
    for evil in ("' OR '1'='1", "1; DROP TABLE people; --", "%", '" OR 1=1 --'):
        answer = query(s, {"filters": {"姓名": evil}})
        assert answer.status_code == 200 and answer.json()["rows"] == []
    assert len(query(s, {"limit": 1000}).json()["rows"]) == len(s.rows)  # table intact


def test_denials_change_nothing(sharing: Sharing) -> None:
    s = sharing
    before = tree_size(s.world.ctx)
    no_grant = query(s)
    assert no_grant.status_code == 403 and no_grant.json()["code"] == "no_grant"
    grant(s)
    before = tree_size(s.world.ctx)
    cases = [
        ({"items": ["手机号码"]}, {}, 403, "items_not_granted"),
        ({"filters": {"手机号码": "13800000000"}}, {}, 403, "items_not_granted"),
        ({"limit": 0}, {}, 422, "invalid_page"),
        ({"limit": 5000}, {}, 422, "invalid_page"),
        ({"filters": {"姓名": {"$ne": 1}}}, {}, 422, "invalid_filter"),
        ({}, {"X-Xietong-Client": ""}, 422, "client_required"),
        ({}, {"X-Xietong-Client": "bad client!"}, 422, "client_required"),
    ]
    for body, headers, status, code in cases:
        answer = query(s, body, **headers)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["code"] == code
    unknown = s.world.client.post(
        f"{API}/resources/999999/000001/query", json={}, headers=s.system()
    )
    assert unknown.status_code == 404
    person = s.world.client.post(f"{API}/resources/{s.code}/query", json={}, headers=s.consumer)
    assert person.status_code == 403 and person.json()["code"] == "systems_only"
    wrong_key = s.world.client.post(
        f"{API}/resources/{s.code}/query", json={}, headers={"X-API-Key": "xt_nope"}
    )
    assert wrong_key.status_code == 401
    assert tree_size(s.world.ctx) == before


def test_revoked_and_expired_grants(sharing: Sharing) -> None:
    s = sharing
    made = grant(s)
    assert query(s).status_code == 200
    revoked = s.world.client.post(
        f"{API}/grants/{made['grant_id']}/revoke", json={"reason": "用途已完成"}, headers=s.provider
    )
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert query(s).json()["code"] == "no_grant"
    # the consumer cannot revoke (only the provider manages grants)
    again = s.world.client.post(f"{API}/requests", json=request_body(s.code), headers=s.consumer)
    grant_id = again.json()["grant_id"]
    refused = s.world.client.post(
        f"{API}/grants/{grant_id}/revoke", json={"reason": "x"}, headers=s.consumer
    )
    assert refused.status_code == 403
    with s.world.ctx.db.write_session() as session, session.begin():
        row = session.get_one(Grant, grant_id)
        row.valid_from = date.today() - timedelta(days=30)
        row.valid_until = date.today() - timedelta(days=1)
    expired = query(s)
    assert expired.status_code == 403 and expired.json()["code"] == "grant_expired"


def test_rate_limit_answers_429_with_retry_after(sharing: Sharing) -> None:
    s = sharing
    made = grant(s)
    limited = s.world.client.put(
        f"{API}/grants/{made['grant_id']}/rate-limit",
        json={"rate_per_minute": 3},
        headers=s.provider,
    )
    assert limited.status_code == 200, limited.text
    codes = [query(s).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    last = query(s)
    assert last.status_code == 429 and int(last.headers["Retry-After"]) >= 1
    bad = s.world.client.put(
        f"{API}/grants/{made['grant_id']}/rate-limit",
        json={"rate_per_minute": 0},
        headers=s.provider,
    )
    assert bad.status_code == 422


def test_conditional_request_goes_through_the_workflow(sharing: Sharing) -> None:
    from tests.apps.exchange.conftest import publish_people

    s = sharing
    code = publish_people(s.world, s.provider, "conditional")
    made = s.world.client.post(f"{API}/requests", json=request_body(code), headers=s.consumer)
    assert made.status_code == 201, made.text
    request = made.json()
    assert request["status"] == "pending" and request["process_instance_id"]
    again = s.world.client.post(f"{API}/requests", json=request_body(code), headers=s.consumer)
    assert again.status_code == 409 and again.json()["code"] == "request_pending"
    inbox = s.world.client.get(f"{API}/requests", params={"role": "provider"}, headers=s.provider)
    pending = [r for r in inbox.json() if r["id"] == request["id"]]
    assert pending and pending[0]["task_id"]
    # the consumer cannot decide its own request
    self_approve = s.world.client.post(
        f"{API}/requests/{request['id']}/decision",
        json={"approve": True, "opinion": "同意"},
        headers=s.consumer,
    )
    assert self_approve.status_code == 403
    decided = s.world.client.post(
        f"{API}/requests/{request['id']}/decision",
        json={"approve": True, "opinion": "同意，限出生一件事使用"},
        headers=s.provider,
    )
    assert decided.status_code == 200, decided.text
    drain(s.world.ctx)
    drain(s.world.ctx)  # a redelivery changes nothing
    done = s.world.client.get(f"{API}/requests/{request['id']}", headers=s.consumer).json()
    assert done["status"] == "approved" and done["opinion"] == "同意，限出生一件事使用"
    assert done["grant_id"] is not None
    with s.world.ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Grant)) == 1


def test_conditional_refusal_and_not_shared(sharing: Sharing) -> None:
    from tests.apps.exchange.conftest import publish_people

    s = sharing
    code = publish_people(s.world, s.provider, "conditional")
    request = s.world.client.post(
        f"{API}/requests", json=request_body(code), headers=s.consumer
    ).json()
    s.world.client.post(
        f"{API}/requests/{request['id']}/decision",
        json={"approve": False, "opinion": "用途与共享条件不符"},
        headers=s.provider,
    )
    drain(s.world.ctx)
    done = s.world.client.get(f"{API}/requests/{request['id']}", headers=s.consumer).json()
    assert done["status"] == "refused" and done["opinion"] == "用途与共享条件不符"
    assert done["grant_id"] is None

    closed = publish_people(s.world, s.provider, "not_shared")
    refused = s.world.client.post(f"{API}/requests", json=request_body(closed), headers=s.consumer)
    assert refused.status_code == 201
    assert refused.json()["status"] == "refused"
    assert "个人信息保护法" in refused.json()["opinion"]


def test_bad_requests_change_nothing(sharing: Sharing) -> None:
    s = sharing
    before = tree_size(s.world.ctx)
    cases = [
        (request_body(s.code, ["不存在的项"]), 422, "unknown_items"),
        ({**request_body(s.code), "purpose": " "}, 422, "purpose_required"),
        ({**request_body(s.code), "valid_until": "2000-01-01"}, 422, "invalid_period"),
        ({**request_body(s.code), "resource_code": "999999/000001"}, 404, "not_found"),
    ]
    for body, status, code in cases:
        answer = s.world.client.post(f"{API}/requests", json=body, headers=s.consumer)
        assert answer.status_code == status, answer.text
        assert answer.json()["code"] == code
    own = s.world.client.post(f"{API}/requests", json=request_body(s.code), headers=s.provider)
    assert own.status_code == 422 and own.json()["code"] == "own_resource"
    assert tree_size(s.world.ctx) == before


def test_query_log_counts(sharing: Sharing) -> None:
    s = sharing
    grant(s)
    for _ in range(3):
        assert query(s).status_code == 200
    with s.world.ctx.db.read() as session:
        rows = [(r.outcome, r.audit_index, r.row_count) for r in session.scalars(select(QueryLog))]
    assert [outcome for outcome, _, _ in rows] == ["ok"] * 3
    assert all(index >= 0 and count == 30 for _, index, count in rows)


def test_concurrent_queries_share_commits_and_each_gets_its_own_leaf(sharing: Sharing) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from xietong.apps.exchange import gateway
    from xietong.kernel import audit
    from xietong.kernel.org.systems import authenticate_api_key

    s = sharing
    grant(s)
    ctx = s.world.ctx
    actor = authenticate_api_key(ctx, s.system_key)
    assert actor is not None

    def one(number: int) -> tuple[int, str]:
        answer = gateway.query(
            ctx, actor, s.code, f"client-{number}", gateway.GatewayQuery(None, {}, 2, number)
        )
        return answer.audit_index, answer.response_sha256

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(24)))
    indexes = [index for index, _ in results]
    assert len(set(indexes)) == 24
    with ctx.db.read() as session:
        logged = {row.audit_index: row.client for row in session.scalars(select(QueryLog))}
        for number, (index, digest) in enumerate(results):
            assert logged[index] == f"client-{number}"
            payload = __import__("json").loads(audit.get_leaf(session, index).payload)
            assert payload["client"] == f"client-{number}"
            assert payload["response_sha256"] == digest


def test_an_external_partys_system_cannot_use_its_departments_grants(sharing: Sharing) -> None:
    from tests.apps.exchange.conftest import operator_actor
    from xietong.kernel.org.systems import register_connected_system

    s = sharing
    grant(s)
    outsider = register_connected_system(
        s.world.ctx,
        operator_actor("test"),
        "dept-b-bank",
        "乙局外部银行",
        s.world.dept_b,
        ["external"],
    ).api_key
    before = tree_size(s.world.ctx)
    for path, method in (
        (f"{API}/resources/{s.code}/query", "post"),
        (f"{API}/receipts/1", "get"),
        (f"{API}/requests", "get"),
    ):
        headers = {"X-API-Key": outsider, "X-Xietong-Client": "dept-b/bank"}
        if method == "post":
            answer = s.world.client.post(path, json={}, headers=headers)
        else:
            answer = s.world.client.get(path, headers=headers)
        assert answer.status_code == 403, (path, answer.text)
    assert tree_size(s.world.ctx) == before
    assert query(s).status_code == 200  # the department's own system still queries
