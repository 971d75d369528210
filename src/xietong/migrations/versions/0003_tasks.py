"""tasks app (任务协同/督查督办)

Revision ID: 0003_tasks
Revises: 0002_exchange
Create Date: 2026-11-22

Reserved in the chain so that work on each app can land independently; the app's
tables are created here.
"""

from collections.abc import Sequence

revision: str = "0003_tasks"
down_revision: str | None = "0002_exchange"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
