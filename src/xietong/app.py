"""The ASGI application: REST API under /api/v1, HTML pages, static files."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.middleware.sessions import SessionMiddleware

from xietong import __version__
from xietong.api import audit as audit_api
from xietong.api import auth as auth_api
from xietong.api import calendar as calendar_api
from xietong.api import errors
from xietong.api import files as files_api
from xietong.api import notify as notify_api
from xietong.api import org as org_api
from xietong.api import webhooks as webhooks_api
from xietong.api import workflow as workflow_api
from xietong.api.deps import allow
from xietong.api.hot import HotRoutes
from xietong.api.limits import BodySizeLimit
from xietong.config import Settings, get_settings
from xietong.kernel.context import Context, open_context
from xietong.plugins import load_models, plugin_manager

API_PREFIX = "/api/v1"
STATIC = Path(__file__).parent / "web" / "static"


def create_app(ctx: Context | None = None, settings: Settings | None = None) -> FastAPI:
    """Build the application around an open context (one per process)."""
    load_models()
    manager = plugin_manager()
    if ctx is None:
        ctx = open_context(settings or get_settings(), hooks=manager.hook)
    if ctx.hooks is None:
        ctx.hooks = manager.hook
    app = FastAPI(
        title="xietong 协同 API",
        version=__version__,
        description="跨部门协同政务平台 — cross-department government collaboration",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.ctx = ctx
    manager.hook.app_state(state=app.state)
    errors.install(app)

    api = APIRouter(prefix=API_PREFIX)
    api.include_router(auth_api.router)
    api.include_router(audit_api.router)
    api.include_router(org_api.router)
    api.include_router(calendar_api.router)
    api.include_router(webhooks_api.router)
    api.include_router(notify_api.router)
    api.include_router(files_api.router)
    api.include_router(workflow_api.router)
    for routers in manager.hook.api_routers():
        for router in routers:
            api.include_router(router)
    app.include_router(api)

    @app.get("/healthz", tags=["health"], dependencies=[Depends(allow("platform.health"))])
    def healthz() -> dict[str, str]:
        with ctx.db.read() as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    from xietong.web import notify as notify_pages
    from xietong.web import pages
    from xietong.web import workflow as workflow_pages
    from xietong.web.rendering import install_filters

    app.include_router(pages.router)
    app.include_router(workflow_pages.router)
    app.include_router(notify_pages.router)
    app.state.html_error = pages.html_error
    install_filters(ctx.settings.timezone)
    for routers in manager.hook.web_routers():
        for router in routers:
            app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    app.add_middleware(
        SessionMiddleware,
        secret_key=ctx.keys.session.hex(),
        session_cookie="xietong_session",
        max_age=ctx.settings.session_ttl_s,
        same_site="lax",
        https_only=False,
    )
    # Inside the body-size limit, outside the sessions and the framework (ADR 0065).
    hot = [route for routes in manager.hook.hot_routes() for route in routes]
    if hot:
        app.add_middleware(HotRoutes, routes=hot, prefix=API_PREFIX)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=ctx.settings.max_body_bytes,
        overrides={
            f"{API_PREFIX}/org/import": org_api.MAX_XLSX_BYTES,
            f"{API_PREFIX}/exchange/import": 20 * 1024 * 1024,
            f"{API_PREFIX}/workflow/definitions": 10 * 1024 * 1024,
        },
        multipart_bytes=files_api.MAX_UPLOAD_BODY,
    )
    return app
