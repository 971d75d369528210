"""REST connector: the provider's system answers a small JSON contract over HTTP.

The gateway POSTs ``{"fields": [...], "filters": {field: value}, "limit": n, "offset": k}``
to the configured URL and expects ``{"rows": [{field: value, ...}, ...]}`` back. Secret
headers (``Authorization``, an API key) are stored encrypted and added to each call.

Timeouts bound every call (connect and read, ``timeout_s``, default 5 s). Connection
failures and 502/503/504 answers are retried ``retries`` times (default 2) with a short
exponential backoff; a read timeout is not retried — the provider may still be working
on it, and a retry would only double the consumer's wait.

Two ways in: ``fetch`` (blocking, httpx; a client per thread) for the CLI, change
polling and connection tests, and ``afetch`` for the gateway's async route — one pooled
``aiohttp.ClientSession`` per event loop, shared by every concurrent query, so a query
holds no thread while the provider works and reuses a keep-alive connection. aiohttp is
used directly there (ADR 0065): httpx's request and response models over aiohttp cost
the gateway more CPU than aiohttp's own client. Both ways send the same request and
read the answer by the same rules (``_rows``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx
import orjson
import yarl

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
# Answers are asked for uncompressed: a compressed answer's size says nothing of what
# it unpacks to (32 MB of gzip can be gigabytes). A provider that compresses anyway is
# still read with the cap counted on the unpacked bytes.
PLAIN_ANSWERS = {"Accept-Encoding": "identity"}
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
        self._url = yarl.URL(url)  # parsed once, not on every call
        self.retries = retries
        # One SSL context for all this connector's clients: building one per client
        # (loading the CA bundle) costs tens of milliseconds.
        self._settings = (timeout_s, dict(headers or {}), transport, ssl.create_default_context())
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()
        self._async: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._slots: dict[aiohttp.ClientSession, asyncio.Semaphore] = {}

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
                headers={**headers, **PLAIN_ANSWERS},
                transport=transport,
                verify=context,
                limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def _post(self, body: dict[str, Any]) -> tuple[int, bytes]:
        """The provider's status and body (capped as it streams in), retried."""
        attempt = 0
        while True:
            try:
                with self.client.stream("POST", self.url, json=body) as response:
                    status = response.status_code
                    if status not in RETRY_STATUSES or attempt >= self.retries:
                        return status, _capped(response.iter_bytes())
            except httpx.TransportError as failed:
                self._give_up_on(failed, attempt)
            attempt += 1
            time.sleep(0.05 * 2 ** (attempt - 1))

    def _give_up_on(self, failed: httpx.TransportError, attempt: int) -> None:
        """Raise what a transport failure means, unless it is worth another attempt.

        A read (or write, or pool) timeout is not retried: the provider may still be
        working on the request. Not reaching it at all — refused, reset, or a connect
        timeout — is retried, then reported as unavailable.
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

    def _session(self) -> aiohttp.ClientSession:
        """The running loop's shared session (its connections belong to the loop that
        opened them; tests run several loops in one process)."""
        loop = asyncio.get_running_loop()
        session = self._async.get(loop)
        if session is None:
            timeout_s, headers, _transport, context = self._settings
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=ASYNC_MAX_CONNECTIONS, limit_per_host=0, ssl=context
                ),  # never waited on: ``_slot`` admits no more than its limit
                # sock_connect: opening a connection (a failure to is retried);
                # sock_read: each wait for the provider's bytes — as httpx's
                # Timeout(timeout_s) does. Waiting for a free pooled connection is
                # bounded apart (``_slot``), since it is not a failure to connect.
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=None, sock_connect=timeout_s, sock_read=timeout_s
                ),
                headers={**headers, **PLAIN_ANSWERS, "Content-Type": "application/json"},
                skip_auto_headers=("User-Agent",),
                # a provider's cookies are not part of the contract; a jar that keeps
                # none also spares the per-request cookie filtering
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            with self._lock:
                for old in [each for each in self._async if each.is_closed()]:
                    # its loop is gone, and so are its sockets
                    self._slots.pop(self._async.pop(old), None)
                self._async[loop] = session
                self._slots[session] = asyncio.Semaphore(ASYNC_MAX_CONNECTIONS)
        return session

    async def _apost(self, body: dict[str, Any]) -> tuple[int, bytes]:
        """The provider's status and body, retried as ``_post`` retries."""
        try:
            payload = orjson.dumps(body)
        except TypeError:  # an integer beyond 64 bits in a filter
            payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        session = self._session()
        attempt = 0
        while True:
            try:
                # no redirects: the secret headers must not follow a provider's 3xx to
                # another host, and the blocking path (httpx) does not follow them either
                async with (
                    self._slot(session),
                    session.post(self._url, data=payload, allow_redirects=False) as response,
                ):
                    status = response.status
                    if status not in RETRY_STATUSES or attempt >= self.retries:
                        return status, await _read(response)
            except aiohttp.ConnectionTimeoutError as failed:  # never reached it: retried
                self._give_up_on_async(failed, attempt)
            except TimeoutError as failed:  # a read timeout: the provider may be at it
                raise ProviderTimeout(
                    "提供方系统响应超时", "The provider's system did not answer in time"
                ) from failed
            except aiohttp.ClientError as failed:  # refused, reset, dropped: retried
                self._give_up_on_async(failed, attempt)
            attempt += 1
            await asyncio.sleep(0.05 * 2 ** (attempt - 1))

    @contextlib.asynccontextmanager
    async def _slot(self, session: aiohttp.ClientSession) -> AsyncIterator[None]:
        """One of the pool's connections, waited for at most ``timeout_s``; a wait that
        runs out is a timeout (the provider is busy with this platform's other
        queries), not retried — as httpx's pool timeout is not."""
        slots = self._slots[session]
        try:
            async with asyncio.timeout(self._settings[0]):
                await slots.acquire()
        except TimeoutError:
            raise ProviderTimeout(
                "提供方系统繁忙，等待连接超时",
                "The provider's system is busy: no connection came free in time",
            ) from None
        try:
            yield
        finally:
            slots.release()

    def _give_up_on_async(self, failed: Exception, attempt: int) -> None:
        if attempt >= self.retries:
            name = _FAILURE_NAMES.get(type(failed), type(failed).__name__)
            raise ProviderUnavailable(
                f"无法连接提供方系统：{name}", f"Cannot reach the provider's system: {name}"
            ) from failed

    def fetch(self, request: FetchRequest) -> FetchResult:
        status, content = self._post(_body(request))
        return _rows(status, content, request.limit)

    async def afetch(self, request: FetchRequest) -> FetchResult:
        status, content = await self._apost(_body(request))
        return _rows(status, content, request.limit)

    async def aclose(self) -> None:
        """Close the running loop's session (its sockets belong to this loop: at the
        server's shutdown, or at the end of a test's loop)."""
        with self._lock:
            session = self._async.pop(asyncio.get_running_loop(), None)
            if session is not None:
                self._slots.pop(session, None)
        if session is not None:
            await session.close()

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
            shared, self._async = self._async, {}
            self._slots = {}
        for client in clients:
            client.close()
        for loop, session in shared.items():
            if not loop.is_closed():  # closed on its own loop, where its sockets live
                asyncio.run_coroutine_threadsafe(session.close(), loop)


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


