"""The notifier's SMTP side: one connection reused from mail to mail, reopened after any
failure, and each mail handed over in two steps, so that the caller can commit its own
record between the last byte of the message and the end of DATA (consumer/delivery.py).

Replies are classified here once: 5xx is MailRefused (this mail, for good), anything else
that goes wrong (no connection, a 4xx, a timeout) is MailUnavailable (retry later).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import unquote, urlsplit

import aiosmtplib
from aiosmtplib import SMTPException, SMTPResponseException
from aiosmtplib.protocol import SMTPProtocol

from shared.errors import ConfigError, MailRefused, MailUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

START_INPUT = 354
END_OF_DATA = b".\r\n"
_LEADING_DOT = re.compile(rb"(?m)^\.")
FLUSH_POLL_S = 0.001


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where mail goes, from TICKETS_SMTP_URL: smtp://[user:password@]host:port, or smtps://
    for TLS from the first byte (smtp:// still upgrades with STARTTLS when offered)."""

    hostname: str
    port: int
    use_tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        if not url:
            raise ConfigError(
                "TICKETS_SMTP_URL is empty: the notifier needs an SMTP server to mail through "
                "(smtp://[user:password@]host:port, or smtps:// for implicit TLS)"
            )
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ConfigError("TICKETS_SMTP_URL must start with smtp:// or smtps://")
        try:
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"TICKETS_SMTP_URL: {exc}") from exc
        if not parts.hostname or port is None:
            raise ConfigError("TICKETS_SMTP_URL must name a host and a port")
        return cls(
            hostname=parts.hostname,
            port=port,
            use_tls=parts.scheme == "smtps",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )


@dataclass(frozen=True, slots=True)
class Reply:
    """The server's answer to the end of DATA; code None: no answer came (in doubt)."""

    code: int | None
    text: str

    @property
    def accepted(self) -> bool:
        return self.code is not None and 200 <= self.code < 300

    @property
    def refused(self) -> bool:
        return self.code is not None and self.code >= 500


