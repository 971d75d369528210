"""Domain errors that every entry point renders the same way.

A service raises ``XietongError`` (or a subclass); the HTTP layer turns it into
``{code, message_zh, message_en, details}`` with ``status``, the CLI prints the
message in the user's language and exits non-zero. Raising before commit means the
unit of work rolls back: bad input changes nothing.
"""

from __future__ import annotations

from typing import Any


class XietongError(Exception):
    status: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        message_zh: str,
        message_en: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message_en)
        self.message_zh = message_zh
        self.message_en = message_en
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message_zh": self.message_zh,
            "message_en": self.message_en,
            "details": self.details,
        }

    def message(self, language: str = "zh-CN") -> str:
        return self.message_zh if language.startswith("zh") else self.message_en


class InvalidInput(XietongError):
    status = 422
    code = "invalid_input"


class NotFound(XietongError):
    status = 404
    code = "not_found"

    @classmethod
    def of(cls, kind_zh: str, kind_en: str, key: object) -> NotFound:
        return cls(f"{kind_zh}不存在：{key}", f"{kind_en} not found: {key}", details={"id": key})


class Conflict(XietongError):
    status = 409
    code = "conflict"


class Unauthenticated(XietongError):
    status = 401
    code = "unauthenticated"

    def __init__(self, message_zh: str = "请先登录", message_en: str = "Login required") -> None:
        super().__init__(message_zh, message_en)


class Forbidden(XietongError):
    status = 403
    code = "forbidden"


class RateLimited(XietongError):
    status = 429
    code = "rate_limited"
