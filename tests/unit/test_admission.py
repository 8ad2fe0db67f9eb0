"""Admission tokens (shared/admission.py): who they admit, to what, until when."""

from __future__ import annotations

import secrets

from shared import admission
from shared.deadlines import now_ms

KEY = secrets.token_bytes(32)


def test_a_token_issued_by_a_clock_ahead_of_ours_is_accepted() -> None:
    # The admission's time comes from Redis's clock: a host a few seconds behind it must
    # still take the token, whose iat is then in its future.
    now = now_ms()
    token = admission.issue(KEY, "ann", 7, now + 5_000, ttl_s=600)
    assert admission.refusal(KEY, token, "ann", 7, now) is None


def test_a_token_admits_its_buyer_to_its_event_until_it_expires() -> None:
    now = now_ms()
    token = admission.issue(KEY, "ann", 7, now, ttl_s=60)
    assert admission.refusal(KEY, token, "bob", 7, now)
    assert admission.refusal(KEY, token, "ann", 8, now)
    assert admission.refusal(KEY, token, "ann", 7, now + 61_000)
    assert admission.refusal(secrets.token_bytes(32), token, "ann", 7, now)
