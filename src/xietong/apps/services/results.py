"""Result documents (证照 / 办结通知书), signed so anyone can check them.

A document is a JSON object; its canonical bytes (sorted keys, UTF-8, no spaces) are
stored as they are, their SHA-256 is signed with the platform's Ed25519 key (the key
that signs the audit tree heads, ``kernel/keys.py``). Anyone holding the published
public key verifies a document offline: hash the canonical bytes, check the signature
over the 32-byte digest. ``verify`` does the same for those who would rather ask.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.apps.services.models import ResultDocument
from xietong.kernel import clock
from xietong.kernel.canonical import canonical_json
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput

ALGORITHM = "Ed25519 over SHA-256 of the canonical JSON"


def issue(
    ctx: Context,
    session: Session,
    application_id: int,
    sub_case_id: int | None,
    title: str,
    content: dict[str, Any],
) -> ResultDocument:
    body = canonical_json(content)
    digest = hashlib.sha256(body).digest()
    row = ResultDocument(
        application_id=application_id,
        sub_case_id=sub_case_id,
        title=title,
        content=body.decode("utf-8"),
        sha256=digest.hex(),
        signature=base64.b64encode(ctx.keys.sign(digest)).decode("ascii"),
        created_at=clock.now(),
    )
    session.add(row)
    return row


@dataclass(frozen=True)
class PublicKey:
    algorithm: str
    public_key: str  # base64 of the raw 32 bytes
    public_key_pem: str


def public_key(ctx: Context) -> PublicKey:
    pem = ctx.keys.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
    return PublicKey(ALGORITHM, base64.b64encode(ctx.keys.public_key_raw).decode("ascii"), pem)


@dataclass(frozen=True)
class Verification:
    valid: bool
    sha256: str
    registered: bool  # the platform issued a document with this digest
    title: str | None


def verify(ctx: Context, content: object, signature: str) -> Verification:
    """Check ``signature`` over the canonical form of ``content`` (an object or its text)."""
    if isinstance(content, str):
        try:
            content = json.loads(content)
        except ValueError:
            raise InvalidInput(
                "文档内容须为 JSON", "Content must be JSON", code="invalid_document"
            ) from None
    if not isinstance(content, dict):
        raise InvalidInput(
            "文档内容须为 JSON 对象", "Content must be an object", code="invalid_document"
        )
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(
            "签名须为 base64", "Signature must be base64", code="invalid_signature"
        ) from None
    digest = hashlib.sha256(canonical_json(content)).digest()
    key = Ed25519PublicKey.from_public_bytes(ctx.keys.public_key_raw)
    try:
        key.verify(raw, digest)
        valid = True
    except InvalidSignature:
        valid = False
    with ctx.db.read() as session:
        title = session.scalar(
            select(ResultDocument.title).where(ResultDocument.sha256 == digest.hex())
        )
    return Verification(valid, digest.hex(), title is not None, title)
