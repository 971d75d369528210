"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL (127.0.0.1:5432) and NATS (127.0.0.1:4222) are used when reachable; when
absent the tests that need them skip — except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from xietong.config import Settings
from xietong.kernel.calendar import WorkCalendar
from xietong.kernel.context import Context
from xietong.kernel.db import Base, Database
from xietong.kernel.keys import Keys, ensure_keys
from xietong.migrate import upgrade
from xietong.plugins import load_models, plugin_manager

IN_CI = os.environ.get("CI") == "true"
PG_ADMIN_URL = os.environ.get(
    "XIETONG_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
NATS_URL = os.environ.get("XIETONG_TEST_NATS_URL", "nats://127.0.0.1:4222")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def require(available: bool, reason: str) -> None:
    """Skip on a developer's machine; fail under CI, where everything must run."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"required under CI=true: {reason}")
    pytest.skip(reason)


def shared_data(*parts: str) -> Path:
    path = SHARED.joinpath("data", *parts)
    require(path.exists(), f"shared data not found at {path} (clone ../shared beside the repo)")
    return path


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def postgres_available() -> bool:
    return _port_open("127.0.0.1", 5432)


def nats_available() -> bool:
    return _port_open("127.0.0.1", 4222)


def _build_schema(db: Database) -> None:
    """Tests run on the schema the migrations build, as a deployment does."""
    upgrade(db.engine)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database copied for each test (migrating per test is slow)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    db = Database(f"sqlite:///{path}")
    _build_schema(db)
    db.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    require(postgres_available(), "PostgreSQL is not reachable on 127.0.0.1:5432")
    name = f"xietong_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    db = Database(url)
    _build_schema(db)
    db.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_postgres(db: Database) -> None:
    load_models()
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        target = tmp_path / "xietong.db"
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"
    url = request.getfixturevalue("postgres_url")
    db = Database(url)
    _truncate_postgres(db)
    db.dispose()
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url)


@pytest.fixture
def ctx(settings: Settings) -> Iterator[Context]:
    ensure_keys(settings.keys_dir)
    db = Database(settings.sqlalchemy_url)
    context = Context(
        settings=settings, db=db, keys=Keys.load(settings.keys_dir), hooks=plugin_manager().hook
    )
    context.calendar = WorkCalendar(db)
    yield context
    context.close()
