"""A lean Server-Sent Events client for load: one raw connection per stream and only the
`data:` lines read, so thousands of open streams cost the load generator little."""

from __future__ import annotations

import asyncio

from scripts.loadgen.client import Target


class Stream:
    """One open stream. `data()` returns each event's data line in turn, None at its end."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, target: Target, path: str, headers: bytes = b"") -> Stream:
        """GET `path` and check the answer is an event stream (else ValueError)."""
        reader, writer = await asyncio.open_connection(target.host, target.port)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
            "Accept: text/event-stream\r\n".encode()
            + headers
            + b"\r\n"
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200") or b"text/event-stream" not in head:
            writer.close()
            raise ValueError(f"not an event stream: {head[:200]!r}")
        return cls(reader, writer)

    async def data(self) -> bytes | None:
        """The next `data:` line's value (each of our events has one); None when the server
        ended the stream. Chunk-size lines and comments (heartbeats) are skipped."""
        while True:
            line = await self._reader.readline()
            if not line:
                return None
            if line.startswith(b"data: "):
                return line[6:].rstrip(b"\r\n")
            if line == b"0\r\n":  # the last chunk: the server ended the stream
                return None

    @property
    def ended(self) -> bool:
        """True once the server closed it (and everything it sent was read)."""
        return self._reader.at_eof()

    def close(self) -> None:
        self._writer.close()