class Mailer:
    def __init__(self, target: SmtpTarget, timeout_s: float = 30.0) -> None:
        self._target = target
        self._timeout_s = timeout_s
        self._smtp: aiosmtplib.SMTP | None = None

    async def begin(self, sender: str, recipient: str, message: bytes) -> None:
        """MAIL, RCPT, DATA and the whole message except the end of DATA. Until `end`, the
        server throws the message away if the connection drops."""
        smtp = await self._connected()
        try:
            await smtp.mail(sender)
            await smtp.rcpt(recipient)
            response = await smtp.execute_command(b"DATA")
            if response.code != START_INPUT:
                raise SMTPResponseException(response.code, response.message)
            protocol = self._protocol()
            protocol.write(as_data(message))
            await self._flushed(protocol)
        except SMTPResponseException as exc:
            text = f"{exc.code} {exc.message}"
            if exc.code >= 500:
                await self._reset()
                raise MailRefused(f"refused by the SMTP server: {text}") from exc
            self.close()  # 4xx, or a reply that makes no sense: start afresh
            raise MailUnavailable(f"the SMTP server said {text}") from exc
        except UnicodeEncodeError as exc:  # an address that needs SMTPUTF8
            await self._reset()
            raise MailRefused(f"address is not ASCII: {recipient!r}") from exc
        except (SMTPException, OSError) as exc:
            self.close()
            raise MailUnavailable(f"SMTP connection failed: {exc!r}") from exc

    async def end(self, then: Callable[[], Awaitable[T]]) -> tuple[T, Reply]:
        """Send the end of DATA and call `then()` at once, before the server's reply: the
        two leave this process within the same tick of the event loop. Returns what
        `then()` returned and the reply."""
        protocol = self._protocol()
        # Armed before the end of DATA goes out: aiosmtplib drops data that arrives while
        # nobody reads, and the reply may come back before `then()` yields.
        reply = asyncio.ensure_future(protocol.read_response(timeout=self._timeout_s))
        try:
            await asyncio.sleep(0)  # the reader's first step runs now, ahead of this task
            with _corked(protocol):
                try:
                    protocol.write(END_OF_DATA)
                    await self._flushed(protocol)
                except (SMTPException, OSError) as exc:
                    # Not handed to the kernel: the server never saw the end, the mail is void.
                    self.close()
                    raise MailUnavailable(f"SMTP connection failed: {exc!r}") from exc
                done = await then()
            try:
                response = await reply
            except (SMTPException, OSError) as exc:
                self.close()
                return done, Reply(None, f"no reply to the end of DATA: {exc!r}")
            return done, Reply(response.code, response.message)
        finally:
            if not reply.done():
                reply.cancel()
            # Its outcome is collected even when unused, so asyncio does not complain.
            with contextlib.suppress(asyncio.CancelledError, SMTPException, OSError):
                await reply

    def close(self) -> None:
        """Drop the connection (whatever state it is in); the next mail opens another."""
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    async def quit(self) -> None:
        """Say goodbye politely at shutdown."""
        if self._smtp is not None and self._smtp.is_connected:
            with contextlib.suppress(SMTPException, OSError):
                await self._smtp.quit()
        self.close()

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        self.close()
        t = self._target
        smtp = aiosmtplib.SMTP(
            hostname=t.hostname,
            port=t.port,
            use_tls=t.use_tls,
            username=t.username,
            password=t.password,
            timeout=self._timeout_s,
        )
        try:
            await smtp.connect()
        except (SMTPException, OSError) as exc:
            smtp.close()
            raise MailUnavailable(
                f"cannot reach the SMTP server at {t.hostname}:{t.port}: {exc!r}"
            ) from exc
        log.info("connected to the SMTP server at %s:%s", t.hostname, t.port)
        self._smtp = smtp
        return smtp

    def _protocol(self) -> SMTPProtocol:
        if self._smtp is None or self._smtp.protocol is None:
            raise MailUnavailable("SMTP connection lost")
        return self._smtp.protocol

    async def _reset(self) -> None:
        """After a refusal the connection is fine: RSET it for the next mail."""
        if self._smtp is None:
            return
        try:
            await self._smtp.rset()
        except (SMTPException, OSError):
            self.close()

    @staticmethod
    async def _flushed(protocol: SMTPProtocol) -> None:
        """Until everything written is in the kernel's hands: from there it reaches the
        server even if this process is killed. A mail is far below the socket buffer, so
        this returns at once but for a congested connection."""
        transport = protocol.transport
        while transport is not None and transport.get_write_buffer_size():  # type: ignore[attr-defined]
            if transport.is_closing():
                raise MailUnavailable("SMTP connection lost while sending")
            await asyncio.sleep(FLUSH_POLL_S)


@contextlib.contextmanager
def _corked(protocol: SMTPProtocol) -> Iterator[None]:
    """Hold what is written in the kernel until the block ends (TCP_CORK, Linux). Sending
    the end of DATA wakes the server; woken, it can run ahead of this process before the
    claim's COMMIT goes out, widening the crash window between the two writes from
    microseconds to a scheduler slice. Corked, the end of DATA leaves after the COMMIT; a
    process killed in between still sends it: closing a socket flushes what it holds."""
    transport = protocol.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    cork = getattr(socket, "TCP_CORK", None)
    if sock is None or cork is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        yield
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, cork, 1)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # closed meanwhile: the kernel flushed it
            sock.setsockopt(socket.IPPROTO_TCP, cork, 0)


def as_data(message: bytes) -> bytes:
    """The message as DATA carries it: CRLF line ends, a leading dot doubled (RFC 5321
    4.5.2), ending with CRLF, without the end-of-data line."""
    lines = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if not lines.endswith(b"\r\n"):
        lines += b"\r\n"
    return _LEADING_DOT.sub(b"..", lines)
