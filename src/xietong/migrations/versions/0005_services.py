"""services app (事项目录, 一件事一次办)

Revision ID: 0005_services
Revises: 0004_exchange_sharing
Create Date: 2026-11-22

Reserved in the chain so that work on each app can land independently; the app's
tables are created here.
"""

from collections.abc import Sequence

revision: str = "0005_services"
down_revision: str | None = "0004_exchange_sharing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
