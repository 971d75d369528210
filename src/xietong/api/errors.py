"""One error shape for every failure: ``{code, message_zh, message_en, details}``."""

from __future__ import annotations

import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from xietong.kernel.errors import XietongError

_HTTP_MESSAGES: dict[int, tuple[str, str, str]] = {
    404: ("not_found", "资源不存在", "Not found"),
    405: ("method_not_allowed", "不支持该请求方法", "Method not allowed"),
    413: ("payload_too_large", "请求体过大", "Request body too large"),
    415: ("unsupported_media_type", "不支持的内容类型", "Unsupported media type"),
}


def error_body(code: str, zh: str, en: str, details: Any = None) -> dict[str, Any]:
    return {"code": code, "message_zh": zh, "message_en": en, "details": details}


def _clean(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Pydantic errors may carry the offending input and exception objects; keep the
    # location, type and message only (they are for the caller, not for a log).
    return [
        {"loc": list(e.get("loc", ())), "type": e.get("type"), "msg": e.get("msg")} for e in errors
    ]


def wants_html(request: Request) -> bool:
    """Pages get pages; the API (and any client asking for JSON) gets JSON."""
    if request.url.path.startswith("/api/"):
        return False
    return "text/html" in request.headers.get("accept", "")


BUSY_RETRY_AFTER_S = 1
BUSY_BODY = error_body(
    "busy",
    "系统繁忙，请稍后重试（本次操作未生效）",
    "The platform is busy; retry shortly (nothing was changed)",
)
BUSY_HEADERS = {"Retry-After": str(BUSY_RETRY_AFTER_S)}


def _busy() -> JSONResponse:
    return JSONResponse(BUSY_BODY, status_code=503, headers=BUSY_HEADERS)


# The answers below are shared with the hot routes (``api.hot``), which write their
# responses themselves: a client sees the same status, body and headers either way.


def domain_error_parts(exc: XietongError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, body and headers of a domain error's JSON answer."""
    headers = {}
    if exc.status == 429 and isinstance(exc.details, dict):
        headers["Retry-After"] = str(exc.details.get("retry_after_s", 60))
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return exc.status, exc.to_dict(), headers


def validation_error_parts(errors: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """Status and body of a request that failed validation (FastAPI's or a hot route's)."""
    if any(e.get("type") == "json_invalid" for e in errors):
        body = error_body(
            "malformed_json", "请求体不是合法的 JSON", "Malformed JSON body", _clean(errors)
        )
        return 400, body
    return 422, error_body("invalid_request", "请求参数不合法", "Invalid request", _clean(errors))


def is_busy(exc: BaseException) -> bool:
    """A database error that is back-pressure (answered 503 ``busy``), not a bug."""
    if isinstance(exc, SQLAlchemyTimeoutError):
        return True
    return isinstance(exc, OperationalError | sqlite3.OperationalError) and (
        "database is locked" in str(exc)
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(XietongError)
    async def _domain(request: Request, exc: XietongError) -> Response:
        html_error = getattr(app.state, "html_error", None)
        if html_error is not None and wants_html(request):
            return html_error(request, exc)
        status, body, headers = domain_error_parts(exc)
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        status, body = validation_error_parts(list(exc.errors()))
        return JSONResponse(body, status_code=status)

    @app.exception_handler(OperationalError)
    @app.exception_handler(sqlite3.OperationalError)
    async def _database(request: Request, exc: Exception) -> Response:
        # SQLite's writer lock timing out under a burst is back-pressure, not a bug: the
        # transaction was rolled back, so the client may simply try again.
        if not is_busy(exc):
            raise exc
        return _busy()

    @app.exception_handler(SQLAlchemyTimeoutError)
    async def _pool(_request: Request, _exc: SQLAlchemyTimeoutError) -> Response:
        return _busy()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code, zh, en = _HTTP_MESSAGES.get(
            exc.status_code, ("http_error", "请求错误", str(exc.detail))
        )
        html_error = getattr(app.state, "html_error", None)
        if html_error is not None and wants_html(request):
            # A person who followed a stale link sees a page with the navigation, not JSON.
            if exc.status_code == 404:
                zh, en = "页面不存在，可能已被移动或删除", "This page does not exist"
            return html_error(request, XietongError(zh, en, code=code, status=exc.status_code))
        return JSONResponse(error_body(code, zh, en), status_code=exc.status_code)
