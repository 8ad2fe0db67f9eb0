"""Test-only crash points. TICKETS_FAULT_POINT=<name> makes the worker kill itself with
SIGKILL the first time it reaches that point (and its condition holds), to prove recovery
from the worst moments. Off (the default), a point costs one comparison of an empty string.

after_reserve          the gate reserved a batch's stock; PostgreSQL has not committed
after_expiry_reserve   the same, in a transaction that expires holds (their stock is back
                       at the gate, the ledger still says HELD)
after_payment_write    a batch's payments are written, not committed
after_db_commit        PostgreSQL committed a batch; its offsets are not committed
after_payment_commit   the same, for a batch with payments"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable

from shared.config import Settings

POINTS = (
    "after_reserve",
    "after_expiry_reserve",
    "after_payment_write",
    "after_db_commit",
    "after_payment_commit",
)

log = logging.getLogger(__name__)


def point(settings: Settings, name: str, when: Callable[[], bool] | None = None) -> None:
    if settings.fault_point == name and (when is None or when()):
        log.critical("fault injection: SIGKILL at %s", name)
        os.kill(os.getpid(), signal.SIGKILL)
