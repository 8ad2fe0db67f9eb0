"""Rate limits shared by every API process: GCRA state in Redis, one Lua call per round trip
for all the requests that arrived meanwhile (shared/lua/rate_limit.lua), and which client
address a request counts against."""

from __future__ import annotations

import asyncio
import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec
from litestar.connection import ASGIConnection
from redis.asyncio import Redis

from api.coalesce import Coalescer
from shared.config import Network, Settings
from shared.errors import RateLimited
from shared.keys import RedisKeys
from shared.lua import register


@dataclass(frozen=True, slots=True)
class Limit:
    """`per_s` requests a second sustained, up to `burst` at once; off when `per_s` is 0."""

    scope: str
    per_s: float
    burst: int

    @property
    def on(self) -> bool:
        return self.per_s > 0

    def packed(self, key: str) -> tuple[str, float, int]:
        """What the script reads for this limit on `key`."""
        return key, 1000.0 / self.per_s, self.burst


@dataclass(frozen=True, slots=True)
class Limits:
    buyer: Limit
    address: Limit
    auth: Limit

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        s = settings
        return cls(
            Limit("buyer", s.rate_limit_buyer_per_s, s.rate_limit_buyer_burst),
            Limit("addr", s.rate_limit_address_per_s, s.rate_limit_address_burst),
            Limit("auth", s.rate_limit_auth_per_s, s.rate_limit_auth_burst),
        )


class Refusal(NamedTuple):
    retry_after_ms: int
    limit: int  # the burst of the limit that refused
    reset_ms: int


Check = tuple[Limit, str]  # a limit, and whom it counts (a buyer id or an address)

_encode = msgspec.msgpack.Encoder().encode


class RateLimiter:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._script = register(redis, "rate_limit")
        self._keys = keys
        self._batches: Coalescer[tuple[Check, ...], Refusal | None] = Coalescer(self._check)

    async def admit(self, *checks: Check) -> None:
        """Count this request against every limit that is on; RateLimited (429) when one
        of them has no room (and then none of them is used up)."""
        asked = self.ask(*checks)
        if asked is not None:
            self.judge(await asked)

    def ask(self, *checks: Check) -> asyncio.Future[Refusal | None] | None:
        """`admit` in two steps for the booking path (one coroutine layer less): the answer
        to await and `judge`, or None when none of the limits is on."""
        wanted = tuple(check for check in checks if check[0].on)
        return self._batches.submit(wanted) if wanted else None

    @staticmethod
    def judge(refusal: Refusal | None) -> None:
        if refusal is not None:
            raise RateLimited(
                retry_after_s=max(1, math.ceil(refusal.retry_after_ms / 1000)),
                limit=refusal.limit,
                reset_s=max(1, math.ceil(refusal.reset_ms / 1000)),
            )

    async def _check(self, requests: Sequence[tuple[Check, ...]]) -> list[Refusal | None]:
        """One script call for the batch; its arguments are one msgpack blob (encoding
        every key and number as its own argument cost more than the call)."""
        rate = self._keys.rate
        batch = [
            [part for limit, subject in checks for part in limit.packed(rate(limit.scope, subject))]
            for checks in requests
        ]
        refused = await self._script(keys=[], args=[_encode(batch)])
        answers: list[Refusal | None] = [None] * len(requests)
        for at in range(0, len(refused), 4):
            answers[refused[at] - 1] = Refusal(*refused[at + 1 : at + 4])
        return answers


# Parsing an address costs more than the rest of the limit check; a client keeps its address.
DIRECT_MAX = 65_536


class ClientAddresses:
    """Whom a request's address limit counts, with TICKETS_TRUSTED_PROXIES parsed once."""

    def __init__(self, proxies: Sequence[Network]) -> None:
        self._proxies = tuple(proxies)
        self._direct: dict[str | None, str] = {}  # peer -> address, without X-Forwarded-For

    def of(self, request: ASGIConnection[Any, Any, Any, Any]) -> str:
        client = request.scope.get("client")
        peer = client[0] if client else None
        forwarded = request.headers.get("x-forwarded-for") if self._proxies else None
        if forwarded:
            return client_address(peer, forwarded, self._proxies)
        address = self._direct.get(peer)
        if address is None:
            if len(self._direct) >= DIRECT_MAX:
                self._direct.clear()
            address = self._direct[peer] = client_address(peer, None, self._proxies)
        return address


def client_address(peer: str | None, forwarded_for: str | None, proxies: Sequence[Network]) -> str:
    """Whom a request counts against: the peer, or, when the peer is a trusted proxy, the
    nearest address in X-Forwarded-For that is not one. An IPv6 client counts by its /64
    (one host there can use any of 2^64 addresses)."""
    address = _parse(peer)
    if address is None:
        return peer or "unknown"
    if forwarded_for and _trusted(address, proxies):
        for hop in reversed(forwarded_for.split(",")):
            hop_address = _parse(hop.strip())
            if hop_address is None:
                break
            address = hop_address
            if not _trusted(hop_address, proxies):
                break
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _parse(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text or "")
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Sequence[Network]
) -> bool:
    return any(address in network for network in proxies)
