"""Checking a connector's settings, and turning a stored row into a live connector.

What a data steward submits is split in two: ``config`` (URL without credentials,
table name, file name, timeouts — shown back, audited) and ``secret`` (the SQL URL with
its password, HTTP headers carrying tokens — encrypted at rest with AES-256-GCM, never
shown or audited again). Live connectors are cached per (connector id, version): a
connection pool or HTTP client is reused across gateway calls, and an edit (a new
version) retires the old one.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from xietong.apps.exchange.connectors.base import Connector
from xietong.apps.exchange.connectors.files import FileConnector, checked_path, files_root
from xietong.apps.exchange.connectors.rest import RestConnector
from xietong.apps.exchange.connectors.sql import SqlConnector, check_url
from xietong.apps.exchange.sharing_models import CONNECTOR_KINDS
from xietong.apps.exchange.sharing_models import Connector as ConnectorRow
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput

NAME_CHARS = 100


def secret_ad(connector_id: int) -> bytes:
    """Associated data binding a cipher to its row: a copied cipher does not decrypt."""
    return f"exchange.connector:{connector_id}".encode()


@dataclass(frozen=True)
class ConnectorInput:
    kind: str
    config: dict[str, Any]
    secret: dict[str, Any] | None  # None: keep the stored secret
    fields: dict[str, str]


def _bad(zh: str, en: str, code: str = "invalid_connector") -> InvalidInput:
    return InvalidInput(zh, en, code=code)


def _number(config: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = config.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise _bad(f"{key} 应在 {low}–{high} 之间", f"{key} must be between {low} and {high}")
    return float(value)


def _name(value: Any, zh: str, en: str, *, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise _bad(f"请填写{zh}", f"{en} is required")
        return None
    if not isinstance(value, str) or len(value) > NAME_CHARS or not value.strip():
        raise _bad(f"{zh}格式不正确", f"Malformed {en}")
    return value.strip()


def check(data: ConnectorInput, item_names: list[str], has_secret: bool) -> ConnectorInput:
    """The cleaned input, or InvalidInput naming the first problem."""
    if data.kind not in CONNECTOR_KINDS:
        raise _bad(
            "连接器类型应为 rest、sql 或 file",
            "The connector kind must be rest, sql or file",
            "invalid_connector_kind",
        )
    config = dict(data.config or {})
    secret = data.secret
    if data.kind == "rest":
        url = config.get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in {"http", "https"} or not parts.netloc:
            raise _bad("请填写 http(s) 接口地址", "Give the endpoint's http(s) URL")
        if parts.username or parts.password:
            raise _bad(
                "接口地址中不能含账号密码，请放在加密的请求头中",
                "No credentials in the URL: put them in the encrypted headers",
            )
        cleaned = {
            "url": url,
            "timeout_s": _number(config, "timeout_s", 5, 0.1, 60),
            "retries": int(_number(config, "retries", 2, 0, 5)),
        }
        if secret is not None:
            headers = secret.get("headers", {})
            if not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
            ):
                raise _bad("请求头应为文本键值对", "Headers must map text to text")
            secret = {"headers": headers}
    elif data.kind == "sql":
        cleaned = {
            "table": _name(config.get("table"), "表或视图名", "table or view name"),
            "key": _name(config.get("key"), "排序键字段", "key column", required=False),
            "timeout_s": _number(config, "timeout_s", 5, 0.1, 60),
        }
        if secret is not None:
            url = secret.get("url")
            if not isinstance(url, str) or not url.strip():
                raise _bad("请填写数据库连接串", "Give the database URL")
            check_url(url.strip())
            secret = {"url": url.strip()}
        elif not has_secret:
            raise _bad("请填写数据库连接串", "Give the database URL")
    else:
        cleaned = {
            "path": _name(config.get("path"), "文件名", "file name"),
            "sheet": _name(config.get("sheet"), "工作表", "sheet", required=False),
        }
        secret = None
    for key in ("poll_field", "key_field"):
        value = _name(config.get(key), key, key, required=False)
        if value:
            cleaned[key] = value
    fields = {}
    for item, source in (data.fields or {}).items():
        if item not in item_names:
            raise _bad(f"资源没有信息项：{item}", f"The resource has no item {item}")
        fields[item] = _name(source, "源字段名", "source field name")
    return ConnectorInput(data.kind, cleaned, secret, fields)


def encrypt_secret(ctx: Context, connector_id: int, secret: dict[str, Any]) -> bytes:
    return ctx.keys.encrypt(json.dumps(secret).encode("utf-8"), secret_ad(connector_id))


def decrypt_secret(ctx: Context, row: ConnectorRow) -> dict[str, Any]:
    if row.secret_cipher is None:
        return {}
    return json.loads(ctx.keys.decrypt(row.secret_cipher, secret_ad(row.id)))


def build(ctx: Context, row: ConnectorRow) -> Connector:
    config = row.config or {}
    secret = decrypt_secret(ctx, row)
    if row.kind == "rest":
        return RestConnector(
            config["url"],
            timeout_s=config.get("timeout_s", 5),
            retries=config.get("retries", 2),
            headers=secret.get("headers"),
        )
    if row.kind == "sql":
        return SqlConnector(
            secret["url"], config["table"], key=config.get("key"), timeout_s=config["timeout_s"]
        )
    root = files_root(ctx.settings.data_dir)
    return FileConnector(checked_path(root, config["path"]), sheet=config.get("sheet"))


def check_file(ctx: Context, path: str) -> Path:
    return checked_path(files_root(ctx.settings.data_dir), path)


def fingerprint(row: ConnectorRow) -> str:
    """What the live connector was built from. The secret's cipher carries a random
    nonce, so even a rebuilt database reusing ids and versions never matches stale.
    Kept on the (detached, cached) row: the gateway asks for it on every query."""
    known = row.__dict__.get("_xt_fingerprint")
    if known is not None:
        return known
    content = json.dumps([row.kind, row.config, row.version], sort_keys=True).encode()
    digest = hashlib.sha256(content + (row.secret_cipher or b"")).hexdigest()
    row.__dict__["_xt_fingerprint"] = digest
    return digest


class LiveConnectors:
    """Live connectors by (database, row id), rebuilt when the row's settings change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[tuple[str, int], tuple[str, Connector]] = {}
        self._building: dict[tuple[str, int], threading.Lock] = {}

    def peek(self, ctx: Context, row: ConnectorRow) -> Connector | None:
        """The live connector if it is built and current; never blocks (for the event
        loop: building one decrypts secrets and opens pools, so that goes to a thread)."""
        found = self._live.get((ctx.db.url, row.id))
        return found[1] if found is not None and found[0] == fingerprint(row) else None

    def get(self, ctx: Context, row: ConnectorRow) -> Connector:
        key, wanted = (ctx.db.url, row.id), fingerprint(row)
        found = self._live.get(key)
        if found is not None and found[0] == wanted:
            return found[1]
        # One builder per connector: on a cold start many queries arrive at once, and
        # each building its own HTTP client (an SSL context, a pool) would cost seconds.
        with self._lock:
            builder = self._building.setdefault(key, threading.Lock())
        with builder:
            found = self._live.get(key)
            if found is not None and found[0] == wanted:
                return found[1]
            connector = build(ctx, row)
            with self._lock:
                old = self._live.get(key)
                self._live[key] = (wanted, connector)
        if old is not None:
            old[1].close()
        return connector

    async def aclose_sessions(self) -> None:
        """Close the running loop's HTTP sessions of every live connector (the server's
        shutdown: a session left open warns, and its sockets would linger)."""
        with self._lock:
            live = [connector for _, connector in self._live.values()]
        for connector in live:
            aclose = getattr(connector, "aclose", None)
            if aclose is not None:
                await aclose()


LIVE = LiveConnectors()
