"""The audit log's public face: signed heads, entries and RFC 9162 proofs (审计员 role)."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from xietong.api.deps import allow, get_ctx
from xietong.kernel import audit
from xietong.kernel.context import Context

router = APIRouter(prefix="/audit", tags=["audit 审计"])
READ = [Depends(allow("audit.read"))]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class TreeHeadOut(BaseModel):
    tree_size: int
    root_hash: str
    timestamp: str
    signed_bytes: str
    signature: str
    public_key: str


class EntryOut(BaseModel):
    index: int
    leaf: str
    payload: str


class InclusionOut(BaseModel):
    leaf_index: int
    tree_size: int
    proof: list[str]


class ConsistencyOut(BaseModel):
    first: int
    second: int
    proof: list[str]


@router.get("/tree-head", response_model=TreeHeadOut, dependencies=READ)
def tree_head(
    ctx: Annotated[Context, Depends(get_ctx)],
    tree_size: Annotated[int | None, Query(ge=0)] = None,
) -> TreeHeadOut:
    """The head of the current tree (stored once per size), or of an earlier size, signed now."""
    session = ctx.db.write_session()
    with session.begin():
        current = audit.tree_size(session)
        store = tree_size is None or tree_size == current
        head = audit.sign_head(session, ctx.keys, ctx.settings.audit_origin, tree_size, store=store)
    session.close()
    return TreeHeadOut(**head.to_json())


@router.get("/entries/{index}", response_model=EntryOut, dependencies=READ)
def entry(index: int, ctx: Annotated[Context, Depends(get_ctx)]) -> EntryOut:
    with ctx.db.read() as session:
        leaf = audit.get_leaf(session, index)
        return EntryOut(index=leaf.idx, leaf=_b64(leaf.leaf), payload=leaf.payload)


@router.get("/proofs/inclusion", response_model=InclusionOut, dependencies=READ)
def inclusion(
    ctx: Annotated[Context, Depends(get_ctx)],
    index: Annotated[int, Query(ge=0)],
    tree_size: Annotated[int, Query(ge=1)],
) -> InclusionOut:
    with ctx.db.read() as session:
        proof = audit.inclusion_proof(session, index, tree_size)
    return InclusionOut(leaf_index=index, tree_size=tree_size, proof=[_b64(p) for p in proof])


@router.get("/proofs/consistency", response_model=ConsistencyOut, dependencies=READ)
def consistency(
    ctx: Annotated[Context, Depends(get_ctx)],
    first: Annotated[int, Query(ge=1)],
    second: Annotated[int, Query(ge=1)],
) -> ConsistencyOut:
    with ctx.db.read() as session:
        proof = audit.consistency_proof(session, first, second)
    return ConsistencyOut(first=first, second=second, proof=[_b64(p) for p in proof])
