"""exchange: per-grant rate-limit windows shared by the gateway processes

Revision ID: 0011_exchange_more
Revises: 0009_files
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_exchange_more"
down_revision: str | None = "0009_files"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exchange_rate_window",
        sa.Column("grant_id", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("grant_id", "window_start", name=op.f("pk_exchange_rate_window")),
    )


def downgrade() -> None:
    op.drop_table("exchange_rate_window")
