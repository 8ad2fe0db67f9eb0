"""Test-only crash points. TICKETS_FAULT_POINT=<name> makes the worker kill itself with
SIGKILL the first time it reaches that point, to prove recovery from the worst moments.
Off (the default), a point costs one comparison of an empty string."""

from __future__ import annotations

import logging
import os
import signal

from shared.config import Settings

POINTS = ("after_reserve", "after_db_commit")

log = logging.getLogger(__name__)


def point(settings: Settings, name: str) -> None:
    if settings.fault_point and settings.fault_point == name:
        log.critical("fault injection: SIGKILL at %s", name)
        os.kill(os.getpid(), signal.SIGKILL)
