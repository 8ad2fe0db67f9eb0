"""The HTTP ceiling of the benchmark: the bare minimum a booking POST costs in Litestar.

Same route, same JSON body shape, same msgspec Struct decode, same garbage-collector settings
(shared/heap.py) and the same kind of 202 answer (a fresh uuid, a small JSON body and a
Location header) as `api/bookings.py`, but no Kafka, Redis, PostgreSQL, dependency injection
or middleware. The benchmark serves it with exactly the real API's uvicorn flags, so
`intake / this` is what everything behind the handler costs.

Loaded by path, not as `scripts.bench.bare_app`, so it imports nothing of the benchmark:
    python -m uvicorn --app-dir scripts/bench bare_app:app --loop uvloop --http httptools ...
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State

from shared import heap  # importable: the benchmark starts this app from the repository root
from shared.config import Settings
from shared.contracts import new_booking_id


class BookingCreate(msgspec.Struct, forbid_unknown_fields=True):
    """The request body of POST /api/bookings, with the same constraints as the real one."""

    event_id: Annotated[int, msgspec.Meta(ge=1, le=2**62)]
    user_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    quantity: Annotated[int, msgspec.Meta(ge=1)] = 1


class Accepted(msgspec.Struct):
    booking_id: str
    status: str
    status_url: str


_decode = msgspec.json.Decoder(BookingCreate)


@post("/api/bookings", status_code=202)
async def create(request: Request[object, object, State]) -> Response[Accepted]:
    """Decode the body like the real handler does, then answer 202 with a new booking id."""
    _decode.decode(await request.body())  # validation errors become 400, as in the API
    booking_id = str(new_booking_id())
    url = f"/api/bookings/{booking_id}"
    return Response(
        Accepted(booking_id, "PENDING", url), status_code=202, headers={"Location": url}
    )


@get("/health")
async def health() -> dict[str, str]:
    """Readiness probe for the benchmark (not part of the measured load)."""
    return {"status": "ok"}


def _settle_heap() -> None:
    heap.settle(Settings.from_env().gc_young_threshold)  # as api/app.py does after startup


app = Litestar(route_handlers=[create, health], on_startup=[_settle_heap])
