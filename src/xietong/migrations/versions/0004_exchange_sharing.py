"""exchange app: connectors, grants, gateway, subscriptions

Revision ID: 0004_exchange_sharing
Revises: 0003_tasks
Create Date: 2026-11-22

Reserved in the chain so that work on each app can land independently; the app's
tables are created here.
"""

from collections.abc import Sequence

revision: str = "0004_exchange_sharing"
down_revision: str | None = "0003_tasks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
