"""kernel: in-app messages (notify)

Revision ID: 0008_notify
Revises: 0007_workflow
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import xietong.kernel.db

revision: str = "0008_notify"
down_revision: str | None = "0007_workflow"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notify_message",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=120), nullable=False),
        sa.Column("title_zh", sa.String(length=300), nullable=False),
        sa.Column("title_en", sa.String(length=300), nullable=False),
        sa.Column("body_zh", sa.Text(), nullable=False),
        sa.Column("body_en", sa.Text(), nullable=False),
        sa.Column("link", sa.String(length=500), nullable=True),
        sa.Column("source_event_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", xietong.kernel.db.UTCDateTime(), nullable=False),
        sa.Column("read_at", xietong.kernel.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["app_user.id"], name=op.f("fk_notify_message_user_id_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_message")),
        sa.UniqueConstraint("user_id", "source_event_id", name="uq_notify_message_event"),
    )
    op.create_index(
        "ix_notify_message_user_unread",
        "notify_message",
        ["user_id", "read_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_notify_message_user_unread", table_name="notify_message")
    op.drop_table("notify_message")
