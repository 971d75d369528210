"""Alembic environment: the URL and metadata come from the running platform, not an ini."""

from __future__ import annotations

from alembic import context

from xietong.kernel.db import Base
from xietong.plugins import load_models

load_models()
config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        raise RuntimeError("run migrations through xietong.migrate, which passes a connection")
    context.configure(
        connection=connectable,
        target_metadata=target_metadata,
        render_as_batch=connectable.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
