"""REST connector: the provider's system answers a small JSON contract over HTTP.

The gateway POSTs ``{"fields": [...], "filters": {field: value}, "limit": n, "offset": k}``
to the configured URL and expects ``{"rows": [{field: value, ...}, ...]}`` back. Secret
headers (``Authorization``, an API key) are stored encrypted and added to each call.

Timeouts bound every call (connect and read, ``timeout_s``, default 5 s). Connection
failures and 502/503/504 answers are retried ``retries`` times (default 2) with a short
exponential backoff; a read timeout is not retried — the provider may still be working
on it, and a retry would only double the consumer's wait.

Two ways in: ``fetch`` (blocking; a client per thread) for the CLI, change polling and
connection tests, and ``afetch`` for the gateway's async route — one pooled
``httpx.AsyncClient`` per event loop, shared by every concurrent query, so a query holds
no thread while the provider works and reuses a keep-alive connection.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from typing import Any

import httpx
from httpx_aiohttp import AiohttpTransport

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
# The async pool: as many connections as concurrent gateway queries are likely to want
# of one provider; beyond that a query waits for a connection (within its timeout).
ASYNC_MAX_CONNECTIONS = 64


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
        self._async: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}

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
            except httpx.TransportError as failed:
                self._give_up_on(failed, attempt)
            else:
                if response.status_code not in RETRY_STATUSES or attempt >= self.retries:
                    return response
            attempt += 1
            time.sleep(0.05 * 2 ** (attempt - 1))

    def _give_up_on(self, failed: httpx.TransportError, attempt: int) -> None:
        """Raise what a transport failure means, unless it is worth another attempt.

        A read (or write, or pool) timeout is not retried: the provider may still be
        working on the request. Not reaching it at all — refused, reset, or a connect
        timeout — is retried, then reported as unavailable. (The aiohttp transport
        reports a refused connection as a ``ConnectTimeout``.)
        """
        if isinstance(failed, httpx.TimeoutException) and not isinstance(
            failed, httpx.ConnectTimeout
        ):
            raise ProviderTimeout(
                "提供方系统响应超时", "The provider's system did not answer in time"
            ) from failed
        if attempt >= self.retries:
            raise ProviderUnavailable(
                f"无法连接提供方系统：{type(failed).__name__}",
                f"Cannot reach the provider's system: {type(failed).__name__}",
            ) from failed

    def async_client(self) -> httpx.AsyncClient:
        """The running loop's shared client (an AsyncClient's connections belong to the
        loop that opened them; tests run several loops in one process)."""
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            timeout_s, headers, transport, context = self._settings
            limits = httpx.Limits(
                max_connections=ASYNC_MAX_CONNECTIONS,
                max_keepalive_connections=ASYNC_MAX_CONNECTIONS,
            )
            if not isinstance(transport, httpx.AsyncBaseTransport):
                transport = AiohttpTransport(verify=context, limits=limits)
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(timeout_s), headers=headers, transport=transport
            )
            with self._lock:
                for old in [each for each in self._async if each.is_closed()]:
                    del self._async[old]  # its loop is gone, and so are its sockets
                self._async[loop] = client
        return client

    async def _apost(self, body: dict[str, Any]) -> httpx.Response:
        attempt = 0
        client = self.async_client()
        while True:
            try:
                response = await client.post(self.url, json=body)
            except httpx.TransportError as failed:
                self._give_up_on(failed, attempt)
            else:
                if response.status_code not in RETRY_STATUSES or attempt >= self.retries:
                    return response
            attempt += 1
            await asyncio.sleep(0.05 * 2 ** (attempt - 1))

    def fetch(self, request: FetchRequest) -> FetchResult:
        return _result(self._post(_body(request)), request.limit)

    async def afetch(self, request: FetchRequest) -> FetchResult:
        return _result(await self._apost(_body(request)), request.limit)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
            shared, self._async = self._async, {}
        for client in clients:
            client.close()
        for loop, aclient in shared.items():
            if not loop.is_closed():  # closed on its own loop, where its sockets live
                asyncio.run_coroutine_threadsafe(aclient.aclose(), loop)


def _body(request: FetchRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "fields": list(request.fields),
        "filters": request.filters,
        "limit": request.limit + 1,
        "offset": request.offset,
    }
    if request.after is not None:
        body["after"] = {"field": request.after[0], "value": request.after[1]}
    return body


def _result(response: httpx.Response, limit: int) -> FetchResult:
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
    return page_of(rows, limit)
