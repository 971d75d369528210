"""kernel: uploaded files (files)

Revision ID: 0009_files
Revises: 0008_notify
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import xietong.kernel.db

revision: str = "0009_files"
down_revision: str | None = "0008_notify"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "file_object",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("uploaded_by", sa.String(length=120), nullable=False),
        sa.Column("created_at", xietong.kernel.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_file_object")),
    )
    op.create_index(op.f("ix_file_object_sha256"), "file_object", ["sha256"], unique=False)
    op.create_index(
        op.f("ix_file_object_uploaded_by"), "file_object", ["uploaded_by"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_file_object_uploaded_by"), table_name="file_object")
    op.drop_index(op.f("ix_file_object_sha256"), table_name="file_object")
    op.drop_table("file_object")
