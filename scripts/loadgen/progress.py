"""The attack's status line on stderr."""

from __future__ import annotations

import time
from typing import TextIO


class Progress:
    """A status line on stderr: redrawn in place on a terminal, a line every few seconds
    otherwise (logs and CI stay readable)."""

    def __init__(self, stream: TextIO | None, interval_s: float | None = None) -> None:
        self._stream = stream
        self._tty = bool(stream and stream.isatty())
        self._interval_s = interval_s or (0.2 if self._tty else 5.0)
        self._last = time.monotonic()  # the first line after one interval, not at once
        self._drawn = False

    def update(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if self._stream is None or (not force and now - self._last < self._interval_s):
            return
        self._last = now
        if self._tty:
            self._stream.write(f"\r\x1b[K{text}")
            self._drawn = True
        else:
            self._stream.write(f"{text}\n")
        self._stream.flush()

    def done(self, text: str) -> None:
        """The phase's final state, always shown, on its own line."""
        self.update(text, force=True)
        if self._tty and self._drawn and self._stream is not None:
            self._stream.write("\n")
            self._stream.flush()
        self._drawn = False
