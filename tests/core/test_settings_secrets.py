"""The settings refuse a default or short secret outside development."""

from __future__ import annotations

import secrets

import pytest
from pydantic import ValidationError

from sextant.config import DEFAULT_SECRET_KEY, Environment, Settings


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize("environment", [Environment.PRODUCTION, Environment.TEST])
def test_default_secret_is_refused_outside_development(environment: Environment) -> None:
    with pytest.raises(ValidationError, match="SEXTANT_SECRET_KEY must be set"):
        _settings(environment=environment)
    with pytest.raises(ValidationError, match="SEXTANT_SECRET_KEY must be set"):
        _settings(environment=environment, secret_key=DEFAULT_SECRET_KEY)


def test_short_secret_is_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        _settings(environment="production", secret_key="too-short")


def test_strong_secret_is_accepted_in_production() -> None:
    settings = _settings(environment="production", secret_key=secrets.token_urlsafe(48))
    assert settings.environment is Environment.PRODUCTION
    assert settings.json_logs


def test_development_allows_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEXTANT_SECRET_KEY", raising=False)
    monkeypatch.delenv("SEXTANT_ENVIRONMENT", raising=False)
    assert _settings().secret_key.get_secret_value() == DEFAULT_SECRET_KEY


def test_the_server_refuses_to_start_in_production_with_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sextant.config import get_settings

    monkeypatch.setenv("SEXTANT_ENVIRONMENT", "production")
    monkeypatch.delenv("SEXTANT_SECRET_KEY", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(ValidationError, match="SEXTANT_SECRET_KEY"):
            get_settings()
    finally:
        get_settings.cache_clear()
