"""The gateway's hot route (ADR 0065) answers as the framework route does, and its parts:
the aiohttp path of the REST connector, the one-pass schema check and masking, and the
digest's fast serialiser."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.apps.exchange.conftest import Sharing, tree_size
from tests.apps.exchange.test_connectors import flaky  # noqa: F401 (the fixture)
from tests.apps.exchange.test_gateway import API, grant, query
from xietong.api.hot import HotRoutes
from xietong.app import create_app
from xietong.apps.exchange import gateway, gateway_http
from xietong.apps.exchange.connectors import rest
from xietong.apps.exchange.connectors.base import (
    FetchRequest,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from xietong.apps.exchange.connectors.rest import RestConnector
from xietong.apps.exchange.demo_provider import ProviderServer
from xietong.apps.exchange.masking import MASKERS
from xietong.apps.exchange.quality import normalise, shape
from xietong.apps.exchange.sharing_models import QueryLog
from xietong.kernel.canonical import canonical_json


@pytest.fixture
def framework(sharing: Sharing) -> Iterator[TestClient]:
    """The same platform served without the hot route: every request goes through
    FastAPI's route, middleware and dependencies."""
    app = create_app(sharing.world.ctx)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not HotRoutes]
    with TestClient(app) as client:
        yield client


def _cases(s: Sharing) -> list[tuple[str, dict[str, Any]]]:
    system = s.system()
    as_json = {**system, "content-type": "application/json"}
    return [
        ("ok", {"json": {"limit": 3}, "headers": system}),
        ("items and filters", {"json": {"items": [" 姓名 "], "limit": 2}, "headers": system}),
        ("limit as text", {"json": {"limit": "2"}, "headers": system}),
        ("no body", {"content": b"", "headers": system}),
        ("malformed JSON", {"content": b'{"limit": ', "headers": as_json}),
        ("not UTF-8", {"content": b'{"items": ["\xff"]}', "headers": as_json}),
        ("no content type", {"content": b'{"limit": 2}', "headers": system}),
        ("a list", {"json": [1, 2], "headers": system}),
        ("null", {"content": b"null", "headers": as_json}),
        (
            "text/plain",
            {"content": b'{"limit": 2}', "headers": {**system, "content-type": "text/plain"}},
        ),
        (
            "json+suffix",
            {
                "content": b'{"limit": 2}',
                "headers": {**system, "content-type": "application/vnd.x+json; charset=utf-8"},
            },
        ),
        ("wrong type", {"json": {"limit": "x"}, "headers": system}),
        ("fraction", {"json": {"limit": 2.5}, "headers": system}),
        ("unknown field", {"json": {"foo": 1}, "headers": system}),
        ("items not a list", {"json": {"items": "姓名"}, "headers": system}),
        ("too many items", {"json": {"items": ["x"] * 501}, "headers": system}),
        ("filters not an object", {"json": {"filters": [1]}, "headers": system}),
        ("page out of range", {"json": {"limit": 0}, "headers": system}),
        ("filter not a value", {"json": {"filters": {"姓名": {"$ne": 1}}}, "headers": system}),
        ("item not granted", {"json": {"items": ["手机号码"]}, "headers": system}),
        ("no client", {"json": {}, "headers": {"X-API-Key": s.system_key}}),
        ("bad client", {"json": {}, "headers": s.system("bad client!")}),
        ("wrong key", {"json": {}, "headers": {"X-API-Key": "xt_nope", "X-Xietong-Client": "a"}}),
        (
            "wrong key, bad JSON",
            {
                "content": b"{",
                "headers": {"X-API-Key": "xt_nope", "content-type": "application/json"},
            },
        ),
        ("wrong key, bad field", {"json": {"foo": 1}, "headers": {"X-API-Key": "xt_nope"}}),
        ("too large", {"content": b"{" + b" " * 3_000_000 + b"}", "headers": as_json}),
    ]


def _seen(response: Any) -> tuple[int, Any, dict[str, str]]:
    body = response.json()
    if isinstance(body, dict):
        body.pop("audit_index", None)
    headers = {
        name: response.headers[name]
        for name in ("content-type", "retry-after", "www-authenticate")
        if name in response.headers
    }
    headers["audit header"] = str("x-xietong-audit-index" in response.headers)
    return response.status_code, body, headers


