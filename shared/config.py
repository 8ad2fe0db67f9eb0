"""The one settings object, filled from TICKETS_* environment variables and validated once."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import sys
from collections.abc import Mapping
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

import msgspec

from shared.errors import ConfigError

PREFIX = "TICKETS_"

Positive = Annotated[int, msgspec.Meta(ge=1)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
Rate = Annotated[float, msgspec.Meta(ge=0)]  # per second; 0 turns the limit off
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MIN_SECRET_CHARS = 32
_SECRETS = ("admin_token", "jwt_secret", "stripe_webhook_secret", "queue_secret")


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Every knob of the service. Each field is read from TICKETS_<FIELD NAME IN CAPITALS>."""

    database_url: str = "postgresql://tickets@127.0.0.1:55432/tickets"
    redis_url: str = "redis://127.0.0.1:56379/0"
    kafka_bootstrap: str = "127.0.0.1:59092"
    # Copies of every partition of the project's topics (shared/topics.py): 3 on a
    # three-broker cluster, where a write then needs two of them (min.insync.replicas).
    kafka_replication_factor: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1
    # Redis under Sentinel: host:port[,host:port...] of the Sentinels and the name they
    # monitor. Set, every client asks them for the primary (redis_url still gives the
    # database number and password); empty, redis_url is the server.
    redis_sentinels: str = ""
    redis_sentinel_master: str = "tickets"
    admin_token: str = ""
    # Kafka topics: booking requests keyed by event id, and where poison messages go.
    topic: str = "tickets.booking-requests"
    dlq_topic: str = "tickets.booking-requests.dlq"
    topic_partitions: Positive = 6
    consumer_group: str = "tickets-finalizer"
    # Every booking state change, relayed from the outbox (key: event id); off turns the
    # outbox off (benchmark comparisons only: nothing is published then).
    events_topic: str = "tickets.booking-events"
    outbox: bool = True
    # The notifier (`python -m consumer.notify`): its group, its dead letters, and where it
    # mails from. smtp_url: smtp://[user:password@]host:port (smtps:// for implicit TLS).
    notify_group: str = "tickets-notify"
    notify_dlq_topic: str = "tickets.booking-events.dlq"
    smtp_url: str = ""
    mail_from: str = "tickets@localhost"
    # The notifier's own /metrics (on TICKETS_WORKER_METRICS_HOST); 0 turns it off.
    notify_metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 9465
    # Every Redis key starts with this, so several deployments (or tests) can share one Redis.
    redis_prefix: str = "tickets"
    # Buyers: "token", the buyer is a signed token's subject (JWT: HS256 with jwt_secret, or
    # RS256/ES256 verified with jwt_public_key); "open", the request names the buyer (demo).
    buyer_auth: Literal["token", "open"] = "token"
    jwt_secret: str = ""
    jwt_public_key: str = ""  # PEM, of an outside identity provider
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] = "HS256"
    jwt_issuer: str = ""  # when set, tokens must carry this `iss`
    jwt_audience: str = ""  # when set, tokens must carry this `aud`
    access_token_ttl_s: Positive = 900
    # Rate limits in Redis, shared by every API process: sustained rate and burst, per buyer
    # and per client address on bookings, per address on sign-in and registration.
    rate_limit_buyer_per_s: Rate = 10.0
    rate_limit_buyer_burst: Positive = 20
    rate_limit_address_per_s: Rate = 100.0
    rate_limit_address_burst: Positive = 200
    rate_limit_auth_per_s: Rate = 1.0
    rate_limit_auth_burst: Positive = 10
    # Addresses or networks (comma-separated) of proxies whose X-Forwarded-For is believed.
    trusted_proxies: str = ""
    api_workers: Positive = 1  # uvicorn processes of `python -m api`
    # Payments: Stripe's signing secret of the webhook endpoint (whsec_...); empty turns
    # POST /api/webhooks/stripe off.
    stripe_webhook_secret: str = ""
    # The on-sale queue (docs/queue.md). Admission tokens are HS256 JWTs signed with a key
    # derived from queue_secret (at least 32 characters), else from jwt_secret, else from
    # admin_token: the API and the worker must have the same one.
    queue_secret: str = ""
    queue_admit_per_s: PositiveFloat = 50.0  # a new queue's admission rate (admins change it)
    queue_admission_ttl_s: Positive = 600  # how long an admission token is valid
    queue_idle_expiry_s: PositiveFloat = 300.0  # an entry not polled this long expires
    queue_tick_s: PositiveFloat = 0.1  # how often the admission loop moves the queues
    # Admission pauses while the event's held quantity is above this share of its unsold
    # stock, or while its partition has more than queue_pause_lag messages not yet decided.
    queue_pause_held_pct: Annotated[int, msgspec.Meta(ge=1, le=100)] = 50
    queue_pause_lag: Positive = 20000
    queue_stream_interval_s: PositiveFloat = 1.0  # a queue stream reads its entry this often
    # API
    produce_timeout_s: PositiveFloat = 5.0
    max_body_bytes: Positive = 4096
    idempotency_ttl_s: Positive = 86400
    # How stale the API's view of a counter may be for the sold-out fast path (409).
    availability_max_age_ms: Annotated[int, msgspec.Meta(ge=0)] = 50
    # Server-Sent Events: a comment line this often keeps idle connections open.
    sse_heartbeat_s: PositiveFloat = 15.0
    # How stale the API's copy of an event's published seat map may be.
    seat_map_max_age_ms: Annotated[int, msgspec.Meta(ge=0)] = 100
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
    # How often the worker looks for holds past their deadline in events without traffic.
    expiry_sweep_interval_s: PositiveFloat = 0.5
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
    # The operator console's charts: a Prometheus scraping the API and the workers, e.g.
    # http://127.0.0.1:9090 (`scripts/stack up --monitoring`); empty: no charts.
    prometheus_url: str = ""
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
        _ = self.sentinels
        if self.redis_sentinels and not self.redis_sentinel_master:
            raise ConfigError("TICKETS_REDIS_SENTINEL_MASTER must name the monitored primary")
        if not self.topic or not self.dlq_topic or self.topic == self.dlq_topic:
            raise ConfigError("TICKETS_TOPIC and TICKETS_DLQ_TOPIC must be set and differ")
        if self.prometheus_url and not self.prometheus_url.startswith(("http://", "https://")):
            raise ConfigError("TICKETS_PROMETHEUS_URL must start with http:// or https://")
        self._validate_tokens()
        _ = self.proxies

    def _validate_tokens(self) -> None:
        if self.jwt_secret and self.jwt_public_key:
            raise ConfigError("set TICKETS_JWT_SECRET or TICKETS_JWT_PUBLIC_KEY, not both")
        if self.jwt_secret and len(self.jwt_secret) < MIN_SECRET_CHARS:
            raise ConfigError(f"TICKETS_JWT_SECRET must be at least {MIN_SECRET_CHARS} characters")
        if self.jwt_secret and self.jwt_algorithm != "HS256":
            raise ConfigError("TICKETS_JWT_SECRET signs HS256: set TICKETS_JWT_ALGORITHM=HS256")
        if self.queue_secret and len(self.queue_secret) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"TICKETS_QUEUE_SECRET must be at least {MIN_SECRET_CHARS} characters"
            )
        if self.jwt_public_key and self.jwt_algorithm == "HS256":
            raise ConfigError(
                "TICKETS_JWT_PUBLIC_KEY verifies RS256 or ES256: set it in TICKETS_JWT_ALGORITHM"
            )

    def check_api(self) -> None:
        """What only the API needs (the worker never sees a token)."""
        if self.buyer_auth == "token" and not self.token_key:
            raise ConfigError(
                "TICKETS_BUYER_AUTH=token needs TICKETS_JWT_SECRET (HS256) or "
                "TICKETS_JWT_PUBLIC_KEY (RS256/ES256); TICKETS_BUYER_AUTH=open for the demo"
            )

    @property
    def token_key(self) -> str:
        """What verifies buyers' tokens; empty when none is configured."""
        return self.jwt_public_key or self.jwt_secret

    @property
    def admission_key(self) -> bytes:
        """What signs and verifies admission tokens: derived, so an admission token is never
        a valid access token (or the other way round) even when both come from one secret.
        Empty when no secret is configured: then nobody is admitted (fail closed)."""
        secret = self.queue_secret or self.jwt_secret or self.admin_token
        if not secret:
            return b""
        return hmac.new(secret.encode(), b"tickets admission tokens v1", hashlib.sha256).digest()

    @property
    def signs_tokens(self) -> bool:
        """True when this service issues tokens itself (register and login)."""
        return bool(self.jwt_secret)

    @property
    def proxies(self) -> tuple[Network, ...]:
        """TICKETS_TRUSTED_PROXIES as networks."""
        try:
            return tuple(
                ipaddress.ip_network(part.strip(), strict=False)
                for part in self.trusted_proxies.split(",")
                if part.strip()
            )
        except ValueError as exc:
            raise ConfigError(f"TICKETS_TRUSTED_PROXIES: {exc}") from exc

    def __repr__(self) -> str:
        """Secrets and URL passwords masked: settings may be logged, secrets never."""
        shown = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name in _SECRETS and value:
                value = "***"
            elif name.endswith("_url"):
                value = _without_password(value)
            shown.append(f"{name}={value!r}")
        return f"Settings({', '.join(shown)})"

    def namespaced(self, ns: str) -> Settings:
        """These settings with a Redis prefix, topics and consumer groups of their own, all
        named after `ns`: tests, the chaos runner and the benchmark share one Kafka and one
        Redis with each other and with the running stack."""
        return msgspec.structs.replace(
            self,
            redis_prefix=ns,
            topic=f"{ns}.booking-requests",
            dlq_topic=f"{ns}.booking-requests.dlq",
            consumer_group=f"{ns}-finalizer",
            events_topic=f"{ns}.booking-events",
            notify_dlq_topic=f"{ns}.booking-events.dlq",
            notify_group=f"{ns}-notify",
        )

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        """TICKETS_REDIS_SENTINELS as (host, port) pairs; empty without Sentinel."""
        pairs = []
        for part in filter(None, (p.strip() for p in self.redis_sentinels.split(","))):
            host, sep, port = part.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ConfigError(
                    f"TICKETS_REDIS_SENTINELS must be host:port[,host:port...], got {part!r}"
                )
            pairs.append((host, int(port)))
        return pairs

    @property
    def bootstrap_servers(self) -> list[str]:
        return [part.strip() for part in self.kafka_bootstrap.split(",")]


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _name_variable(message: str) -> str:
    """Turn msgspec's `... - at `$.batch_max`` into `... (TICKETS_BATCH_MAX)`."""
    head, sep, path = message.rpartition(" - at `$.")
    if not sep:
        return message
    return f"{PREFIX}{path.rstrip('`').upper()}: {head}"


def load_or_exit(api: bool = False) -> Settings:
    """For entry points: settings, or a one-line message on stderr and exit status 2. With
    `api`, also what only the API needs (`Settings.check_api`)."""
    try:
        settings = Settings.from_env()
        if api:
            settings.check_api()
        return settings
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
