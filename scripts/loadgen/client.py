"""The load generator's HTTP/1.1 client: a fixed set of keep-alive connections shared by
many concurrent requests, to this machine only.

Hand-written because the load generator shares the machine's two cores with the system it
measures, so its own CPU per request is what limits it. At the attack's 64 connections
against the benchmark's bare app it spends about 40 us of CPU per request, against about
100 us for aiohttp's pooled client (2.5x) and about 2 ms for httpx's (50x); the measurement is
in docs/performance.md. It understands only what this API sends: responses framed by
Content-Length."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

LOCAL_HOSTS = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1", "::1": "::1"}


TRANSPORT_ERRORS = (OSError, asyncio.IncompleteReadError, TimeoutError)


class UsageError(Exception):
    """Bad arguments or configuration (exit 2)."""


@dataclass(frozen=True)
class Target:
    """Where the API listens: always a loopback address."""

    host: str
    port: int
    url: str


def local_target(url: str) -> Target:
    """Parse the API URL, refusing anything that is not plain http on this machine."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "http":
        raise UsageError(f"API URL {url!r} must start with http:// (no TLS for local tests)")
    if host not in LOCAL_HOSTS:
        raise UsageError(
            f"refusing to send load to {host or url!r}: load tests only target this machine "
            "(127.0.0.1 or localhost)"
        )
    if parts.path not in ("", "/"):
        raise UsageError(f"API URL {url!r} must not have a path")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise UsageError(f"API URL {url!r} has an invalid port") from exc
    # "localhost" may resolve to ::1 first while the API listens on 127.0.0.1 only.
    return Target(LOCAL_HOSTS[host], port, url.rstrip("/"))


class Connection:
    """One keep-alive HTTP/1.1 connection; requests on it run one after the other.

    Understands only what this API sends: responses framed by Content-Length. After any
    transport error the connection is dropped and the next request opens a new one.
    """

    def __init__(self, target: Target, timeout_s: float) -> None:
        self._target = target
        self._timeout_s = timeout_s
        self._host_header = f"Host: {target.host}:{target.port}\r\n".encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: bytes = b""
    ) -> tuple[int, bytes]:
        """Send one request and return (status, body). `headers` are raw CRLF-ended lines."""
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._exchange(method, path, body, headers)
        except BaseException:
            self.close()
            raise

    async def _exchange(
        self, method: str, path: str, body: bytes, headers: bytes
    ) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                self._target.host, self._target.port
            )
        assert self._reader is not None
        head = f"{method} {path} HTTP/1.1\r\nContent-Length: {len(body)}\r\n".encode()
        if body:
            head += b"Content-Type: application/json\r\n"
        self._writer.write(head + self._host_header + headers + b"\r\n" + body)
        await self._writer.drain()
        raw = await self._reader.readuntil(b"\r\n\r\n")
        status, length, keep_alive = _parse_head(raw)
        payload = await self._reader.readexactly(length) if length else b""
        if not keep_alive:
            self.close()
        return status, payload

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def _parse_head(raw: bytes) -> tuple[int, int, bool]:
    """(status, content length, keep-alive) from a response's status line and headers."""
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, keep_alive = 0, True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            keep_alive = False
        elif name == "transfer-encoding":
            raise ConnectionError(f"unsupported Transfer-Encoding {value.strip()!r}")
    return status, length, keep_alive


class Client:
    """A fixed set of keep-alive connections shared by many concurrent requests."""

    def __init__(self, target: Target, connections: int, timeout_s: float = 30.0) -> None:
        self.target = target
        self.size = connections
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()
        for _ in range(connections):
            self._idle.put_nowait(Connection(target, timeout_s))

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: bytes = b""
    ) -> tuple[int, bytes]:
        """One request on whichever connection is free."""
        conn = await self._idle.get()
        try:
            return await conn.request(method, path, body, headers)
        finally:
            self._idle.put_nowait(conn)

    async def get_json(self, path: str, headers: bytes = b"", retries: int = 1) -> tuple[int, Any]:
        """GET a JSON document; retried on a fresh connection after a transport error
        (safe, GET changes nothing) because a kept-alive connection may have idled out."""
        for attempt in range(retries + 1):
            try:
                status, body = await self.request("GET", path, headers=headers)
            except TRANSPORT_ERRORS:
                if attempt == retries:
                    raise
                continue
            return status, json_body(body)
        raise AssertionError("unreachable")

    async def map(self, items: Iterable[Any], fn: Callable[[Any], Awaitable[None]]) -> None:
        """Run `fn` over `items` with at most `size` calls in flight (one per connection)."""
        it = iter(items)

        async def lane() -> None:
            for item in it:  # lanes share the iterator: each item is taken exactly once
                await fn(item)

        await asyncio.gather(*(lane() for _ in range(self.size)))

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().close()


def json_body(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def bearer(token: str) -> bytes:
    return f"Authorization: Bearer {token}\r\n".encode()
