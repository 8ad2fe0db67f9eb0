"""A small client for tests: create events, book, wait until bookings are decided."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from scripts.waiting import eventually


class SaleClient:
    def __init__(self, client: httpx.AsyncClient, admin_token: str) -> None:
        self.http = client
        self.admin = {"Authorization": f"Bearer {admin_token}"}

    async def create_event(
        self,
        capacity: int | None = None,
        per_user_limit: int = 10,
        name: str = "Test",
        hold_seconds: int = 0,
        sections: list[dict[str, Any]] | None = None,
    ) -> int:
        """A general-admission event of `capacity` seats, or one with these sections."""
        body: dict[str, Any] = {
            "name": name,
            "per_user_limit": per_user_limit,
            "hold_seconds": hold_seconds,
        }
        body.update({"sections": sections} if sections is not None else {"capacity": capacity})
        response = await self.http.post("/api/events", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    async def book(
        self,
        event_id: int,
        user_id: str,
        quantity: int | None = 1,
        key: str | None = None,
        **choice: Any,
    ) -> httpx.Response:
        """A booking request; `choice` adds `seats`, `section` or `together`."""
        headers = {"Idempotency-Key": key} if key else {}
        body = {"event_id": event_id, "user_id": user_id, **choice}
        if quantity is not None:
            body["quantity"] = quantity
        return await self.http.post("/api/bookings", json=body, headers=headers)

    async def pay(self, booking_id: str, ref: str, key: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return await self.http.post(
            f"/api/bookings/{booking_id}/payment", json={"payment_ref": ref}, headers=headers
        )

    async def cancel(self, booking_id: str) -> httpx.Response:
        return await self.http.post(f"/api/bookings/{booking_id}/cancel")

    async def booking(self, booking_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/api/bookings/{booking_id}", headers=self.admin)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def wait_status(
        self, booking_ids: list[str], statuses: set[str], timeout_s: float = 60.0
    ) -> dict[str, dict[str, Any]]:
        """Poll until every booking's status is one of `statuses`; return them by id."""

        async def arrived() -> dict[str, dict[str, Any]] | None:
            views = await asyncio.gather(*(self.booking(b) for b in booking_ids))
            if all(v["status"] in statuses for v in views):
                return {v["booking_id"]: v for v in views}
            return None

        what = f"{len(booking_ids)} bookings {'/'.join(sorted(statuses))}"
        return await eventually(arrived, what, timeout_s, interval_s=0.2)

    async def audit(self, event_id: int) -> dict[str, Any]:
        response = await self.http.get(f"/api/events/{event_id}/audit", headers=self.admin)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def wait_decided(
        self, booking_ids: list[str], timeout_s: float = 60.0, *, unknown_ok: bool = False
    ) -> dict[str, dict[str, Any]]:
        """Poll until every booking is CONFIRMED or REJECTED; return them by id. With
        `unknown_ok`, a 404 means "not decided yet" (for messages written straight to Kafka,
        which the API never saw)."""
        decided: dict[str, dict[str, Any]] = {}
        pending = list(booking_ids)

        async def all_decided() -> dict[str, dict[str, Any]] | None:
            results = await asyncio.gather(
                *(self.http.get(f"/api/bookings/{b}", headers=self.admin) for b in pending)
            )
            still: list[str] = []
            for bid, response in zip(pending, results, strict=True):
                if unknown_ok and response.status_code == 404:
                    still.append(bid)
                    continue
                assert response.status_code == 200, response.text
                body = response.json()
                if body["status"] == "PENDING":
                    still.append(bid)
                else:
                    decided[bid] = body
            pending[:] = still
            return None if pending else decided  # {} for no ids: an answer, not "not yet"

        what = f"all {len(booking_ids)} bookings decided"
        return await eventually(all_decided, what, timeout_s, interval_s=0.2)

    async def wait_clean(self, event_id: int, timeout_s: float = 30.0) -> dict[str, Any]:
        """The audit once nothing is in flight any more."""

        async def settled() -> dict[str, Any] | None:
            report = await self.audit(event_id)
            return None if report["verdict"] == "IN_FLIGHT" else report

        return await eventually(settled, f"event {event_id} has nothing in flight", timeout_s, 0.2)
