"""workflow runtime changes after 0001

Revision ID: 0007_workflow
Revises: 0006_hotline
Create Date: 2026-11-22

Reserved in the chain so that work on each app can land independently; the app's
tables are created here.
"""

from collections.abc import Sequence

revision: str = "0007_workflow"
down_revision: str | None = "0006_hotline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
