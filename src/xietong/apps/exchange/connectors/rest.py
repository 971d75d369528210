"""REST connector: the provider's system answers a small JSON contract over HTTP.

The gateway POSTs ``{"fields": [...], "filters": {field: value}, "limit": n, "offset": k}``
to the configured URL and expects ``{"rows": [{field: value, ...}, ...]}`` back. Secret
headers (``Authorization``, an API key) are stored encrypted and added to each call.

Timeouts bound every call (connect and read, ``timeout_s``, default 5 s). Connection
failures and 502/503/504 answers are retried ``retries`` times (default 2) with a short
exponential backoff; a read timeout is not retried — the provider may still be working
on it, and a retry would only double the consumer's wait.
"""

from __future__ import annotations

import ssl
import threading
import time
from typing import Any

import httpx

from xietong.apps.exchange.connectors.base import (
    FetchRequest,
    FetchResult,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    page_of,
)

RETRY_STATUSES = {502, 503, 504}
MAX_RESPONSE_BYTES = 32 * 1024 * 1024


class RestConnector:
    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        retries: int = 2,
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self.retries = retries
        # One SSL context for all this connector's clients: building one per client
        # (loading the CA bundle) costs tens of milliseconds.
        self._settings = (timeout_s, dict(headers or {}), transport, ssl.create_default_context())
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        """This thread's client. With one shared client the gateway's threads queue on
        its connection pool's lock (sampled stacks under load showed most of them
        there); a client per thread, each with its own keep-alive connection, does not."""
        client = getattr(self._local, "client", None)
        if client is None:
            timeout_s, headers, transport, context = self._settings
            client = httpx.Client(
                timeout=httpx.Timeout(timeout_s),
                headers=headers,
                transport=transport,
                verify=context,
                limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self.client.post(self.url, json=body)
            except httpx.TimeoutException as slow:
                raise ProviderTimeout(
                    "提供方系统响应超时", "The provider's system did not answer in time"
                ) from slow
            except httpx.TransportError as down:
                if attempt >= self.retries:
                    raise ProviderUnavailable(
                        f"无法连接提供方系统：{type(down).__name__}",
                        f"Cannot reach the provider's system: {type(down).__name__}",
                    ) from down
            else:
                if response.status_code not in RETRY_STATUSES or attempt >= self.retries:
                    return response
            attempt += 1
            time.sleep(0.05 * 2 ** (attempt - 1))

    def fetch(self, request: FetchRequest) -> FetchResult:
        body = {
            "fields": list(request.fields),
            "filters": request.filters,
            "limit": request.limit + 1,
            "offset": request.offset,
        }
        if request.after is not None:
            body["after"] = {"field": request.after[0], "value": request.after[1]}
        response = self._post(body)
        if response.status_code in RETRY_STATUSES:
            raise ProviderUnavailable(
                f"提供方系统不可用（HTTP {response.status_code}）",
                f"The provider's system is unavailable (HTTP {response.status_code})",
            )
        if response.status_code != 200:
            raise ProviderError(
                f"提供方系统返回错误（HTTP {response.status_code}）",
                f"The provider's system answered HTTP {response.status_code}",
            )
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise ProviderError("提供方返回的数据过大", "The provider's answer is too large")
        try:
            rows = response.json()["rows"]
        except (ValueError, KeyError, TypeError) as bad:
            raise ProviderError(
                '提供方返回的不是约定格式 {"rows": [...]}',
                'The provider\'s answer is not the agreed {"rows": [...]}',
            ) from bad
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise ProviderError(
                "提供方返回的 rows 不是对象列表", "The provider's rows are not a list of objects"
            )
        return page_of(rows, request.limit)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
