"""shared.db.migrations() and migrate() on an empty database: the schema is built from the
installed `sql` package, and a second run changes nothing. `python -m shared.migrate` too,
run from outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from shared.config import Settings
from shared.db import migrate, migrations
from tests.conftest import fresh_database

pytestmark = pytest.mark.integration

TABLES = {"events", "bookings", "seats", "schema_migrations"}


@pytest.fixture
def empty_database(admin_url: str, base_settings: Settings) -> Iterator[str]:
    with fresh_database(admin_url, base_settings.database_url, template=None) as url:
        yield url


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        query = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        return {row[0] for row in conn.execute(query)}


def test_migrations_are_the_numbered_files_in_order() -> None:
    names = [name for name, _ in migrations()]
    assert names and names[0] == "001_schema.sql"
    assert names == sorted(names) and len(set(names)) == len(names)
    assert all(name[:3].isdigit() and name.endswith(".sql") for name in names)
    assert all(text.strip() for _, text in migrations())


def test_migrate_builds_the_schema_once(empty_database: str) -> None:
    assert _tables(empty_database) == set()
    names = [name for name, _ in migrations()]
    assert migrate(empty_database) == names
    assert _tables(empty_database) >= TABLES
    with psycopg.connect(empty_database) as conn:
        recorded = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
    assert sorted(recorded) == names

    assert migrate(empty_database) == []  # idempotent: nothing applied twice


def test_python_m_shared_migrate(empty_database: str, tmp_path: Path) -> None:
    env = os.environ | {"TICKETS_DATABASE_URL": empty_database}

    def run() -> str:
        done = subprocess.run(
            [sys.executable, "-m", "shared.migrate"],
            cwd=tmp_path,  # not the checkout: the installed packages carry the SQL
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert run() == "applied " + ", ".join(name for name, _ in migrations())
    assert _tables(empty_database) >= TABLES
    assert run() == "schema up to date"
