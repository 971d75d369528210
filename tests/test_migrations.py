"""The Alembic migrations build exactly the schema the models describe, on both stores."""

from __future__ import annotations

from xietong.kernel.db import Database
from xietong.migrate import check, current_revision, upgrade


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert current_revision(db.engine) is not None
        check(db.engine)  # raises when a model changed without a migration
        upgrade(db.engine)  # re-running is a no-op
    finally:
        db.dispose()
