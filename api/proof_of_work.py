"""The on-sale queue's proof of work, in ALTCHA's v1 format (the `altcha` package; what the
ALTCHA widget speaks): a challenge per event, signed with the admission key, and each
solution spent on one join of that event. docs/queue.md (Abuse) tells why."""

from __future__ import annotations

import datetime as dt

import msgspec
from altcha.v1 import ChallengeOptions, Payload, create_challenge, verify_solution
from redis.asyncio import Redis

from shared.deadlines import CHALLENGE_TTL_S
from shared.errors import Forbidden
from shared.keys import RedisKeys


class Challenge(msgspec.Struct):
    """An ALTCHA challenge (the widget's format): find `number` <= `maxnumber` with
    SHA-256(salt + number) = challenge; join with the base64 JSON payload as `altcha`."""

    algorithm: str
    challenge: str
    max_number: int = msgspec.field(name="maxNumber")
    salt: str = ""
    signature: str = ""


def challenge(key: bytes, event_id: int, max_number: int) -> Challenge:
    """A fresh challenge for a join to this event, about `max_number` / 2 hashes to solve."""
    made = create_challenge(
        ChallengeOptions(
            hmac_key=key.hex(),
            max_number=max_number,
            params={"eid": str(event_id)},  # in the signed salt: a solution joins this event only
            expires=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=CHALLENGE_TTL_S),
        )
    )
    return Challenge(made.algorithm, made.challenge, made.max_number, made.salt, made.signature)


async def spend(
    redis: Redis, keys: RedisKeys, key: bytes, event_id: int, payload: str | None
) -> None:
    """The joiner's proof of work: a valid solution of a challenge we signed for this event,
    not spent on another join; Forbidden (403) saying what is wrong otherwise."""
    if payload is None:
        raise Forbidden("this queue asks for a proof of work: solve GET .../queue/challenge")
    try:
        ok, error = verify_solution(payload, key.hex(), check_expires=True)
        solved = Payload.from_base64(payload)
        signature, eid = str(solved.signature), solved.parse_salt()[2].get("eid")
    except (ValueError, TypeError, KeyError, AttributeError):
        ok, error, signature, eid = False, "malformed payload", "", None
    if not ok:
        raise Forbidden(f"the proof of work is not valid: {error or 'wrong solution'}")
    if eid != [str(event_id)]:
        raise Forbidden("the proof of work was for another event: solve this event's challenge")
    if not await redis.set(
        keys.queue_challenge(event_id, signature), 1, nx=True, ex=CHALLENGE_TTL_S
    ):
        raise Forbidden("this proof of work was spent already: solve a new challenge")
