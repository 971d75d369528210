"""Jinja2 rendering with the platform's globals: language, actor, CSRF token, navigation.

Language: zh-CN unless the user chose English (``?lang=en`` stores it in the session).
Templates call ``t("中文", "English")`` so both texts sit side by side in one place.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader

from xietong.api.deps import current_actor
from xietong.kernel import notify
from xietong.kernel.access import ROLE_NAMES, Actor, Role
from xietong.kernel.errors import Forbidden
from xietong.plugins import plugin_manager

TEMPLATES = Path(__file__).parent / "templates"
CSRF_FIELD = "csrf_token"


def _templates() -> Jinja2Templates:
    dirs = [str(TEMPLATES)]
    for extra in plugin_manager().hook.template_dirs():
        dirs.extend(extra)
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.loader = ChoiceLoader([FileSystemLoader(d) for d in dirs])
    return templates


templates = _templates()


MINUTES = "%Y-%m-%d %H:%M"


def local_time_filter(timezone: str) -> Callable[..., str]:
    """``{{ when|local }}``: an instant shown in the platform's zone (stored in UTC).

    A deadline at 16:30 UTC is the next day in 长沙; showing UTC dates would put every
    evening event on the wrong day. Plain dates are shown as they are.
    """
    zone = ZoneInfo(timezone)

    def local(value: datetime | date | str | None, fmt: str = MINUTES) -> str:
        if value is None:
            return "—"
        if isinstance(value, str):
            # Timestamps inside signed JSON (audit leaves, CloudEvents) are ISO 8601 text.
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                return value
        if isinstance(value, datetime):
            aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
            return aware.astimezone(zone).strftime(fmt)
        return value.strftime("%Y-%m-%d" if fmt == MINUTES else fmt)

    return local


def install_filters(timezone: str) -> None:
    templates.env.filters["local"] = local_time_filter(timezone)


def language(request: Request) -> str:
    chosen = request.query_params.get("lang")
    if chosen in {"zh-CN", "en"}:
        request.session["lang"] = chosen
        return chosen
    return request.session.get("lang", "zh-CN")


def csrf_token(request: Request) -> str:
    token = request.session.get(CSRF_FIELD)
    if not token:
        token = secrets.token_urlsafe(32)
        request.session[CSRF_FIELD] = token
    return token


def check_csrf(request: Request, submitted: str | None) -> None:
    """Forms carry the session's token; a cross-site form cannot know it."""
    expected = request.session.get(CSRF_FIELD)
    header = request.headers.get("x-csrf-token")
    given = submitted or header
    if not expected or not given or not secrets.compare_digest(expected, given):
        raise Forbidden(
            "页面已过期，请刷新后重试",
            "Form expired; reload the page and retry",
            code="csrf_failed",
        )


def role_label(role: Role, lang: str) -> str:
    zh, en = ROLE_NAMES[role]
    return zh if lang == "zh-CN" else en


def nav_for(actor: Actor) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    # pluggy answers last-registered first; the kernel registers first, so reversing
    # puts 我的工作 and 流程 right after 首页 and the apps after them in a stable order.
    for group in reversed(plugin_manager().hook.nav_items(actor=actor)):
        items.extend(group)
    return items


def _unread(request: Request, actor: Actor) -> int | None:
    """The bell's count; None for visitors and machines, which have no inbox."""
    if not actor.is_authenticated or actor.kind != "user":
        return None
    return notify.unread_count(request.app.state.ctx, actor)


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    lang = language(request)
    actor = current_actor(request)

    def t(zh: str, en: str) -> str:
        return zh if lang == "zh-CN" else en

    return templates.TemplateResponse(
        request,
        name,
        {
            "lang": lang,
            "t": t,
            "actor": actor,
            "csrf_token": csrf_token(request),
            "nav": nav_for(actor),  # visitors get the public links (办事, 反映问题)
            "unread_messages": _unread(request, actor),
            "role_label": lambda role: role_label(role, lang),
            **context,
        },
        status_code=status_code,
    )
