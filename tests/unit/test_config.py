from __future__ import annotations

import subprocess
import sys

import pytest

from shared.config import Settings
from shared.errors import ConfigError

pytestmark = pytest.mark.unit


def test_defaults_point_at_the_native_stack() -> None:
    settings = Settings.from_env({})
    assert settings.database_url.startswith("postgresql://")
    assert settings.bootstrap_servers == ["127.0.0.1:59092"]
    assert settings.batch_max > 0


def test_values_are_typed_from_strings() -> None:
    settings = Settings.from_env(
        {"TICKETS_BATCH_MAX": "50", "TICKETS_PRODUCE_TIMEOUT_S": "0.5", "TICKETS_LOG_JSON": "true"}
    )
    assert settings.batch_max == 50
    assert settings.produce_timeout_s == 0.5
    assert settings.log_json is True


def test_unrelated_variables_are_ignored() -> None:
    assert Settings.from_env({"TICKETS_NOT_A_SETTING": "x", "HOME": "/"}) == Settings()


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"TICKETS_BATCH_MAX": "many"}, "TICKETS_BATCH_MAX"),
        ({"TICKETS_BATCH_MAX": "0"}, "TICKETS_BATCH_MAX"),
        ({"TICKETS_TOPIC_PARTITIONS": "-1"}, "TICKETS_TOPIC_PARTITIONS"),
        ({"TICKETS_LOG_LEVEL": "LOUD"}, "TICKETS_LOG_LEVEL"),
        ({"TICKETS_DATABASE_URL": "mysql://x/y"}, "TICKETS_DATABASE_URL"),
        ({"TICKETS_REDIS_URL": "localhost:6379"}, "TICKETS_REDIS_URL"),
        ({"TICKETS_KAFKA_BOOTSTRAP": "localhost"}, "TICKETS_KAFKA_BOOTSTRAP"),
        ({"TICKETS_DLQ_TOPIC": "tickets.booking-requests"}, "TICKETS_DLQ_TOPIC"),
    ],
)
def test_a_bad_value_names_its_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        Settings.from_env(env)


def test_a_bad_value_stops_the_worker_with_a_clear_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "consumer"],
        env={"TICKETS_BATCH_MAX": "zero", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "TICKETS_BATCH_MAX" in result.stderr


SECRET = "s" * 32


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"TICKETS_JWT_SECRET": "short"}, "at least 32"),
        ({"TICKETS_JWT_SECRET": SECRET, "TICKETS_JWT_PUBLIC_KEY": "pem"}, "not both"),
        ({"TICKETS_JWT_PUBLIC_KEY": "pem"}, "RS256 or ES256"),
        ({"TICKETS_JWT_SECRET": SECRET, "TICKETS_JWT_ALGORITHM": "RS256"}, "HS256"),
        ({"TICKETS_BUYER_AUTH": "anyone"}, "TICKETS_BUYER_AUTH"),
        ({"TICKETS_TRUSTED_PROXIES": "10.0.0.0/8,not-an-address"}, "TICKETS_TRUSTED_PROXIES"),
        ({"TICKETS_RATE_LIMIT_BUYER_PER_S": "-1"}, "TICKETS_RATE_LIMIT_BUYER_PER_S"),
    ],
)
def test_buyer_settings_are_checked(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        Settings.from_env(env)


def test_token_mode_needs_a_key_for_the_api_only() -> None:
    worker = Settings.from_env({})  # the worker never checks a token
    assert worker.buyer_auth == "token"
    with pytest.raises(ConfigError, match="TICKETS_JWT_SECRET"):
        worker.check_api()
    Settings.from_env({"TICKETS_JWT_SECRET": SECRET}).check_api()
    Settings.from_env({"TICKETS_BUYER_AUTH": "open"}).check_api()


def test_secrets_and_passwords_never_show_in_the_settings_repr() -> None:
    settings = Settings.from_env(
        {
            "TICKETS_JWT_SECRET": SECRET,
            "TICKETS_ADMIN_TOKEN": "admin-secret",
            "TICKETS_DATABASE_URL": "postgresql://tickets:pg-password@db:5432/tickets",
            "TICKETS_REDIS_URL": "redis://:redis-password@cache:6379/0",
        }
    )
    shown = repr(settings)
    for secret in (SECRET, "admin-secret", "pg-password", "redis-password"):
        assert secret not in shown
    assert "db:5432/tickets" in shown and "cache:6379" in shown


def test_the_api_refuses_to_start_in_token_mode_without_a_key() -> None:
    env = {"PATH": "/usr/bin:/bin", "TICKETS_BUYER_AUTH": "token"}
    ran = subprocess.run(
        [sys.executable, "-c", "import api.app"], env=env, capture_output=True, text=True
    )
    assert ran.returncode == 2
    assert "TICKETS_JWT_SECRET" in ran.stderr
