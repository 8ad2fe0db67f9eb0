"""`--hold-seconds S --pay-ratio P`: of the buyers whose booking is HELD, a fraction pays
(the dev provider, `POST /api/bookings/{id}/payment`), the rest let the hold run out; the
attack then waits until every hold is CONFIRMED or EXPIRED, and checks which is which."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from scripts.loadgen.client import TRANSPORT_ERRORS, Client
from scripts.loadgen.progress import Progress

PAY_ATTEMPTS = 3  # a transport error is retried with the same Idempotency-Key


@dataclass
class HoldOutcome:
    held: int = 0  # bookings decided HELD
    paid: int = 0  # payments accepted (202)
    late: int = 0  # payments refused (409): the hold had run out before the payment came
    payment_errors: Counter[str] = field(default_factory=Counter)
    confirmed: int = 0  # holds that ended CONFIRMED
    expired: int = 0  # holds that ended EXPIRED
    refunded: int = 0  # paid in time for the API, too late for the worker: a refund is due
    failures: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "held": self.held,
            "paid": self.paid,
            "late": self.late,
            "payment_errors": dict(self.payment_errors),
            "confirmed": self.confirmed,
            "expired": self.expired,
            "refunded": self.refunded,
        }


class Paying:
    """Pays for holds as the attack first sees them HELD (a short hold would run out while
    the rest of the bookings are read): the k-th holder pays when floor((k + 1) * ratio)
    moves, so `ratio` of them pay, spread over the sale."""

    def __init__(
        self, client: Client, ratio: float, auth: dict[str, bytes], progress: Progress
    ) -> None:
        self._client = client
        self._ratio = ratio
        self._auth = auth
        self._progress = progress
        self.holders: list[str] = []  # bookings first seen HELD (or already EXPIRED)
        self.paid: set[str] = set()  # payments accepted
        self.out = HoldOutcome()

    async def seen(self, view: dict[str, Any]) -> None:
        if view["status"] not in ("HELD", "EXPIRED"):
            return
        k = len(self.holders)
        self.holders.append(view["booking_id"])
        if view["status"] == "HELD" and math.floor((k + 1) * self._ratio) > math.floor(
            k * self._ratio
        ):
            await self._pay(view["booking_id"])

    async def _pay(self, booking_id: str) -> None:
        out = self.out
        body = json.dumps({"payment_ref": f"attack-{booking_id}"}).encode()
        key = f"Idempotency-Key: pay-{booking_id}\r\n".encode()
        headers = self._auth.get(booking_id, b"") + key
        path = f"/api/bookings/{booking_id}/payment"
        for attempt in range(PAY_ATTEMPTS):
            try:
                status, _ = await self._client.request("POST", path, body, headers)
            except TRANSPORT_ERRORS as exc:
                if attempt == PAY_ATTEMPTS - 1:
                    out.payment_errors[type(exc).__name__] += 1
                continue
            if status == 202:
                out.paid += 1
                self.paid.add(booking_id)
            elif status == 409:
                out.late += 1
            else:
                out.payment_errors[f"HTTP {status}"] += 1
            break
        self._progress.update(f"paying: {out.paid} paid, {out.late} too late")


def judge_holds(
    out: HoldOutcome,
    holders: list[str],
    paid: set[str],
    views: dict[str, dict[str, Any]],
    refunds_due: set[str],
) -> None:
    """Exactly the paid holds are CONFIRMED, every other hold EXPIRED, none left HELD. A
    payment the API took just before the deadline may reach the worker after it: that hold
    EXPIRED with its payment among the audit's refunds due, as documented."""
    out.held = len(holders)
    finals = Counter(views[b]["status"] for b in holders)
    out.confirmed, out.expired = finals["CONFIRMED"], finals["EXPIRED"]
    if finals["HELD"]:
        out.failures.append(f"{finals['HELD']} holds neither paid nor expired before the deadline")
    unpaid_confirmed = [b for b in holders if b not in paid and views[b]["status"] == "CONFIRMED"]
    refunded = {b for b in paid if views[b]["status"] == "EXPIRED" and b in refunds_due}
    out.refunded = len(refunded)
    paid_not_confirmed = [b for b in paid - refunded if views[b]["status"] != "CONFIRMED"]
    if paid_not_confirmed:
        out.failures.append(
            f"{len(paid_not_confirmed)} paid holds did not end CONFIRMED nor with a refund due, "
            f"e.g. {paid_not_confirmed[0]} is {views[paid_not_confirmed[0]]['status']}"
        )
    if unpaid_confirmed:
        out.failures.append(f"{len(unpaid_confirmed)} holds CONFIRMED without a payment")
    if out.payment_errors:
        out.failures.append(f"payments failed: {dict(out.payment_errors)}")
