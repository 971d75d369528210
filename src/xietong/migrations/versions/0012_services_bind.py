"""services: a matter names the one connected system that answers for it

Revision ID: 0012_services_bind
Revises: 0011_exchange_more
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_services_bind"
down_revision: str | None = "0011_exchange_more"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("svc_matter") as batch:
        batch.add_column(sa.Column("external_system_code", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("svc_matter") as batch:
        batch.drop_column("external_system_code")
