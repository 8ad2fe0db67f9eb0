"""A Server-Sent Events reader for the tests, the load generator and the benchmark: the
events of an httpx streaming response, as the EventSource specification parses them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx


@dataclass(frozen=True, slots=True)
class Event:
    event: str  # "message" when the server named none
    data: str
    id: str | None


async def events(response: httpx.Response) -> AsyncIterator[Event]:
    """Each event of the stream, in order, until the server ends it. Comment lines
    (heartbeats) are skipped."""
    name, last_id = "", None
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield Event(name or "message", "\n".join(data), last_id)
            name, data = "", []
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
        elif field == "id":
            last_id = value
