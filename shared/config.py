"""The one settings object, filled from TICKETS_* environment variables and validated once."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

from shared.errors import ConfigError

PREFIX = "TICKETS_"

Positive = Annotated[int, msgspec.Meta(ge=1)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Every knob of the service. Each field is read from TICKETS_<FIELD NAME IN CAPITALS>."""

    database_url: str = "postgresql://tickets@127.0.0.1:55432/tickets"
    redis_url: str = "redis://127.0.0.1:56379/0"
    kafka_bootstrap: str = "127.0.0.1:59092"
    admin_token: str = ""
    # Kafka topics: booking requests keyed by event id, and where poison messages go.
    topic: str = "tickets.booking-requests"
    dlq_topic: str = "tickets.booking-requests.dlq"
    topic_partitions: Positive = 6
    consumer_group: str = "tickets-finalizer"
    # Every Redis key starts with this, so several deployments (or tests) can share one Redis.
    redis_prefix: str = "tickets"
    # API
    produce_timeout_s: PositiveFloat = 5.0
    max_body_bytes: Positive = 4096
    idempotency_ttl_s: Positive = 86400
    # How stale the API's view of a counter may be for the sold-out fast path (409).
    availability_max_age_ms: Annotated[int, msgspec.Meta(ge=0)] = 50
    status_cache_ttl_s: Positive = 86400
    db_pool_max: Positive = 10
    db_lock_timeout_ms: Positive = 10000
    redis_max_connections: Positive = 64
    # Worker. Larger batches share the per-batch costs (round trips, the commit, the offset
    # commit) among more bookings, but hold Redis longer in each Lua call.
    batch_max: Positive = 4000
    # How long the group waits for a silent worker (e.g. kill -9) before handing its
    # partitions to the others; heartbeats go every third of it.
    consumer_session_timeout_ms: Annotated[int, msgspec.Meta(ge=3000)] = 10000
    poll_timeout_ms: Positive = 100
    retry_backoff_max_s: PositiveFloat = 5.0
    # The worker's own /metrics on 127.0.0.1; 0 turns it off (one port per worker process).
    worker_metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 9464
    worker_metrics_host: str = "127.0.0.1"  # 0.0.0.0 in a container scraped from outside
    # How often the worker audits the events it decided recently (tickets_audit_events).
    audit_interval_s: PositiveFloat = 15.0
    # Test-only fault injection: name of a point at which the worker kills itself (see
    # consumer/faults.py). Empty in production: costs one string comparison when off.
    fault_point: str = ""
    # Collect young objects every this many net allocations, after freezing the startup
    # objects (shared/heap.py); 0 keeps Python's defaults (700, nothing frozen).
    gc_young_threshold: Annotated[int, msgspec.Meta(ge=0)] = 10000
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read TICKETS_* variables; raise ConfigError naming the variable on a bad value."""
        source = os.environ if env is None else env
        fields = set(cls.__struct_fields__)
        raw: dict[str, str] = {}
        for key, value in source.items():
            if not key.startswith(PREFIX):
                continue
            name = key[len(PREFIX) :].lower()
            if name in fields:
                raw[name] = value
        try:
            settings = msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"invalid configuration: {_name_variable(str(exc))}") from exc
        settings.validate()
        return settings

    def validate(self) -> None:
        """Checks that need more than a type."""
        if not self.database_url.startswith(("postgresql://", "postgres://")):
            raise ConfigError("TICKETS_DATABASE_URL must start with postgresql://")
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("TICKETS_REDIS_URL must start with redis://, rediss:// or unix://")
        for part in self.kafka_bootstrap.split(","):
            host, sep, port = part.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ConfigError(
                    f"TICKETS_KAFKA_BOOTSTRAP must be host:port[,host:port...], got {part!r}"
                )
        if not self.topic or not self.dlq_topic or self.topic == self.dlq_topic:
            raise ConfigError("TICKETS_TOPIC and TICKETS_DLQ_TOPIC must be set and differ")

    @property
    def bootstrap_servers(self) -> list[str]:
        return [part.strip() for part in self.kafka_bootstrap.split(",")]


def _name_variable(message: str) -> str:
    """Turn msgspec's `... - at `$.batch_max`` into `... (TICKETS_BATCH_MAX)`."""
    head, sep, path = message.rpartition(" - at `$.")
    if not sep:
        return message
    return f"{PREFIX}{path.rstrip('`').upper()}: {head}"


def load_or_exit() -> Settings:
    """For entry points: settings, or a one-line message on stderr and exit status 2."""
    try:
        return Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
