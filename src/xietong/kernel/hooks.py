"""Every extension point of the platform, declared in one place (pluggy hook specs).

Apps plug in by implementing these hooks in their ``plugin.py``; the kernel's own
defaults register the same way. Hook implementations are plain functions marked with
``@hookimpl``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from fastapi import APIRouter
    from sqlalchemy.orm import Session

    from xietong.kernel.access import Actor
    from xietong.kernel.context import Context

PROJECT = "xietong"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def model_modules() -> list[str]:
    """Dotted names of modules defining SQLAlchemy models (imported before migrations)."""


@hookspec
def register_actions() -> None:
    """Declare access-control actions with ``xietong.kernel.access.register_action``."""


@hookspec
def api_routers() -> list[APIRouter]:
    """FastAPI routers mounted under ``/api/v1``."""


@hookspec
def hot_routes() -> list[Any]:
    """Raw ASGI handlers served ahead of the framework under ``/api/v1``, for a route
    machines call at volume (the exchange gateway): ``xietong.api.hot.HotRoute``
    objects (method, path pattern, which requests they take, handler). The framework's
    middleware, routing and dependency injection cost more than such a route's own
    work; the handler does its own parsing, access check and response, and an ordinary
    route of the same path serves whatever it does not take. Keep these few."""


@hookspec
def app_state(state: Any) -> None:
    """Put an app's per-application objects on ``state`` (FastAPI's ``app.state``) when
    it is built: an object created lazily by the first requests could be created twice
    by two of them at once, each with its own counts."""


@hookspec
def web_routers() -> list[APIRouter]:
    """FastAPI routers for HTML pages (server-rendered, zh-CN first)."""


@hookspec
def template_dirs() -> list[str]:
    """Directories of Jinja2 templates, searched after the web layer's own."""


@hookspec
def nav_items(actor: Actor) -> list[dict[str, Any]]:
    """Links for the top navigation and home page: ``{"href", "label_zh", "label_en"}``."""


@hookspec
def event_consumers() -> list[tuple[str, str, Callable[..., None]]]:
    """Event consumers: ``(name, event type or prefix*, handler(ctx, event, session))``.

    The handler runs in the transaction that also records the event as processed by
    ``name``, so a redelivered event takes effect once.
    """


@hookspec
def periodic_jobs() -> list[tuple[str, float, Callable[[Context], int]]]:
    """Worker jobs: ``(name, interval seconds, job(ctx) -> items handled)``."""


@hookspec
def file_references(
    session: Session, file_ids: list[int], digests: list[str]
) -> tuple[set[int], set[str]] | None:
    """Which of these uploads (``file_object`` ids) and blobs (SHA-256 digests) this
    app's records still cite: ``(ids, digests)``. The files retention job deletes old
    uploads no app cites, so an app that keeps file references must answer."""


@hookspec
def cli_apps() -> list[tuple[str, Any]]:
    """Command groups for the ``xietong`` CLI: ``(name, typer.Typer)`` pairs."""


@hookspec
def demo_commands() -> list[tuple[str, Callable[..., Any]]]:
    """Commands under ``xietong demo`` (e.g. ``walkthrough``): ``(name, function)`` pairs,
    each a plain function with Typer parameters, registered with ``Typer.command``."""


@hookspec
def demo_data(ctx: Context) -> None:
    """Load this plugin's demo content; runs after the kernel's demo city."""
