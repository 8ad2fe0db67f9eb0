"""The garbage collector, set up for a long-running service.

CPython's cyclic collector runs its youngest generation every 700 net container
allocations, and the oldest whenever enough objects have survived into it. A service
under load breaks both assumptions: each request or batch allocates hundreds of short-lived
containers that are still alive while they wait for Kafka, Redis or PostgreSQL (so they
survive young collections), and the application's own startup objects (routes, schemas,
modules) are scanned again by every full collection. Under load the collector took a
tenth of the API's time per request, most of it in full collections.

`settle()` runs once startup is done: it freezes what exists (never scanned again) and
raises the young generation's threshold, so short-lived objects are mostly freed by
reference counting before a collection ever sees them. Reference cycles are still
collected, just in larger, rarer passes. It freezes without collecting first: a start
leaves almost no garbage, and a full collection would lengthen it. The worker turns the
collector off for its whole start (consumer/__main__.py); `settle()` turns it back on.
"""

from __future__ import annotations

import gc


def settle(young_threshold: int) -> None:
    """Freeze the startup objects and collect young objects every `young_threshold` net
    allocations; 0 leaves the collector as Python set it up. Either way it is on after."""
    gc.enable()
    if young_threshold <= 0:
        return
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, oldest)
