"""Connectors against real things: a SQLite file and a PostgreSQL table, a local HTTP
provider, real CSV and XLSX files; credentials encrypted; failures typed and audited."""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from openpyxl import Workbook
from sqlalchemy import create_engine, select, text

from tests.apps.exchange.conftest import Sharing, people_table, tree_size
from tests.apps.exchange.test_gateway import grant, query
from tests.conftest import PG_ADMIN_URL, postgres_available, require
from xietong.apps.exchange.connectors import rest
from xietong.apps.exchange.connectors.base import (
    FetchRequest,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from xietong.apps.exchange.connectors.files import FileConnector
from xietong.apps.exchange.connectors.rest import RestConnector
from xietong.apps.exchange.connectors.sql import SqlConnector
from xietong.apps.exchange.demo_provider import ProviderServer
from xietong.apps.exchange.sharing_models import Connector, QueryLog
from xietong.kernel import audit

API = "/api/v1/exchange"
FIELDS = ("xm", "sfzh", "csrq")


# --- SQL ------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, list[Any]]]:
    if request.param == "sqlite":
        path = tmp_path / "provider.db"
        yield f"sqlite:///{path}", people_table(path)
        return
    require(postgres_available(), "PostgreSQL is not reachable")
    from xietong.apps.exchange.fake import people

    rows = people(30)
    schema = f"provider_{uuid.uuid4().hex[:8]}"
    engine = create_engine(PG_ADMIN_URL)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
        conn.execute(
            text(
                f"CREATE TABLE {schema}.people (id INTEGER PRIMARY KEY, xm TEXT, sfzh TEXT,"
                " csrq TEXT, sjhm TEXT, dz TEXT)"
            )
        )
        conn.execute(
            text(f"INSERT INTO {schema}.people VALUES (:id, :xm, :sfzh, :csrq, :sjhm, :dz)"),
            [
                {
                    "id": r["id"],
                    "xm": r["姓名"],
                    "sfzh": r["公民身份号码"],
                    "csrq": r["出生日期"],
                    "sjhm": r["手机号码"],
                    "dz": r["户籍地址"],
                }
                for r in rows
            ],
        )
    yield f"{PG_ADMIN_URL}#{schema}", rows
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


def _connector(source: str) -> SqlConnector:
    url, _, schema = source.partition("#")
    return SqlConnector(url, f"{schema}.people" if schema else "people", key="id")


def test_sql_pages_filters_and_refuses_unknown_columns(sql_source: tuple[str, list[Any]]) -> None:
    source, rows = sql_source
    connector = _connector(source)
    try:
        page = connector.fetch(FetchRequest(FIELDS, {}, 10, 5))
        assert [r["sfzh"] for r in page.rows] == [r["公民身份号码"] for r in rows[5:15]]
        assert page.has_more
        last = connector.fetch(FetchRequest(FIELDS, {}, 10, 25))
        assert len(last.rows) == 5 and not last.has_more
        one = connector.fetch(FetchRequest(FIELDS, {"sfzh": rows[3]["公民身份号码"]}, 10, 0))
        assert [r["xm"] for r in one.rows] == [rows[3]["姓名"]]
        for evil in ("' OR '1'='1", "x'; DROP TABLE people; --"):
            assert connector.fetch(FetchRequest(FIELDS, {"xm": evil}, 10, 0)).rows == []
        with pytest.raises(ProviderError):
            connector.fetch(FetchRequest(("xm", "password"), {}, 10, 0))
        with pytest.raises(ProviderError):  # an identifier is never SQL: it must be a column
            connector.fetch(FetchRequest(("xm",), {"1=1 OR xm": "a"}, 10, 0))
        assert len(connector.fetch(FetchRequest(("id",), {}, 100, 0)).rows) == 30
    finally:
        connector.close()


def test_sql_connection_is_read_only(sql_source: tuple[str, list[Any]]) -> None:
    connector = _connector(sql_source[0])
    try:
        table = connector.table()
        with pytest.raises(Exception) as refused, connector.engine.connect() as conn:
            conn.execute(table.delete())
            conn.commit()
        assert "read" in str(refused.value).lower()
        assert len(connector.fetch(FetchRequest(("id",), {}, 100, 0)).rows) == 30
    finally:
        connector.close()


def test_sql_missing_table_and_unreachable_database(tmp_path: Path) -> None:
    people_table(tmp_path / "p.db")
    with pytest.raises(ProviderError):
        SqlConnector(f"sqlite:///{tmp_path / 'p.db'}", "nope").fetch(FetchRequest(("a",)))
    with pytest.raises(ProviderUnavailable):
        SqlConnector(f"sqlite:///{tmp_path / 'absent.db'}", "people").fetch(FetchRequest(("a",)))


# --- REST -----------------------------------------------------------------------------


class _Flaky(BaseHTTPRequestHandler):
    """Answers 503 ``fail`` times, then rows; or sleeps ``sleep`` seconds."""

    protocol_version = "HTTP/1.1"
    state: ClassVar[dict[str, Any]] = {}

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/elsewhere":  # a redirect's target: it must never be reached
            self.state["followed"] = self.headers.get("Authorization")
        self.state["calls"] = self.state.get("calls", 0) + 1
        self.state["auth"] = self.headers.get("Authorization")
        self.state["accept_encoding"] = self.headers.get("Accept-Encoding")
        if self.state.get("sleep"):
            time.sleep(self.state["sleep"])
        headers: dict[str, str] = {}
        if self.state["calls"] <= self.state.get("fail", 0):
            status, body = 503, b"{}"
        elif self.state.get("redirect") and self.path != "/elsewhere":
            status, body = 307, b""
            headers["Location"] = "/elsewhere"
        else:
            status, body = 200, json.dumps({"rows": [{"xm": "张三"}]}).encode()
        if self.state.get("bomb"):  # small on the wire, large unpacked, sent regardless
            body = gzip.compress(b'{"rows": [' + b" " * self.state["bomb"] + b"]}")
            headers["Content-Encoding"] = "gzip"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def flaky() -> Iterator[tuple[str, dict[str, Any]]]:
    state: ClassVar[dict[str, Any]] = {}
    handler = type("Handler", (_Flaky,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", state
    server.shutdown()
    server.server_close()


def test_rest_retries_then_answers(flaky: tuple[str, dict[str, Any]]) -> None:
    url, state = flaky
    state["fail"] = 2
    connector = RestConnector(url, retries=2, headers={"Authorization": "Bearer t0ken"})
    assert connector.fetch(FetchRequest(("xm",))).rows == [{"xm": "张三"}]
    assert state["calls"] == 3 and state["auth"] == "Bearer t0ken"
    state.update(calls=0, fail=5)
    with pytest.raises(ProviderUnavailable):
        RestConnector(url, retries=1).fetch(FetchRequest(("xm",)))
    assert state["calls"] == 2


def test_rest_timeout_and_down(flaky: tuple[str, dict[str, Any]]) -> None:
    url, state = flaky
    state["sleep"] = 0.5
    connector = RestConnector(url, timeout_s=0.1, retries=2)
    with pytest.raises(ProviderTimeout):
        connector.fetch(FetchRequest(("xm",)))
    time.sleep(0.6)
    assert state["calls"] == 1  # a read timeout is not retried
    with pytest.raises(ProviderUnavailable):
        RestConnector("http://127.0.0.1:9/", retries=1, timeout_s=0.5).fetch(FetchRequest(("xm",)))


def test_rest_follows_no_redirect_and_caps_unpacked_answers(
    flaky: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider's 3xx is an error on both paths: the secret headers never follow it to
    another address. A compressed answer is refused by its unpacked size, not by the
    bytes on the wire; answers are asked for uncompressed in the first place."""
    from tests.apps.exchange.test_gateway_hot import fetch

    url, state = flaky
    secret = {"Authorization": "Bearer s3cret"}
    state["redirect"] = True
    for read in (RestConnector.fetch, fetch):
        with pytest.raises(ProviderError) as moved:
            read(RestConnector(url, headers=secret), FetchRequest(("xm",)))
        assert "HTTP 307" in moved.value.message_en
    assert "followed" not in state and state["accept_encoding"] == "identity"
    state.update(redirect=False, bomb=5_000_000)  # about 5 KB of gzip
    monkeypatch.setattr(rest, "MAX_RESPONSE_BYTES", 100_000)
    for read in (RestConnector.fetch, fetch):
        with pytest.raises(ProviderError) as large:
            read(RestConnector(url), FetchRequest(("xm",)))
        assert "too large" in large.value.message_en


def test_rest_async_waiting_for_a_busy_pool_is_a_timeout_not_retried(
    flaky: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state = flaky
    state["sleep"] = 0.4
    monkeypatch.setattr(rest, "ASYNC_MAX_CONNECTIONS", 1)
    connector = RestConnector(url, timeout_s=0.2, retries=3)

    async def two_at_once() -> list[Any]:
        try:
            request = FetchRequest(("xm",))
            return await asyncio.gather(
                connector.afetch(request), connector.afetch(request), return_exceptions=True
            )
        finally:
            await connector.aclose()

    first, second = asyncio.run(two_at_once())
    # the first reached the provider and timed out reading; the second never got a
    # connection: a timeout saying so, not "cannot reach" after retries
    assert isinstance(first, ProviderTimeout) and isinstance(second, ProviderTimeout)
    assert "busy" in second.message_en
    time.sleep(0.5)
    assert state["calls"] == 1


def test_rest_against_the_demo_provider() -> None:
    from xietong.apps.exchange.fake import people

    with ProviderServer(people(12)) as server:
        connector = RestConnector(server.url)
        page = connector.fetch(FetchRequest(("姓名", "出生日期"), {}, 5, 10))
        assert len(page.rows) == 2 and not page.has_more
        assert set(page.rows[0]) == {"姓名", "出生日期"}


# --- files ----------------------------------------------------------------------------


def _write_files(root: Path, rows: list[dict[str, Any]]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    names = ["id", "姓名", "公民身份号码", "出生日期"]
    with (root / "people.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        writer.writerows([[r[n] for n in names] for r in rows])
    book = Workbook()
    sheet = book.active
    sheet.title = "人口"
    sheet.append(names)
    for r in rows:
        sheet.append([r[n] for n in names])
    book.save(root / "people.xlsx")


@pytest.mark.parametrize("name", ["people.csv", "people.xlsx"])
def test_files_stream_pages_and_filters(tmp_path: Path, name: str) -> None:
    from xietong.apps.exchange.fake import people

    rows = people(25)
    _write_files(tmp_path, rows)
    connector = FileConnector(tmp_path / name, sheet="人口" if name.endswith("xlsx") else None)
    page = connector.fetch(FetchRequest(("姓名", "出生日期"), {}, 10, 20))
    assert [r["姓名"] for r in page.rows] == [r["姓名"] for r in rows[20:]]
    assert not page.has_more
    hit = connector.fetch(FetchRequest(("姓名",), {"id": 4}, 10, 0))
    assert hit.rows == [{"姓名": rows[3]["姓名"]}]
    with pytest.raises(ProviderError):
        connector.fetch(FetchRequest(("不存在",)))


# --- through the service and the gateway ----------------------------------------------


def test_secret_is_encrypted_and_never_audited(sharing: Sharing, tmp_path: Path) -> None:
    s = sharing
    with s.world.ctx.db.read() as session:
        row = session.scalar(select(Connector))
        cipher = row.secret_cipher
        connector_id = row.id
        leaves = [leaf.payload for leaf in session.scalars(select(audit.AuditLeaf))]
    assert cipher is not None and b"provider.db" not in cipher and b"sqlite" not in cipher
    assert not any("provider.db" in payload for payload in leaves)
    shown = s.world.client.get(f"{API}/resources/{s.code}/connector", headers=s.provider).json()
    assert shown["has_secret"] is True and "secret" not in shown and "url" not in shown["config"]
    # the cipher is bound to its row: moved to another connector id it does not decrypt
    from cryptography.exceptions import InvalidTag

    from xietong.apps.exchange.connectors.settings import secret_ad

    with pytest.raises(InvalidTag):
        s.world.ctx.keys.decrypt(cipher, secret_ad(connector_id + 1))
    # the consumer may not read or change the provider's connector
    assert (
        s.world.client.get(f"{API}/resources/{s.code}/connector", headers=s.consumer).status_code
        == 403
    )


def test_test_connection_reports_and_records(sharing: Sharing, tmp_path: Path) -> None:
    s = sharing
    ok = s.world.client.post(f"{API}/resources/{s.code}/connector/test", headers=s.provider)
    assert ok.status_code == 200 and ok.json()["ok"] is True, ok.text
    broken = s.world.client.put(
        f"{API}/resources/{s.code}/connector",
        json={
            "kind": "sql",
            "config": {"table": "people"},
            "fields": {"姓名": "no_such"},
            "secret": {"url": f"sqlite:///{tmp_path / 'provider.db'}"},
        },
        headers=s.provider,
    )
    assert broken.status_code == 200
    failed = s.world.client.post(f"{API}/resources/{s.code}/connector/test", headers=s.provider)
    assert failed.json()["ok"] is False and "no_such" in failed.json()["message_en"]
    shown = s.world.client.get(f"{API}/resources/{s.code}/connector", headers=s.provider).json()
    assert shown["test_ok"] is False


def test_bad_connector_settings_change_nothing(sharing: Sharing) -> None:
    s = sharing
    before = tree_size(s.world.ctx)
    for body in (
        {"kind": "ftp"},
        {"kind": "rest", "config": {"url": "file:///etc/passwd"}},
        {"kind": "rest", "config": {"url": "http://user:pw@host/"}},
        {"kind": "rest", "config": {"url": "http://host/", "timeout_s": 999}},
        {"kind": "sql", "config": {"table": "people"}, "secret": {"url": "mysql://x/y"}},
        {"kind": "file", "config": {"path": "../keys/signing.pem"}},
        {"kind": "file", "config": {"path": "../../etc/passwd.csv"}},
        {
            "kind": "sql",
            "config": {"table": "people"},
            "fields": {"不存在": "x"},
            "secret": {"url": "sqlite:///x.db"},
        },
    ):
        answer = s.world.client.put(
            f"{API}/resources/{s.code}/connector", json=body, headers=s.provider
        )
        assert answer.status_code == 422, (body, answer.text)
    assert tree_size(s.world.ctx) == before


def test_provider_down_is_504_and_audited(sharing: Sharing) -> None:
    s = sharing
    grant(s)
    configured = s.world.client.put(
        f"{API}/resources/{s.code}/connector",
        json={
            "kind": "rest",
            "config": {"url": "http://127.0.0.1:9/", "retries": 0, "timeout_s": 1},
        },
        headers=s.provider,
    )
    assert configured.status_code == 200
    answer = query(s)
    assert answer.status_code == 504 and answer.json()["code"] == "provider_unavailable"
    index = answer.json()["details"]["audit_index"]
    with s.world.ctx.db.read() as session:
        payload = json.loads(audit.get_leaf(session, index).payload)
        outcome = session.scalar(select(QueryLog.outcome))
    assert payload["outcome"] == "provider_unavailable" and outcome == "provider_unavailable"


def test_provider_breaking_the_schema_is_502_and_logged(sharing: Sharing) -> None:
    s = sharing
    grant(s)
    rows = [{"姓名": "张三", "公民身份号码": "430102199003071234", "出生日期": "1990-03-07"}]
    broken = [
        [{**rows[0], "出生日期": "不是日期"}],
        [{"姓名": "张三", "出生日期": "1990-03-07"}],  # an item missing
        [{**rows[0], "姓名": {"nested": True}}],
    ]
    for answer_rows in broken:
        with ProviderServer(answer_rows, transform=lambda page, r=answer_rows: r) as server:
            s.world.client.put(
                f"{API}/resources/{s.code}/connector",
                json={"kind": "rest", "config": {"url": server.url}},
                headers=s.provider,
            )
            answer = query(s)
        assert answer.status_code == 502, answer.text
        assert answer.json()["code"] == "provider_schema_mismatch"
        assert answer.json()["details"]["problems"]
    with s.world.ctx.db.read() as session:
        outcomes = list(session.scalars(select(QueryLog.outcome)))
    assert outcomes == ["quality_failure"] * 3


def test_the_demo_provider_checks_the_token_before_reading_a_body() -> None:
    import socket

    def raw(port: int, headers: str) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(f"POST / HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
            return conn.recv(4096)

    with ProviderServer([], token="s3cret") as server:
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        # no body is sent: a server reading the announced gigabyte first would block
        assert raw(port, "Content-Length: 1000000000\r\n").startswith(b"HTTP/1.1 401")
        auth = "Authorization: Bearer s3cret\r\n"
        assert raw(port, auth + "Content-Length: 1000000000\r\n").startswith(b"HTTP/1.1 413")
        assert raw(port, auth + "Content-Length: -5\r\n").startswith(b"HTTP/1.1 400")
        assert server.calls == 0
