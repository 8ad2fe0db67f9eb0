"""Step 4 of a decided batch (consumer/finalize.py): its gate holds settled in Redis while the
worker moves on to the next batch."""

from __future__ import annotations

import asyncio
import uuid

from shared.inventory import Inventory

# One event's settling: its gate holds' outcomes (True: kept), its committed releases, and
# the runs of seats PostgreSQL gave.
Settle = tuple[int, list[tuple[uuid.UUID, bool]], list[uuid.UUID], list[tuple[int, int]]]


class Settling:
    """A committed batch's holds being settled in Redis (step 4) while its caller moves on.
    `wait()` returns once every event's holds are settled. A failed attempt is started again
    by the next `wait()`, which raises the failure to its caller to retry: settle.lua is
    idempotent, so settling twice is harmless."""

    def __init__(self, inventory: Inventory, settles: list[Settle]) -> None:
        self._inventory = inventory
        self._left = [s for s in settles if s[1] or s[2] or s[3]]
        self._task = self._start()

    def _start(self) -> asyncio.Task[None]:
        task = asyncio.create_task(self._run(), name="settle")
        _RUNNING.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(_RUNNING.discard)
        task.add_done_callback(_retrieve_exception)  # whoever waits sees it; else it is retried
        return task

    async def _run(self) -> None:
        while self._left:
            event_id, outcomes, released, taken = self._left[0]
            await self._inventory.settle(event_id, outcomes, released, taken)
            del self._left[0]

    async def wait(self) -> None:
        task = self._task
        try:
            await asyncio.shield(task)  # a waiter that gives up does not cancel the settling
        except Exception:
            if self._task is task:  # no other waiter started it again yet
                self._task = self._start()
            raise


_RUNNING: set[asyncio.Task[None]] = set()


def _retrieve_exception(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()
