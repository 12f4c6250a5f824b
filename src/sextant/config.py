"""All of Sextant's settings: one typed class, read from `SEXTANT_*` variables and `.env`."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SECRET_KEY = "sextant-development-secret-change-me"
MIN_SECRET_LENGTH = 32


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SEXTANT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Environment = Environment.DEVELOPMENT
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)

    # Stores
    database_url: str = "sqlite:///./data/sextant.db"
    events_url: str = "chdb:///./data/events"
    redis_url: str | None = None

    # HTTP
    host: str = "127.0.0.1"
    port: int = 8000
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: str = "INFO"
    log_json: bool | None = None  # default: JSON everywhere but development

    # Accounts
    registration_enabled: bool = True
    access_token_ttl_seconds: int = Field(default=900, ge=30)
    refresh_token_ttl_days: int = Field(default=30, ge=1)
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=300, ge=1)
    login_max_failures_per_ip: int = Field(default=20, ge=1)
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_memory_kib: int = Field(default=65_536, ge=8)
    api_key_cache_seconds: float = Field(default=5.0, ge=0)

    # Ingestion
    ingest_flush_interval_ms: int = Field(default=200, ge=1)
    ingest_flush_max_events: int = Field(default=10_000, ge=1)
    # Group commit flushes as soon as the writer is idle, at most once per this many ms.
    ingest_flush_min_spacing_ms: int = Field(default=100, ge=0)
    ingest_buffer_max_events: int = Field(default=200_000, ge=1)
    ingest_max_batch_events: int = Field(default=1_000, ge=1)
    ingest_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    ingest_rate_limit: str = "2000/second"
    ingest_fsync: bool = False
    # Ingestion is refused (503 low_disk_space) while the event store's disk has less free
    # than this, so the engine never meets a full disk; 0 turns the guard off.
    ingest_min_free_disk_mb: int = Field(default=256, ge=0)
    disk_check_interval_seconds: float = Field(default=2.0, gt=0, le=300)
    # Processes that decode and normalise large native and Segment batch bodies (pool.py):
    # -1 = half the CPUs on a machine of 4 or more (none below), 0 = all in the server.
    ingest_workers: int = Field(default=-1, ge=-1, le=64)
    ingest_worker_min_bytes: int = Field(default=32_768, ge=0)
    geoip_city_db: Path | None = None

    # Governance: how often expired events are deleted (0 turns the background pass off)
    retention_check_interval_seconds: int = Field(default=3600, ge=0)

    # Queries
    query_cache_ttl_seconds: int = Field(default=10, ge=0)
    query_timeout_seconds: int = Field(default=15, ge=1)
    query_max_memory_bytes: int = Field(default=4_000_000_000, ge=10_000_000)
    live_poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    live_heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)
    rollups_enabled: bool = True
    rollup_quiet_seconds: float = Field(default=60.0, ge=0)
    rollup_interval_seconds: float = Field(default=15.0, gt=0)
    # Memory for the person-event rows funnels read (analytics/funnels.py); 0: SQL only
    funnel_memory_mb: int = Field(default=512, ge=0)

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @model_validator(mode="after")
    def _enforce_non_default_secrets(self) -> Settings:
        if self.environment == Environment.DEVELOPMENT:
            return self
        secret = self.secret_key.get_secret_value()
        if secret == DEFAULT_SECRET_KEY or len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"SEXTANT_SECRET_KEY must be set to a random value of at least {MIN_SECRET_LENGTH} "
                f"characters when SEXTANT_ENVIRONMENT={self.environment.value}; generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        return self

    @property
    def json_logs(self) -> bool:
        if self.log_json is not None:
            return self.log_json
        return self.environment != Environment.DEVELOPMENT

    @property
    def is_embedded_events(self) -> bool:
        return self.events_url.startswith("chdb:")


@lru_cache
def get_settings() -> Settings:
    return Settings()
