"""A real SMTP server for the notifier's tests and the chaos runner: aiosmtpd on 127.0.0.1,
in a thread of the calling process, keeping every message it accepted. It can be stopped
and started again on the same port (the SMTP server down for a while). It refuses
recipients whose address starts with `refuse` (550), as a server does for an unknown
mailbox, and answers the first message to an address starting with `flaky` with 451 (try
again later)."""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from scripts.pipeline import free_port


@dataclass(frozen=True)
class Received:
    recipients: tuple[str, ...]
    message: EmailMessage
    connection: str = ""  # the client's host:port, one per SMTP connection

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    @property
    def text(self) -> str:
        return f"{self.message['Subject']}\n{self.message.get_content()}"


class _Handler:
    def __init__(self, sink: MailSink) -> None:
        self._sink = sink

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.startswith("refuse"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        flaky = [a for a in envelope.rcpt_tos if a.startswith("flaky")]
        if flaky and self._sink.first_try(flaky[0]):
            return "451 4.3.0 try again later"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        peer = session.peer if isinstance(session.peer, tuple) else (session.peer,)
        connection = ":".join(map(str, peer))
        self._sink.keep(Received(tuple(envelope.rcpt_tos), message, connection))
        return "250 2.0.0 queued"


class MailSink:
    def __init__(self) -> None:
        self.port = free_port()
        self._lock = threading.Lock()
        self._received: list[Received] = []
        # Called with each mail and how many came so far, once it is kept and before the
        # server answers the end of DATA (in the server's thread).
        self.on_mail: Callable[[Received, int], None] | None = None
        self._tried: set[str] = set()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def keep(self, mail: Received) -> None:
        with self._lock:
            self._received.append(mail)
            count = len(self._received)
        if self.on_mail is not None:
            self.on_mail(mail, count)

    def first_try(self, address: str) -> bool:
        with self._lock:
            first = address not in self._tried
            self._tried.add(address)
            return first

    def start(self) -> None:
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
