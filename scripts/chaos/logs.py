"""The runner's own output: progress lines on stderr, and the log files of a scenario."""

from __future__ import annotations

import sys
from pathlib import Path


def say(scenario: str, elapsed: float, text: str) -> None:
    print(f"[{scenario:<16} {elapsed:6.1f}s] {text}", file=sys.stderr, flush=True)


def append_log(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(text.rstrip("\n") + "\n")


def read_log(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
