"""A pure ASGI middleware refusing request bodies above a size limit with 413.

A multipart body (a form carrying files) may be as large as ``multipart_bytes`` on any
path: uploads are checked per file by the kernel's files module, which gives a clear
``file_too_large``; JSON and plain forms keep the small limit. A path override wins.

It counts the bytes as they stream in, so a client lying in Content-Length (or sending
chunked data) cannot slip past it; nothing reaches a route once the limit is crossed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    pass


_BODY = json.dumps(
    {
        "code": "payload_too_large",
        "message_zh": "请求体过大",
        "message_en": "Request body too large",
        "details": None,
    },
    ensure_ascii=False,
).encode()


class BodySizeLimit:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        overrides: dict[str, int] | None = None,
        multipart_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.multipart_bytes = multipart_bytes or max_bytes
        self.overrides = sorted((overrides or {}).items(), key=lambda kv: -len(kv[0]))

    def _limit(self, path: str, headers: list[tuple[bytes, bytes]]) -> int:
        for prefix, limit in self.overrides:
            if path.startswith(prefix):
                return limit
        for name, value in headers:
            if name == b"content-type" and value.lower().startswith(b"multipart/form-data"):
                return max(self.multipart_bytes, self.max_bytes)
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope.get("path", ""), scope.get("headers", []))
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _reject(send)
                return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _reject(send)


async def _reject(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(_BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _BODY})
