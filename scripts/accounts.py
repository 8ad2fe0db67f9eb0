"""Roles from the command line: nothing in the API makes anyone an admin, so an operator
gives a registered account the admin role here, and that person signs in on the console
(`/console`) with their email and password.

    python -m scripts.accounts grant-admin EMAIL
    python -m scripts.accounts revoke-admin EMAIL

Uses TICKETS_DATABASE_URL (`eval "$(scripts/stack env)"`). A role is carried in the
session's token, so it takes effect at the account's next sign-in; a session already open
keeps its role until it expires (TICKETS_ACCESS_TOKEN_TTL_S). Exit status 0 done, 2 usage or
configuration, 3 no such account, 4 the database could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import psycopg

from shared.config import Settings, load_or_exit
from shared.db import NamedQueries

queries = NamedQueries("scripts", "accounts.sql")
ROLES = {"grant-admin": "admin", "revoke-admin": "buyer"}


class NoSuchAccount(LookupError):
    """No open account has this email."""


async def set_role(settings: Settings, email: str, role: str) -> str:
    """Gives the account registered as `email` (any case) the role; returns its user id."""
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        cursor = await conn.execute(queries.set_role, {"email": email, "role": role})
        row = await cursor.fetchone()
    if row is None:
        raise NoSuchAccount(
            f"no account is registered as {email!r}: register it first (the sale page's "
            "Register, or POST /api/auth/register), then run this again"
        )
    return str(row[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.accounts", description=__doc__)
    parser.add_argument("action", choices=sorted(ROLES))
    parser.add_argument("email")
    args = parser.parse_args(argv)
    role = ROLES[args.action]
    try:
        user_id = asyncio.run(set_role(load_or_exit(), args.email.strip(), role))
    except NoSuchAccount as exc:
        print(f"accounts: error: {exc}", file=sys.stderr)
        return 3
    except psycopg.OperationalError as exc:
        print(f"accounts: error: cannot reach PostgreSQL: {exc}".strip(), file=sys.stderr)
        return 4
    print(f"{args.email} (user {user_id}) has the role {role} from their next sign-in")
    return 0


if __name__ == "__main__":
    sys.exit(main())
