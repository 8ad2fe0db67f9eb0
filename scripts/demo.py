"""Create the demo event through the API and print how to attack it.

    python -m scripts.demo

Uses TICKETS_API_URL (default http://127.0.0.1:8000) and TICKETS_ADMIN_TOKEN (else the
native stack's .stack/admin-token). Exits non-zero with a clear message when the API cannot
be reached or refuses the request.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys

from scripts.loadgen.api import (
    DEFAULT_URL,
    DEMO_EVENT_NAME,
    ApiError,
    admin_token_from_env,
    check_reachable,
    create_event,
)
from scripts.loadgen.client import Client, UsageError, local_target

DEMO_CAPACITY = 100


async def create_demo_event(url: str, token: str, capacity: int = DEMO_CAPACITY) -> int:
    """Create "Demo: Stadium Tour" and return its id."""
    if not token:
        raise UsageError("no admin token: set TICKETS_ADMIN_TOKEN")
    client = Client(local_target(url), connections=1)
    try:
        await check_reachable(client)
        event = await create_event(client, token, capacity, DEMO_EVENT_NAME)
    finally:
        client.close()
    return int(event["id"])


def attack_line(url: str, event_id: int) -> str:
    """A ready-to-run command (with the URL only when it is not the default)."""
    prefix = "" if url.rstrip("/") == DEFAULT_URL else f"TICKETS_API_URL={shlex.quote(url)} "
    return f"{prefix}./attack.sh 500 --event {event_id}"


def console_steps(url: str) -> list[str]:
    """How to get an admin into the console: nothing in the API grants the role."""
    return [
        f"register an account on {url.rstrip('/')}/ (Sign in or register), then",
        'eval "$(scripts/stack env)"; python -m scripts.accounts grant-admin YOUR-EMAIL',
        "and sign in on the console with that email and password",
    ]


def main() -> int:
    url = os.environ.get("TICKETS_API_URL") or DEFAULT_URL
    try:
        event_id = asyncio.run(create_demo_event(url, admin_token_from_env()))
    except (UsageError, ApiError) as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 3
    print(f"created event {event_id}: {DEMO_EVENT_NAME!r}, {DEMO_CAPACITY} seats, at {url}")
    print("attack it with:")
    print(f"  {attack_line(url, event_id)}")
    print(f"watch it on the operator console, {url.rstrip('/')}/console, as an admin:")
    for line in console_steps(url):
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