def test_the_hot_route_answers_as_the_framework_route(
    sharing: Sharing, framework: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = sharing
    grant(s)
    taken: list[type] = []
    real = gateway_http.validate

    def spy(model: Any, body: Any) -> Any:
        taken.append(model)
        return real(model, body)

    monkeypatch.setattr(gateway_http, "validate", spy)
    url = f"{API}/resources/{s.code}/query"
    validated_hot = set()
    for name, request in _cases(s):
        before = len(taken)
        hot = s.world.client.post(url, **request)
        if len(taken) > before:
            validated_hot.add(name)
        before = len(taken)
        slow = framework.post(url, **request)
        assert len(taken) == before  # the framework route has its own validation
        assert _seen(hot) == _seen(slow), name
    unknown = f"{API}/resources/999999/000001/query"
    assert _seen(s.world.client.post(unknown, json={}, headers=s.system())) == _seen(
        framework.post(unknown, json={}, headers=s.system())
    )
    # the hot route served the key holders (a wrong key is refused before validation)
    assert {"ok", "wrong type", "unknown field", "no client"} <= validated_hot
    assert not {"wrong key, bad field", "malformed JSON", "not UTF-8"} & validated_hot


def test_who_the_hot_route_takes(sharing: Sharing, monkeypatch: pytest.MonkeyPatch) -> None:
    s = sharing
    grant(s)
    taken: list[str] = []
    real = gateway_http.json_body

    def spy(content_type: bytes | None, body: bytes) -> Any:
        taken.append("hot")
        return real(content_type, body)

    monkeypatch.setattr(gateway_http, "json_body", spy)
    url = f"{API}/resources/{s.code}/query"
    assert query(s).status_code == 200 and taken == ["hot"]
    # a person's token (even beside a key), no key, another method: the framework route
    person = s.world.client.post(url, json={}, headers={**s.consumer, "X-API-Key": s.system_key})
    assert person.status_code == 403 and person.json()["code"] == "systems_only"
    nobody = s.world.client.post(url, json={}, headers={"X-Xietong-Client": "a"})
    assert nobody.status_code == 401
    assert s.world.client.get(url, headers=s.system()).status_code == 404
    assert taken == ["hot"]


def test_bad_input_through_the_hot_route_changes_nothing(sharing: Sharing) -> None:
    s = sharing
    grant(s)
    before = tree_size(s.world.ctx)
    url = f"{API}/resources/{s.code}/query"
    bad = s.world.client.post(
        url, content=b"{nope", headers={**s.system(), "content-type": "application/json"}
    )
    assert bad.status_code == 400 and bad.json()["code"] == "malformed_json"
    assert bad.json()["message_zh"] and bad.json()["message_en"]
    wrong = s.world.client.post(url, json={}, headers={"X-API-Key": "xt_wrong"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
    assert wrong.json()["message_zh"] == "API 密钥无效"
    unknown = s.world.client.post(f"{API}/resources/1/2/query", json={}, headers=s.system())
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    with s.world.ctx.db.read() as session:
        assert session.scalar(select(QueryLog.id)) is None
    assert tree_size(s.world.ctx) == before


def test_a_slow_provider_is_504_and_audited_through_the_hot_route(sharing: Sharing) -> None:
    s = sharing
    grant(s)
    with ProviderServer([], delay_s=1.5) as server:
        configured = s.world.client.put(
            f"{API}/resources/{s.code}/connector",
            json={"kind": "rest", "config": {"url": server.url, "timeout_s": 0.3, "retries": 2}},
            headers=s.provider,
        )
        assert configured.status_code == 200, configured.text
        answer = query(s)
        calls = server.calls
    assert answer.status_code == 504 and answer.json()["code"] == "provider_timeout"
    assert answer.json()["message_zh"] == "提供方系统响应超时"
    assert calls == 1  # a read timeout is not retried
    index = answer.json()["details"]["audit_index"]
    with s.world.ctx.db.read() as session:
        logged = session.scalar(select(QueryLog).where(QueryLog.audit_index == index))
        assert logged is not None and logged.outcome == "provider_timeout"


# --- the REST connector's aiohttp path --------------------------------------------


def fetch(connector: RestConnector, request: FetchRequest) -> Any:
    """``afetch`` on a loop of its own, the session closed on it."""

    async def once() -> Any:
        try:
            return await connector.afetch(request)
        finally:
            await connector.aclose()

    return asyncio.run(once())


def test_rest_async_retries_then_answers(flaky: tuple[str, dict[str, Any]]) -> None:  # noqa: F811
    url, state = flaky
    state["fail"] = 2
    connector = RestConnector(url, retries=2, headers={"Authorization": "Bearer t0ken"})
    page = fetch(connector, FetchRequest(("xm",)))
    assert page.rows == [{"xm": "张三"}]
    assert state["calls"] == 3 and state["auth"] == "Bearer t0ken"
    state.update(calls=0, fail=5)
    with pytest.raises(ProviderUnavailable) as down:
        fetch(RestConnector(url, retries=1), FetchRequest(("xm",)))
    assert state["calls"] == 2 and "503" in down.value.message_en


def test_rest_async_timeout_and_down(flaky: tuple[str, dict[str, Any]]) -> None:  # noqa: F811
    url, state = flaky
    state["sleep"] = 0.5
    with pytest.raises(ProviderTimeout):
        fetch(RestConnector(url, timeout_s=0.1, retries=2), FetchRequest(("xm",)))
    assert state["calls"] == 1  # a read timeout is not retried
    with pytest.raises(ProviderUnavailable) as down:
        fetch(RestConnector("http://127.0.0.1:9/", retries=1, timeout_s=0.5), FetchRequest(("xm",)))
    assert down.value.message_en == "Cannot reach the provider's system: ConnectError"


def test_rest_async_refuses_oversized_and_malformed_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from xietong.apps.exchange.fake import people

    with ProviderServer(people(50)) as server:
        connector = RestConnector(server.url)
        page = fetch(connector, FetchRequest(("姓名",), {}, 5, 0))
        assert len(page.rows) == 5 and page.has_more
        monkeypatch.setattr(rest, "MAX_RESPONSE_BYTES", 100)
        with pytest.raises(ProviderError) as large:
            fetch(RestConnector(server.url), FetchRequest(("姓名",), {}, 50, 0))
        assert "too large" in large.value.message_en
    not_rows: Any = lambda _page: "not rows"  # noqa: E731
    with ProviderServer([], transform=not_rows) as server, pytest.raises(ProviderError):
        fetch(RestConnector(server.url), FetchRequest(("姓名",)))


# --- one pass over the rows; the digest's serialiser ---------------------------------


def test_shape_reads_checks_and_masks_in_one_pass() -> None:
    rows = [
        {"xm": "欧阳娜娜", "sj": "13812345678", "csrq": "1990-03-07", "extra": 1},
        {"xm": "张三", "sj": None, "csrq": "1990-3-7"},
        {"xm": 42, "csrq": "1990-03-07"},
    ]
    columns = [
        ("姓名", "xm", "string", MASKERS["name"]),
        ("手机号码", "sj", "string", MASKERS["mobile"]),
        ("出生日期", "csrq", "date", None),
    ]
    shaped, problems = shape(rows, columns)
    assert shaped[0] == {"姓名": "欧***", "手机号码": "138****5678", "出生日期": "1990-03-07"}
    assert shaped[1]["手机号码"] is None
    assert shaped[2]["姓名"] == "4*"  # a number for a text item: its text, masked
    assert [(p.row, p.item, p.problem) for p in problems] == [
        (1, "出生日期", "wrong_type"),
        (2, "手机号码", "missing"),
    ]
    # normalise is shape without renaming or masking
    renamed = [{"姓名": r["xm"], "出生日期": r["csrq"]} for r in rows]
    plain, same = normalise(renamed, {"姓名": "string", "出生日期": "date"})
    assert [p.__dict__ for p in same] == [p.__dict__ for p in problems if p.item != "手机号码"]
    assert plain[0] == {"姓名": "欧阳娜娜", "出生日期": "1990-03-07"}


def test_a_non_finite_number_breaks_the_schema() -> None:
    for value in (math.nan, math.inf, "NaN", "-Infinity"):
        _rows, problems = normalise([{"n": value}], {"n": "decimal"})
        assert [p.problem for p in problems] == ["wrong_type"], value


_text = st.text(st.characters(codec="utf-8"), max_size=12)
_value = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), _text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(_text, _value, max_size=6), max_size=6))
def test_the_digest_bytes_are_canonical_json(rows: list[dict[str, Any]]) -> None:
    assert gateway._canonical(rows, floats=False) == canonical_json(rows)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.dictionaries(_text, st.floats(allow_nan=False, allow_infinity=False))))
def test_rows_with_floats_take_canonical_json_itself(rows: list[dict[str, Any]]) -> None:
    assert gateway._canonical(rows, floats=True) == canonical_json(rows)
    assert json.loads(gateway._canonical(rows, floats=True)) == rows
