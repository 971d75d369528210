"""Settings come from the environment and an optional TOML file, typed and checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from xietong.config import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("XIETONG_DATA_DIR", "XIETONG_DATABASE_URL", "XIETONG_NATS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XIETONG_CONFIG", str(tmp_path / "xietong.toml"))


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.data_dir == (tmp_path / "var").resolve()
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path.resolve() / 'var' / 'xietong.db'}"
    assert settings.nats_url is None
    assert settings.sqlite_synchronous == "FULL"


def test_toml_file_then_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "xietong.toml").write_text(
        'data_dir = "/srv/from-toml"\nnats_url = "nats://toml:4222"\n', encoding="utf-8"
    )
    assert Settings().data_dir == Path("/srv/from-toml")
    monkeypatch.setenv("XIETONG_DATA_DIR", "/srv/from-env")
    settings = Settings()
    assert settings.data_dir == Path("/srv/from-env")
    assert settings.nats_url == "nats://toml:4222"


def test_unknown_or_bad_values_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "xietong.toml").write_text('data_dri = "/typo"\n', encoding="utf-8")
    with pytest.raises(ValidationError):
        Settings()
    (tmp_path / "xietong.toml").unlink()
    monkeypatch.setenv("XIETONG_SQLITE_SYNCHRONOUS", "OFF")
    with pytest.raises(ValidationError):
        Settings()


def test_times_are_shown_in_the_configured_zone_and_unknown_zones_are_refused() -> None:
    from datetime import UTC, date, datetime

    import pytest
    from pydantic import ValidationError

    from xietong.web.rendering import local_time_filter

    local = local_time_filter(Settings(timezone="Asia/Shanghai").timezone)
    evening_utc = datetime(2026, 9, 30, 16, 30, tzinfo=UTC)
    assert local(evening_utc) == "2026-10-01 00:30"  # the next day in 长沙
    assert local(evening_utc, "%Y-%m-%d") == "2026-10-01"
    assert local(date(2026, 10, 8)) == "2026-10-08" and local(None) == "—"
    with pytest.raises(ValidationError):
        Settings(timezone="Mars/Olympus_Mons")
