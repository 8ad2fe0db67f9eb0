"""PostgreSQL access: the named queries from queries.sql, the connection pool, migrations.
Both .sql sources are read from the installed packages (`shared`, and `sql` for the
migrations), so a wheel installed anywhere can migrate a database."""

from __future__ import annotations

import re
import struct
import uuid
from collections.abc import Collection, Iterable
from importlib.resources import files
from typing import Any, LiteralString
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import AsyncConnection
from psycopg.abc import AdaptContext
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from shared.config import Settings
from shared.contracts import uuid_texts

_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"^[0-9]{3}_\w+\.sql$")


def _load_queries(source: str) -> dict[str, LiteralString]:
    """Split a .sql file on `-- name: x` headers into {x: query text}."""
    parts = _HEADER.split(source)
    queries: dict[str, LiteralString] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.strip().splitlines() if not line.startswith("--")]
        text: LiteralString = "\n".join(lines).strip().rstrip(";")
        queries[name] = text
    return queries


class NamedQueries:
    """Attribute access to the named queries of one .sql file in a package:
    `queries.lock_event`."""

    def __init__(self, package: str, filename: str = "queries.sql") -> None:
        self._where = f"{package}/{filename}"
        self._by_name = _load_queries(files(package).joinpath(filename).read_text())

    def __getattr__(self, name: str) -> LiteralString:
        try:
            return self._by_name[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r} in {self._where}") from None


queries = NamedQueries("shared")

Pool = AsyncConnectionPool[AsyncConnection[DictRow]]
"""A pool whose connections return rows as dicts."""


def open_pool(
    settings: Settings, *, max_size: int | None = None, acquire_timeout_s: float = 30.0
) -> Pool:
    """A pool that is not opened yet: `await pool.open()` in the owner's lifespan.
    Waiting longer than `acquire_timeout_s` for a connection raises PoolTimeout."""
    return Pool(
        settings.database_url,
        connection_class=AsyncConnection[DictRow],
        min_size=1,
        max_size=max_size or settings.db_pool_max,
        kwargs={
            "row_factory": dict_row,
            "autocommit": False,
            # A lock held too long (a stuck session) fails the statement instead of stalling
            # every batch behind it; the worker retries it with backoff and says so.
            # Tables grow by thousands of rows a second during a sale, so a generic plan
            # cached while they were small (psycopg prepares a statement on its 5th run)
            # turns index probes into scans: plan each run with its real parameters.
            "options": f"-c lock_timeout={settings.db_lock_timeout_ms}"
            " -c plan_cache_mode=force_custom_plan",
        },
        open=False,
        name="tickets",
        timeout=acquire_timeout_s,
        # A connection broken by a PostgreSQL restart is replaced, not handed out.
        check=AsyncConnectionPool.check_connection,
    )


def uuid_array(ids: Iterable[uuid.UUID]) -> str:
    """A uuid[] parameter in PostgreSQL's array syntax, to bind as `%(name)s::uuid[]`.
    psycopg's list dumper spends microseconds per element in Python; for the thousands of
    ids in a batch, one join is a fraction of that. (UUIDs need no quoting.)"""
    return "{" + ",".join(uuid_texts(ids)) + "}"


def text_array(values: Collection[str]) -> str:
    """A text[] parameter in PostgreSQL's array syntax, to bind as `%(name)s::text[]`, for
    the same reason as uuid_array. Every element
    is quoted, so commas, braces, spaces and the word NULL stay plain text."""
    if not values:
        return "{}"
    quoted = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return '{"' + '","'.join(quoted) + '"}'


_TEXT_OID, TEXT_ARRAY_OID = 25, 1009
_ARRAY_HEAD = struct.Struct("!iiiii")  # dimensions, has-nulls flag, element type, length, base
_NO_DIMENSIONS = struct.pack("!iii", 0, 0, _TEXT_OID)  # an empty array
_LENGTH = struct.Struct("!i")


class TextArrayBinaryDumper(Dumper):
    """A list of strings as a text[] in PostgreSQL's binary array format. Registered with
    `adapters.register_dumper(None, ...)`, so only a lookup by type oid uses it, as in a
    binary COPY after `set_types`. psycopg's generic list dumper spent a third of the
    worker's COPY time in Python on its one-seat lists; this builds the same bytes with
    struct. Lists of non-null strings only."""

    oid = TEXT_ARRAY_OID
    format = Format.BINARY

    def __init__(self, cls: type, context: AdaptContext | None = None) -> None:
        super().__init__(cls, context)
        self._encoding = self.connection.info.encoding if self.connection else "utf-8"

    def dump(self, obj: list[str]) -> bytes:
        if not obj:
            return _NO_DIMENSIONS
        parts = [_ARRAY_HEAD.pack(1, 0, _TEXT_OID, len(obj), 1)]
        for item in obj:
            raw = item.encode(self._encoding)
            parts += (_LENGTH.pack(len(raw)), raw)
        return b"".join(parts)


def with_database(url: str, name: str) -> str:
    """The same PostgreSQL server and credentials, another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def fetch_one(pool: Pool, query: LiteralString, params: dict[str, Any]) -> DictRow | None:
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(query, params)
        return await cur.fetchone()


async def fetch_all(pool: Pool, query: LiteralString, params: dict[str, Any]) -> list[DictRow]:
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


def migrations() -> list[tuple[str, str]]:
    """The schema migrations (sql/NNN_*.sql) in order, as (file name, SQL)."""
    found = [entry for entry in files("sql").iterdir() if _MIGRATION.match(entry.name)]
    return [(entry.name, entry.read_text()) for entry in sorted(found, key=lambda e: e.name)]


def migrate(database_url: str) -> list[str]:
    """Apply the migrations not applied yet, each in its own transaction; return them."""
    applied_now: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        # One migrator at a time, even if several processes start together.
        conn.execute("SELECT pg_advisory_lock(724100)")
        try:
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for name, text in migrations():
                if name in done:
                    continue
                with conn.transaction():
                    migration: LiteralString = text
                    conn.execute(migration)
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (name,))
                applied_now.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(724100)")
    return applied_now
