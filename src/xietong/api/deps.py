"""Request dependencies: the context, the acting principal, and each route's action.

Every API route declares the action it performs with ``Depends(allow("<action>"))``;
a test walks the route table and fails on a route without one. The check here is the
coarse one (role held at all); the service function checks the resource's department.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from xietong.kernel.access import ANONYMOUS, Actor, authorize, get_action
from xietong.kernel.auth import (
    actor_from_token,
    actor_from_user_id,
    remembered_actor_from_token,
)
from xietong.kernel.concurrency import load_once
from xietong.kernel.context import Context
from xietong.kernel.errors import Unauthenticated
from xietong.plugins import plugin_manager


def get_ctx(request: Request) -> Context:
    return request.app.state.ctx


async def request_ctx(request: Request) -> Context:
    """``get_ctx`` for routes on a hot path: FastAPI runs a plain ``def`` dependency in
    the thread pool, a hop that costs more than the dependency does."""
    return request.app.state.ctx


def current_actor(request: Request) -> Actor:
    """Bearer token, then API key, then web session; anonymous otherwise."""
    cached = getattr(request.state, "actor", None)
    if cached is not None:
        return cached
    ctx = get_ctx(request)
    actor = ANONYMOUS
    authorization = request.headers.get("authorization", "")
    api_key = request.headers.get("x-api-key")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("认证头格式错误", "Malformed Authorization header")
        actor = actor_from_token(ctx, token.strip())
    elif api_key:
        from xietong.kernel.org.systems import authenticate_api_key

        found = authenticate_api_key(ctx, api_key)
        if found is None:
            raise Unauthenticated("API 密钥无效", "Invalid API key")
        actor = found
    elif "session" in request.scope:
        user_id = request.session.get("user_id")
        if isinstance(user_id, int):
            actor = actor_from_user_id(ctx, user_id) or ANONYMOUS
    request.state.actor = actor
    return actor


def _remembered_actor(request: Request) -> Actor | None:
    """The actor of a well-formed bearer token when it needs no I/O (ADR 0063)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None  # no token, a key, a session or a malformed header: current_actor
    return remembered_actor_from_token(get_ctx(request), token.strip())


class allow:
    """Dependency declaring (and coarsely checking) the action a route performs.

    Asynchronous so that a request whose actor is remembered (ADR 0063) is checked on
    the event loop; only a lookup goes to the thread pool (``current_actor``)."""

    def __init__(self, action: str) -> None:
        plugin_manager()  # actions are declared by the kernel and app plugins
        get_action(action)  # fail at import time on an undeclared action
        self.action = action

    async def __call__(self, request: Request) -> Actor:
        actor = getattr(request.state, "actor", None)
        if actor is None:
            actor = _remembered_actor(request)
            if actor is None:
                actor = await run_in_threadpool(current_actor, request)
            request.state.actor = actor
        authorize(actor, self.action)
        return actor


ActorDep = Callable[[Request], Actor]


class allow_async(allow):
    """``allow`` for ``async`` routes on a hot path: no thread-pool hop when the caller's
    API key was authenticated moments ago (``cached_api_key_actor``); a key to look up
    is looked up once for all the calls that need it (``load_once``); a remembered
    token's actor is checked here too (``allow``); anything else goes through
    ``current_actor`` in a thread."""

    async def __call__(self, request: Request) -> Actor:
        actor = getattr(request.state, "actor", None)
        if actor is None:
            api_key = request.headers.get("x-api-key")
            if api_key and not request.headers.get("authorization"):
                actor = await api_key_actor(get_ctx(request), api_key)
            if actor is None:
                actor = _remembered_actor(request)
            if actor is None:
                actor = await run_in_threadpool(current_actor, request)
            request.state.actor = actor
        authorize(actor, self.action)
        return actor


async def api_key_actor(ctx: Context, api_key: str) -> Actor:
    """The connected system holding ``api_key``, for async callers: no I/O when this
    process authenticated it moments ago (``cached_api_key_actor``), else one lookup in
    a thread for all the calls that missed together (``load_once``). A wrong or disabled
    key raises ``Unauthenticated`` (401)."""
    from xietong.kernel.org.systems import authenticate_api_key, cached_api_key_actor, key_digest

    actor = cached_api_key_actor(ctx, api_key)
    if actor is None:
        key = ("api_key", ctx.db.url, key_digest(api_key))
        actor = await load_once(key, authenticate_api_key, ctx, api_key)
        if actor is None:
            raise Unauthenticated("API 密钥无效", "Invalid API key")
    return actor
