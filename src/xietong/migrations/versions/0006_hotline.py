"""hotline app (接诉即办)

Revision ID: 0006_hotline
Revises: 0005_services
Create Date: 2026-11-22

Reserved in the chain so that work on each app can land independently; the app's
tables are created here.
"""

from collections.abc import Sequence

revision: str = "0006_hotline"
down_revision: str | None = "0005_services"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
