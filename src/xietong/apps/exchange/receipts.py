"""Receipts: a consumer fetches the inclusion proof of its own gateway query.

The gateway answers with ``X-Xietong-Audit-Index``; later the consumer system asks for
that leaf and gets the leaf bytes, the payload (its query's record), a freshly signed
tree head and the RFC 9162 inclusion proof — enough to check, with the platform's
public key only, that its query is in the log as recorded and can never be dropped.
A system may fetch only leaves it is the actor of: the log of other consumers' queries
is for auditors (``/api/v1/audit``), not for every connected system.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from xietong.apps.exchange.gateway import ACTION as QUERY_ACTION
from xietong.kernel import audit
from xietong.kernel.access import Actor, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import NotFound

READ = "exchange.receipt.read"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class Receipt:
    index: int
    leaf: str  # base64 of the exact leaf bytes
    payload: str
    tree_head: dict[str, Any]
    proof: list[str]


def get_receipt(ctx: Context, actor: Actor, index: int) -> Receipt:
    authorize(actor, READ)
    session = ctx.db.write_session()
    try:
        with session.begin():
            try:
                leaf = audit.get_leaf(session, index)
            except NotFound:
                leaf = None
            fields = json.loads(leaf.leaf) if leaf is not None else {}
            if fields.get("actor") != actor.label or fields.get("action") != QUERY_ACTION:
                # the same answer for "no such leaf" and "not yours": indexes do not leak
                raise NotFound.of("查询凭证", "Query receipt", index)
            head = audit.sign_head(session, ctx.keys, ctx.settings.audit_origin)
            proof = audit.inclusion_proof(session, index, head.tree_size)
            return Receipt(
                index, _b64(leaf.leaf), leaf.payload, head.to_json(), [_b64(p) for p in proof]
            )
    finally:
        session.close()


def verify_receipt(receipt: dict[str, Any], public_key: bytes) -> dict[str, Any]:
    """What a consumer runs on its side: raises ValueError unless everything checks.

    Returns the query's recorded payload. Needs only the platform's public key.
    """
    import hashlib

    from xietong.kernel import merkle

    head = receipt["tree_head"]
    signed = base64.b64decode(head["signed_bytes"])
    audit.verify_head(public_key, signed, base64.b64decode(head["signature"]))
    _origin, size, root, _moment = audit.parse_checkpoint(signed)
    leaf = base64.b64decode(receipt["leaf"])
    proof = [base64.b64decode(p) for p in receipt["proof"]]
    merkle.verify_inclusion(merkle.leaf_hash(leaf), receipt["index"], size, proof, root)
    fields = json.loads(leaf)
    payload = receipt["payload"].encode("utf-8")
    if hashlib.sha256(payload).hexdigest() != fields["payload_sha256"]:
        raise ValueError("the payload does not match the leaf's digest")
    return json.loads(payload)
