"""The gateway over HTTP: ``POST /api/v1/exchange/resources/{code}/query``.

Connected systems call it with their API key at volume, so for them it is a hot route
(``api.hot``, ADR 0065): a plain ASGI handler that reads the body, authenticates the
key from the process's cache, validates the body with the same model as the framework
route, runs ``gateway.aquery`` and writes the answer — no middleware, request objects,
routing or dependency injection on the way. Persons (a token or a session) and callers
without a key go to the framework route of the same path (``sharing_routes``), which
answers them ``systems_only`` or 401; both render through the helpers here, and a
test holds the two to the same answers for the same requests.

The order of checks is the framework route's: an unreadable body (400), then the key
(401) and the action (403), then the body's fields (422), then the gateway's own checks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from xietong.api.deps import api_key_actor
from xietong.api.hot import (
    HotRoute,
    Receive,
    Refused,
    Scope,
    Send,
    dumps,
    header,
    json_body,
    read_body,
    send_error,
    send_json,
    send_refused,
    validate,
)
from xietong.apps.exchange import gateway
from xietong.apps.exchange.connectors.settings import LIVE
from xietong.kernel.access import authorize

PATH = r"/exchange/resources/(?P<code>.*)/query"


class QueryIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    items: list[str] | None = Field(default=None, max_length=500)
    filters: dict[str, Any] = Field(default_factory=dict)
    limit: int = 100
    offset: int = 0

    def to_query(self) -> gateway.GatewayQuery:
        return gateway.GatewayQuery(
            tuple(self.items) if self.items else None, self.filters, self.limit, self.offset
        )


def render(answer: gateway.GatewayAnswer) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The answer's body and its ``X-Xietong-Audit-Index`` header."""
    body = dumps(
        {
            "resource": answer.resource_code,
            "items": list(answer.items),
            "masked": answer.masked,
            "rows": answer.rows,
            "limit": answer.limit,
            "offset": answer.offset,
            "has_more": answer.has_more,
            "audit_index": answer.audit_index,
            "response_sha256": answer.response_sha256,
        }
    )
    return body, [(b"x-xietong-audit-index", str(answer.audit_index).encode())]


def takes(scope: Scope) -> bool:
    """Requests authenticated by an API key alone (what ``current_actor`` does too: a
    bearer token wins over a key)."""
    return bool(header(scope, b"x-api-key")) and not header(scope, b"authorization")


async def serve(scope: Scope, receive: Receive, send: Send) -> None:
    ctx = scope["app"].state.ctx
    body = await read_body(receive)
    if body is None:  # the client went away
        return
    try:
        parsed = json_body(header(scope, b"content-type"), body)
        key = header(scope, b"x-api-key") or b""
        actor = await api_key_actor(ctx, key.decode("latin-1"))
        authorize(actor, gateway.ACTION)
        query = validate(QueryIn, parsed).to_query()
        client = (header(scope, b"x-xietong-client") or b"").decode("latin-1")
        answer = await gateway.aquery(ctx, actor, scope["path_params"]["code"], client, query)
    except Refused as refused:
        await send_refused(send, refused)
        return
    except Exception as error:
        await send_error(send, error)
        return
    payload, headers = render(answer)
    await send_json(send, 200, payload, headers)


HOT_ROUTE = HotRoute("POST", PATH, serve, takes)


@asynccontextmanager
async def close_sessions(_app: Any) -> AsyncIterator[None]:
    """Lifespan of the platform's server: at shutdown, close the gateway's pooled HTTP
    sessions to providers, on the loop that owns them (an open one warns, and its
    sockets would linger)."""
    try:
        yield
    finally:
        await LIVE.aclose_sessions()
