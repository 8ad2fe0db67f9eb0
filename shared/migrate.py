"""`python -m shared.migrate`: apply the schema migrations in sql/ (idempotent)."""

from __future__ import annotations

import sys

import psycopg

from shared.config import load_or_exit
from shared.db import migrate


def main() -> int:
    settings = load_or_exit()
    try:
        applied = migrate(settings.database_url)
    except psycopg.Error as exc:
        print(f"migration failed: {exc}", file=sys.stderr)
        return 1
    print(f"applied {', '.join(applied)}" if applied else "schema up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
