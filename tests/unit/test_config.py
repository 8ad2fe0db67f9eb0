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