# How a refused or dropped connection is named to the consumer: the blocking client's
# (httpx) names, so the message is the same whichever way the query went.
_FAILURE_NAMES: dict[type[Exception], str] = {
    aiohttp.ConnectionTimeoutError: "ConnectTimeout",
    aiohttp.ClientConnectorError: "ConnectError",
    aiohttp.ServerDisconnectedError: "RemoteProtocolError",
}


def _too_large() -> ProviderError:
    return ProviderError("提供方返回的数据过大", "The provider's answer is too large")


def _capped(chunks: Iterator[bytes]) -> bytes:
    """The decoded body, refused once it passes ``MAX_RESPONSE_BYTES`` (never read whole)."""
    kept, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise _too_large()
        kept.append(chunk)
    return b"".join(kept)


async def _read(response: aiohttp.ClientResponse) -> bytes:
    """The decoded body, refused once it passes ``MAX_RESPONSE_BYTES``. A declared
    length is trusted only for an uncompressed answer: it counts the bytes sent."""
    length = response.content_length
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if length is not None and encoding == "identity":
        if length > MAX_RESPONSE_BYTES:
            raise _too_large()
        return await response.read()
    kept, size = [], 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise _too_large()
        kept.append(chunk)
    return b"".join(kept)


def _rows(status: int, content: bytes, limit: int) -> FetchResult:
    if status in RETRY_STATUSES:
        raise ProviderUnavailable(
            f"提供方系统不可用（HTTP {status}）",
            f"The provider's system is unavailable (HTTP {status})",
        )
    if status != 200:
        raise ProviderError(
            f"提供方系统返回错误（HTTP {status}）",
            f"The provider's system answered HTTP {status}",
        )
    if len(content) > MAX_RESPONSE_BYTES:
        raise ProviderError("提供方返回的数据过大", "The provider's answer is too large")
    try:
        rows = json.loads(content)["rows"]
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
