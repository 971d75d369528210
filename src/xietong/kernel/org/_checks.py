"""Small input rules shared by the org commands and the workbook importer.

Each check returns the cleaned value or raises ``InvalidInput`` with a specific code, so
the importer can turn the same exception into a row error that a command would raise.
"""

from __future__ import annotations

import re

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from xietong.kernel.access import ROLE_BY_NAME, Role
from xietong.kernel.errors import Conflict, InvalidInput

# Lower case only: login matches usernames exactly, so "ZhangSan" and "zhangsan" must
# not be able to coexist as two accounts.
USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
REGION_CODE = re.compile(r"\d{6}|\d{9}|\d{12}")
MIN_PASSWORD = 4


def text(value: object, field_zh: str, field_en: str, max_len: int, *, code: str) -> str:
    cleaned = str(value or "").strip()
    if not cleaned:
        raise InvalidInput(f"{field_zh}不能为空", f"{field_en} is required", code=code)
    if len(cleaned) > max_len:
        raise InvalidInput(
            f"{field_zh}过长（最多 {max_len} 个字符）",
            f"{field_en} is too long (at most {max_len} characters)",
            code=code,
        )
    return cleaned


def username(value: object) -> str:
    cleaned = str(value or "").strip()
    if not USERNAME.fullmatch(cleaned):
        raise InvalidInput(
            "用户名须为 2–64 位小写字母、数字、点、下划线或连字符，以字母或数字开头",
            "Username: 2–64 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            code="invalid_username",
        )
    return cleaned


def code(value: object, field_zh: str, field_en: str) -> str:
    cleaned = str(value or "").strip()
    if not CODE.fullmatch(cleaned):
        raise InvalidInput(
            f"{field_zh}须为 1–64 位字母、数字、点、下划线或连字符",
            f"{field_en}: 1–64 letters, digits, '.', '_' or '-'",
            code="invalid_code",
        )
    return cleaned


def region_code(value: object) -> str:
    cleaned = str(value or "").strip()
    if not REGION_CODE.fullmatch(cleaned):
        raise InvalidInput(
            "行政区划代码须为 6 位（街道 9 或 12 位）数字",
            "Region code: 6 digits (9 or 12 for streets)",
            code="invalid_region_code",
        )
    return cleaned


def password(value: object) -> str:
    cleaned = str(value or "")
    if len(cleaned) < MIN_PASSWORD:
        raise InvalidInput(
            f"密码至少 {MIN_PASSWORD} 位",
            f"Password must have at least {MIN_PASSWORD} characters",
            code="weak_password",
        )
    return cleaned


def role(value: object) -> Role:
    """A role by code (``window_clerk``) or Chinese name (``窗口受理``)."""
    found = ROLE_BY_NAME.get(str(value or "").strip())
    if found is None:
        raise InvalidInput(f"未知角色：{value}", f"Unknown role: {value}", code="unknown_role")
    return found


def flush_or_conflict(session: Session, message_zh: str, message_en: str, *, code: str) -> None:
    """Flush; a unique-constraint race lost to a concurrent command becomes a Conflict."""
    try:
        session.flush()
    except IntegrityError as clash:
        raise Conflict(message_zh, message_en, code=code) from clash
