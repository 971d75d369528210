"""Hot routes: a few raw ASGI handlers served ahead of the framework (ADR 0065).

A route that machines call at volume — the exchange gateway — spends more CPU in the
framework (middleware, request and response objects, dependency injection, routing)
than in its own work. An app offers such a route through the ``hot_routes`` hook as a
``HotRoute``: a method, a path pattern under ``/api/v1``, a predicate saying which
requests it serves (the gateway: those carrying an API key) and a plain ASGI handler.
``HotRoutes`` is the middleware that dispatches to it. It sits inside the request-size
limit (``BodySizeLimit``: a larger body is refused 413 the same way) and outside
everything else; Starlette's error middleware still answers 500 for an unexpected
exception.

Whatever a hot route does not take goes to the framework, where the same path has an
ordinary route (documented in the OpenAPI schema, with its declared action), so the
two must answer alike: the helpers here reproduce the framework's handling of a JSON
body — FastAPI's content-type rule, its 400 for malformed JSON, the 422 of a pydantic
model's validation with ``body`` locations — and render errors with the same functions
as the installed exception handlers (``api.errors``).
"""

from __future__ import annotations

import email.message
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from xietong.api.errors import BUSY_BODY, BUSY_HEADERS, domain_error_parts, validation_error_parts
from xietong.api.errors import error_body as _error_body
from xietong.api.errors import is_busy as _is_busy
from xietong.kernel.errors import XietongError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
M = TypeVar("M", bound=BaseModel)


def _always(_scope: Scope) -> bool:
    return True


@dataclass(frozen=True)
class HotRoute:
    """``method`` and ``path`` (a regular expression matched against the whole path
    under ``/api/v1``; its named groups become ``scope["path_params"]``); ``takes``
    picks the requests the handler serves, the framework's route gets the others."""

    method: str
    path: str
    app: ASGIApp
    takes: Callable[[Scope], bool] = _always


class HotRoutes:
    """Pure ASGI middleware: a request matching a hot route goes to its handler."""

    def __init__(self, app: ASGIApp, routes: Sequence[HotRoute], prefix: str) -> None:
        self.app = app
        self.prefix = prefix
        self.routes = [
            (route.method, re.compile(re.escape(prefix) + route.path + r"\Z"), route)
            for route in routes
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.routes:
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            if path.startswith(self.prefix):
                method = scope["method"]
                for wanted, pattern, route in self.routes:
                    if method != wanted:
                        continue
                    found = pattern.match(path)
                    if found is not None and route.takes(scope):
                        scope["path_params"] = found.groupdict()
                        await route.app(scope, receive, send)
                        return
        await self.app(scope, receive, send)


# --- what a hot handler needs ---------------------------------------------------------


class Refused(Exception):
    """A request refused before it reached the handler's own work (status and body)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("code"))
        self.status = status
        self.body = body


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a header (``name`` in lower case), like Starlette's ``get``."""
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body; ``None`` if the client went away first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class _Missing:
    pass


MISSING: Any = _Missing()


def _is_json(content_type: bytes) -> bool:
    if content_type in (b"application/json", b"application/json; charset=utf-8"):
        return True
    parsed = email.message.Message()
    parsed["content-type"] = content_type.decode("latin-1")
    if parsed.get_content_maintype() != "application":
        return False
    subtype = parsed.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def json_body(content_type: bytes | None, body: bytes) -> Any:
    """The body as FastAPI reads it for a JSON body parameter: ``MISSING`` when empty,
    the parsed JSON when the content type is JSON, else the raw bytes (which then fail
    validation). Malformed JSON is refused 400 ``malformed_json``, undecodable bytes 400
    ``http_error`` — FastAPI's answers, word for word."""
    if not body:
        return MISSING
    if content_type is None or not _is_json(content_type):
        return body
    try:
        return json.loads(body)
    except json.JSONDecodeError as bad:
        error = {"type": "json_invalid", "loc": ("body", bad.pos), "msg": "JSON decode error"}
        raise Refused(*validation_error_parts([error])) from bad
    except Exception as bad:
        raise Refused(
            400, _error_body("http_error", "请求错误", "There was an error parsing the body")
        ) from bad


def validate(model: type[M], body: Any) -> M:
    """``body`` as ``model``, or 422 ``invalid_request`` with FastAPI's error list."""
    if body is MISSING:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required"}
        raise Refused(*validation_error_parts([missing]))
    try:
        return model.model_validate(body, from_attributes=True)
    except ValidationError as bad:
        errors = [
            {"type": e["type"], "loc": ("body", *e["loc"]), "msg": e["msg"]} for e in bad.errors()
        ]
        raise Refused(*validation_error_parts(errors)) from bad


def dumps(value: Any) -> bytes:
    """JSON as the framework's ``JSONResponse`` renders it (UTF-8, compact), by orjson,
    for a tenth of the CPU. The bytes are the same but for how some floats are spelled
    (``1e16`` for ``1e+16``: the same number); an integer beyond 64 bits, which orjson
    cannot write, goes to ``json``. Unlike ``JSONResponse``, orjson writes a non-finite
    float as ``null`` instead of failing: a hot route must not hand it one."""
    try:
        return orjson.dumps(value)
    except TypeError:
        pass
    return json.dumps(
        value, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


async def send_json(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *headers,
                (b"content-length", str(len(body)).encode()),
                (b"content-type", b"application/json"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_refused(send: Send, refused: Refused) -> None:
    await send_json(send, refused.status, dumps(refused.body))


async def send_error(send: Send, error: BaseException) -> None:
    """The answer the installed exception handlers give ``error``; re-raises anything
    they do not handle (Starlette's error middleware answers 500 and logs it)."""
    if isinstance(error, XietongError):
        status, body, extra = domain_error_parts(error)
    elif _is_busy(error):
        status, body, extra = 503, BUSY_BODY, BUSY_HEADERS
    else:
        raise error
    headers = [(name.lower().encode(), value.encode()) for name, value in extra.items()]
    await send_json(send, status, dumps(body), headers)
