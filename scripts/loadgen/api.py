"""The API calls the load generator, the demo and the benchmark make besides bookings:
reachability, events, the audit, and where the admin token comes from."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from scripts.loadgen.client import TRANSPORT_ERRORS, Client, bearer, json_body
from scripts.waiting import poll_until

ROOT = Path(__file__).resolve().parents[2]


DEFAULT_URL = "http://127.0.0.1:8000"


DEMO_EVENT_NAME = "Demo: Stadium Tour"


TOKEN_FILE = ROOT / ".stack" / "admin-token"


class ApiError(Exception):
    """The API could not be reached, or answered a setup call unexpectedly (exit 3)."""


async def check_reachable(client: Client) -> None:
    """Fail early and clearly when nothing answers at the API URL."""
    try:
        status, _ = await client.get_json("/health")
    except TRANSPORT_ERRORS as exc:
        raise ApiError(
            f"the API is not reachable at {client.target.url} ({str(exc) or type(exc).__name__}); "
            "is it running? (scripts/stack up, or set TICKETS_API_URL)"
        ) from None
    if status != 200:
        raise ApiError(f"the API at {client.target.url} answered /health with {status}")


async def create_event(
    client: Client,
    token: str,
    capacity: int,
    name: str,
    hold_seconds: int = 0,
    sections: list[dict[str, Any]] | None = None,
    queue: bool = False,
) -> dict[str, Any]:
    """POST /api/events (admin): general admission of `capacity` seats, or these sections;
    returns the created event. With `queue`, it sells through its on-sale queue, opened by
    the admin (its opens_at is far away)."""
    fields: dict[str, Any] = {"name": name, "hold_seconds": hold_seconds}
    if queue:
        fields.update(queue=True, opens_at="2100-01-01T00:00:00Z")
    fields.update({"capacity": capacity} if sections is None else {"sections": sections})
    body = json.dumps(fields).encode()
    status, raw = await client.request("POST", "/api/events", body, bearer(token))
    if status != 201:
        raise ApiError(f"creating the event failed: {status} {_detail(raw)}")
    event: dict[str, Any] = json.loads(raw)
    return event


async def get_event(client: Client, event_id: int) -> dict[str, Any]:
    status, event = await client.get_json(f"/api/events/{event_id}")
    if status != 200:
        raise ApiError(f"event {event_id}: {status} {_detail(event)}")
    return dict(event)


async def get_audit(client: Client, token: str, event_id: int) -> dict[str, Any]:
    status, report = await client.get_json(f"/api/events/{event_id}/audit", bearer(token))
    if status != 200:
        raise ApiError(f"audit of event {event_id}: {status} {_detail(report)}")
    return dict(report)


def _detail(body: Any) -> str:
    """The problem `detail` of an error body, for messages."""
    if isinstance(body, bytes):
        body = json_body(body)
    if isinstance(body, dict):
        return str(body.get("detail") or body)
    return "" if body is None else str(body)


async def poll_audit(client: Client, token: str, event_id: int) -> dict[str, Any] | None:
    """The audit, or None after a transient failure (5xx, transport error): under load the
    API may shed a poll, which must not end the wait."""
    try:
        status, report = await client.get_json(f"/api/events/{event_id}/audit", bearer(token))
    except TRANSPORT_ERRORS:
        return None
    if status >= 500:
        return None
    if status != 200:
        raise ApiError(f"audit of event {event_id}: {status} {_detail(report)}")
    return dict(report)


async def settled_audit(
    client: Client, token: str, event_id: int, deadline: float
) -> dict[str, Any]:
    """The audit once no hold is in flight (or the latest one when the deadline passed)."""
    latest = None

    async def settled() -> bool:
        nonlocal latest
        latest = await poll_audit(client, token, event_id) or latest
        return latest is not None and latest["verdict"] != "IN_FLIGHT"

    await poll_until(settled, deadline - time.monotonic())
    if latest is None:
        raise ApiError(f"the audit of event {event_id} could not be read before the deadline")
    return latest


def stack_secret(variable: str, generated: Path) -> str:
    """The environment's `variable`, else the native stack's generated file, else ''."""
    secret = os.environ.get(variable, "")
    if not secret and generated.is_file():
        secret = generated.read_text().strip()
    return secret


def admin_token_from_env() -> str:
    """TICKETS_ADMIN_TOKEN, else the native stack's generated token file, else ''."""
    return stack_secret("TICKETS_ADMIN_TOKEN", TOKEN_FILE)
