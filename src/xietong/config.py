"""Typed settings, read once from the environment and an optional ``xietong.toml``.

Precedence (highest first): explicit keyword arguments, ``XIETONG_*`` environment
variables, the TOML file (``XIETONG_CONFIG`` or ``./xietong.toml``), defaults.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _config_file() -> Path:
    return Path(os.environ.get("XIETONG_CONFIG", "xietong.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="XIETONG_", extra="forbid")

    data_dir: Path = Field(default=Path("./var"), description="keys, files, SQLite database")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset = SQLite file in the data dir"
    )
    nats_url: str | None = Field(default=None, description="NATS URL; unset = in-process bus")
    nats_stream: str = Field(default="XIETONG", description="JetStream stream for events")
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL", description="see docs/decisions/0002-sqlite-durability.md"
    )
    audit_origin: str = Field(
        default="xietong.local/audit", description="origin line of signed tree heads"
    )
    access_token_ttl_s: int = Field(default=8 * 3600, ge=60)
    session_ttl_s: int = Field(default=12 * 3600, ge=60)
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="JSON request limit")
    login_max_failures: int = Field(default=5, ge=1, description="per user in the window")
    login_window_s: int = Field(default=900, ge=1)
    webhook_max_attempts: int = Field(default=8, ge=1)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    bus_retention_days: int = Field(
        default=90,
        ge=1,
        description="days published events, consumer markers, done jobs and delivered "
        "webhooks are kept (the replay window)",
    )
    files_retention_days: int = Field(
        default=30,
        ge=1,
        description="days an upload that no record cites is kept before the worker "
        "deletes it (its row and, when nothing else uses them, its bytes)",
    )
    webhook_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="host patterns webhook endpoints may use (fnmatch, e.g. *.gov.cn); "
        "empty = any host",
    )
    worker_poll_s: float = Field(default=1.0, gt=0)
    language: Literal["zh-CN", "en"] = "zh-CN"
    hotline_intake_rate_public: str = Field(
        default="5/minute;30/hour",
        description="hotline tickets a visitor may submit, per client IP (limits syntax)",
    )
    hotline_intake_rate_agent: str = Field(
        default="600/minute",
        description="hotline tickets per signed-in agent or connected system",
    )
    timezone: str = Field(
        default="Asia/Shanghai",
        description="IANA zone in which pages show times and dates (stored times are UTC)",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}") from error
        return value

    @field_validator("hotline_intake_rate_public", "hotline_intake_rate_agent")
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as error:
            raise ValueError(f"not a rate limit like '5/minute;30/hour': {value!r}") from error
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'xietong.db'}"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file()
        if path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def settings_with(**overrides: Any) -> Settings:
    """Settings with explicit overrides (tests, CLI flags)."""
    return Settings(**overrides)
