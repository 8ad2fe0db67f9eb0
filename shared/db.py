"""PostgreSQL access: the named queries from queries.sql, the connection pool, migrations."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, LiteralString, cast

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from shared.config import Settings

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def _load_queries(path: Path) -> dict[str, LiteralString]:
    """Split a .sql file on `-- name: x` headers into {x: query text}."""
    parts = _HEADER.split(path.read_text())
    queries: dict[str, LiteralString] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.strip().splitlines() if not line.startswith("--")]
        queries[name] = cast(LiteralString, "\n".join(lines).strip().rstrip(";"))
    return queries


class _Queries:
    """Attribute access to the named queries: `queries.lock_event`."""

    def __init__(self, path: Path) -> None:
        self._by_name = _load_queries(path)

    def __getattr__(self, name: str) -> LiteralString:
        try:
            return self._by_name[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r} in queries.sql") from None


queries = _Queries(Path(__file__).with_name("queries.sql"))

RETRYABLE_DB_ERRORS: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
)


def open_pool(settings: Settings, *, max_size: int | None = None) -> AsyncConnectionPool:
    """A pool that is not opened yet: `await pool.open()` in the owner's lifespan."""
    return AsyncConnectionPool(
        settings.database_url,
        min_size=1,
        max_size=max_size or settings.db_pool_max,
        kwargs={"row_factory": dict_row, "autocommit": False},
        open=False,
        name="tickets",
        reconnect_timeout=0,
    )


async def fetch_one(
    pool: AsyncConnectionPool, query: LiteralString, params: dict[str, Any]
) -> dict[str, Any] | None:
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(query, params)
        row = await cur.fetchone()
        return cast(dict[str, Any] | None, row)


def migrate(database_url: str) -> list[str]:
    """Apply sql/NNN_*.sql files not applied yet, each in its own transaction; return them."""
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
            for path in sorted(SQL_DIR.glob("[0-9][0-9][0-9]_*.sql")):
                if path.name in done:
                    continue
                with conn.transaction():
                    conn.execute(cast(LiteralString, path.read_text()))
                    conn.execute(
                        "INSERT INTO schema_migrations (version) VALUES (%s)", (path.name,)
                    )
                applied_now.append(path.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(724100)")
    return applied_now
