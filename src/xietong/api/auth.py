"""``POST /api/v1/auth/token``: a bearer token for a username and password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from xietong.api.deps import allow, current_actor, get_ctx
from xietong.kernel.access import Actor
from xietong.kernel.auth import issue_token, login
from xietong.kernel.context import Context

router = APIRouter(prefix="/auth", tags=["auth 认证"])


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=200)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str
    expires_in: int


class Me(BaseModel):
    kind: str
    id: int | None
    name: str
    display_name: str
    roles: dict[str, list[int]]


@router.post("/token", response_model=TokenResponse, dependencies=[Depends(allow("auth.login"))])
def token(
    body: TokenRequest, request: Request, ctx: Annotated[Context, Depends(get_ctx)]
) -> TokenResponse:
    client = request.client.host if request.client else ""
    actor = login(ctx, body.username, body.password, client=client)
    issued = issue_token(ctx, actor)
    return TokenResponse(
        access_token=issued.access_token,
        token_type=issued.token_type,
        expires_in=issued.expires_in,
    )


@router.get("/me", response_model=Me, dependencies=[Depends(allow("auth.me"))])
def me(actor: Annotated[Actor, Depends(current_actor)]) -> Me:
    return Me(
        kind=actor.kind,
        id=actor.id,
        name=actor.name,
        display_name=actor.display_name,
        roles={role.value: sorted(depts) for role, depts in actor.scopes.items()},
    )
