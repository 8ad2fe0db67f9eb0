"""Rate limits shared by every API process: GCRA state in Redis, one Lua call per round trip
for all the requests that arrived meanwhile (shared/lua/rate_limit.lua), and which client
address a request counts against."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

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


class Verdict(NamedTuple):
    allowed: int
    retry_after_ms: int
    limit: int
    remaining: int
    reset_ms: int


Check = tuple[Limit, str]  # a limit, and whom it counts (a buyer id or an address)


class RateLimiter:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._script = register(redis, "rate_limit")
        self._keys = keys
        self._batches: Coalescer[tuple[Check, ...], Verdict] = Coalescer(self._check)

    async def admit(self, *checks: Check) -> None:
        """Count this request against every limit that is on; RateLimited (429) when one
        of them has no room (and then none of them is used up)."""
        wanted = tuple(check for check in checks if check[0].on)
        if not wanted:
            return
        verdict = await self._batches.submit(wanted)
        if not verdict.allowed:
            raise RateLimited(
                retry_after_s=max(1, math.ceil(verdict.retry_after_ms / 1000)),
                limit=verdict.limit,
                reset_s=max(1, math.ceil(verdict.reset_ms / 1000)),
            )

    async def _check(self, requests: Sequence[tuple[Check, ...]]) -> list[Verdict]:
        keys: dict[str, int] = {}
        args: list[int | float | str] = [len(requests)]
        for checks in requests:
            args.append(len(checks))
            for limit, subject in checks:
                index = keys.setdefault(self._keys.rate(limit.scope, subject), len(keys) + 1)
                args += [index, 1000.0 / limit.per_s, limit.burst]
        flat = await self._script(keys=list(keys), args=args)
        return [Verdict(*flat[i : i + 5]) for i in range(0, len(flat), 5)]


class ClientAddresses:
    """Whom a request's address limit counts, with TICKETS_TRUSTED_PROXIES parsed once."""

    def __init__(self, proxies: Sequence[Network]) -> None:
        self._proxies = tuple(proxies)

    def of(self, request: ASGIConnection[Any, Any, Any, Any]) -> str:
        client = request.scope.get("client")
        peer = client[0] if client else None
        return client_address(peer, request.headers.get("x-forwarded-for"), self._proxies)


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
