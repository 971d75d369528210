"""Connector commands: configure a resource's connector, and test the connection.

Only the provider's data stewards and heads configure its connectors. The audit leaf
records the kind, the non-secret settings and the field mapping, and only *whether* a
secret was set — never the secret. The secret is encrypted with the connector's id as
associated data, so the row is flushed first to have that id.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.apps.exchange.connectors.base import FetchRequest, ProviderFailure
from xietong.apps.exchange.connectors.settings import (
    LIVE,
    ConnectorInput,
    check,
    check_file,
    encrypt_secret,
)
from xietong.apps.exchange.models import Resource
from xietong.apps.exchange.service import guarded, load
from xietong.apps.exchange.sharing_models import Connector
from xietong.kernel import clock
from xietong.kernel.access import Actor, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput, NotFound
from xietong.kernel.uow import UnitOfWork

MANAGE = "exchange.connector.manage"


@dataclass(frozen=True)
class ConnectorView:
    id: int
    resource_code: str
    kind: str
    config: dict[str, Any]
    fields: dict[str, Any]
    has_secret: bool
    version: int
    tested_at: datetime | None
    test_ok: bool | None
    test_message: str | None

    @classmethod
    def of(cls, row: Connector, code: str) -> ConnectorView:
        return cls(
            row.id,
            code,
            row.kind,
            dict(row.config or {}),
            dict(row.fields or {}),
            row.secret_cipher is not None,
            row.version,
            row.tested_at,
            row.test_ok,
            row.test_message,
        )


@dataclass(frozen=True)
class TestResult:
    ok: bool
    message_zh: str
    message_en: str
    elapsed_ms: float
    sample_rows: int


def source_fields(row: Connector, items: list[str]) -> list[str]:
    mapping = row.fields or {}
    return [mapping.get(item, item) for item in items]


def connector_of(session: Session, resource_id: int) -> Connector | None:
    return session.scalar(select(Connector).where(Connector.resource_id == resource_id))


def configure_connector(
    ctx: Context, actor: Actor, code: str, data: ConnectorInput
) -> ConnectorView:
    """Create or replace the connector of a resource (a new version each time)."""
    authorize(actor, MANAGE)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        resource = load(session, code)
        authorize(actor, MANAGE, guarded(resource.provider_id))
        row = connector_of(session, resource.id)
        cleaned = check(
            data,
            [item.name for item in resource.items],
            has_secret=row is not None and row.secret_cipher is not None and row.kind == data.kind,
        )
        if cleaned.kind == "file":
            check_file(ctx, cleaned.config["path"])
        now = clock.now()
        if row is None:
            row = Connector(resource_id=resource.id, version=0, created_at=now)
            session.add(row)
        elif row.kind != cleaned.kind:
            row.secret_cipher = None  # another kind's secret means nothing here
        row.kind, row.config, row.fields = cleaned.kind, cleaned.config, cleaned.fields
        row.version += 1
        row.updated_at = now
        row.tested_at = row.test_ok = row.test_message = None
        session.flush()
        if cleaned.secret is not None:
            row.secret_cipher = encrypt_secret(ctx, row.id, cleaned.secret)
        uow.record(
            "exchange.connector.configure",
            f"exchange.resource:{resource.code}",
            {
                "connector_id": row.id,
                "kind": row.kind,
                "config": row.config,
                "fields": row.fields,
                "secret_set": cleaned.secret is not None,
                "version": row.version,
            },
        )
        view = ConnectorView.of(row, resource.code)
        uow.commit()
    from xietong.apps.exchange.gateway import forget

    forget(ctx, resource.code)
    return view


def get_connector(ctx: Context, actor: Actor, code: str) -> ConnectorView:
    authorize(actor, MANAGE)
    with ctx.db.read() as session:
        resource = load(session, code)
        authorize(actor, MANAGE, guarded(resource.provider_id))
        row = connector_of(session, resource.id)
        if row is None:
            raise NotFound.of("连接器", "Connector", code)
        return ConnectorView.of(row, resource.code)


def _items(resource: Resource) -> list[str]:
    return [item.name for item in resource.items]


def test_connection(ctx: Context, actor: Actor, code: str) -> TestResult:
    """Fetch one row of every item through the connector, and record how it went."""
    authorize(actor, MANAGE)
    with ctx.db.read() as session:
        resource = load(session, code)
        authorize(actor, MANAGE, guarded(resource.provider_id))
        row = connector_of(session, resource.id)
        if row is None:
            raise InvalidInput(
                "该资源尚未配置连接器", "The resource has no connector yet", code="no_connector"
            )
        session.expunge(row)
        fields = source_fields(row, _items(resource))
    started = time.perf_counter()
    try:
        result = LIVE.get(ctx, row).fetch(FetchRequest(tuple(fields), {}, 1, 0))
        missing = [f for f in fields if result.rows and f not in result.rows[0]]
        if missing:
            outcome = TestResult(
                False,
                f"连接成功，但缺少字段：{', '.join(missing)}",
                f"Connected, but fields are missing: {', '.join(missing)}",
                0,
                len(result.rows),
            )
        else:
            outcome = TestResult(
                True,
                f"连接成功，读取 {len(result.rows)} 行样例",
                f"Connected; read {len(result.rows)} sample row(s)",
                0,
                len(result.rows),
            )
    except ProviderFailure as failure:
        outcome = TestResult(False, failure.message_zh, failure.message_en, 0, 0)
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    outcome = TestResult(
        outcome.ok, outcome.message_zh, outcome.message_en, elapsed, outcome.sample_rows
    )
    with UnitOfWork(ctx, actor) as uow:
        stored = uow.session.get(Connector, row.id)
        if stored is not None:
            stored.tested_at, stored.test_ok = clock.now(), outcome.ok
            stored.test_message = outcome.message_zh
        uow.record(
            "exchange.connector.test",
            f"exchange.resource:{code}",
            {"connector_id": row.id, "ok": outcome.ok, "message": outcome.message_en},
        )
        uow.commit()
    return outcome
