"""One exception tree for the whole service; each class's docstring is its default message."""

from __future__ import annotations


class TicketsError(Exception):
    """Something went wrong in the booking service."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(TicketsError):
    """The configuration is invalid."""


class NotFound(TicketsError):
    """The resource does not exist."""


class InvalidRequest(TicketsError):
    """The request is invalid."""


class Unauthenticated(TicketsError):
    """A valid bearer token is required."""


class Forbidden(TicketsError):
    """This caller may not do that."""


class NotAdmitted(Forbidden):
    """This event sells through its queue: join it, wait for admission, then book with the
    admission token."""


class EmailTaken(TicketsError):
    """An account with this email already exists."""


class RateLimited(TicketsError):
    """Too many requests; retry after the time given."""

    def __init__(self, retry_after_s: int, limit: int, reset_s: int) -> None:
        super().__init__(f"too many requests; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s
        self.limit = limit  # the burst of the limit that refused
        self.reset_s = reset_s  # until that limit is back to its full burst


class WrongStatus(TicketsError):
    """The booking is not in a status that allows this."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status  # the booking's current status


class LimitExceeded(TicketsError):
    """The quantity is above the event's per-user limit."""


class Unsatisfiable(TicketsError):
    """The request can never be met for this event (more seats side by side than a row has)."""


class IdempotencyConflict(TicketsError):
    """This Idempotency-Key was already used with a different request body."""


class IdempotencyInProgress(TicketsError):
    """A request with this Idempotency-Key is still being processed; retry shortly."""


class Unavailable(TicketsError):
    """A backing service is unavailable; retry later."""


class BrokerUnavailable(Unavailable):
    """Kafka did not acknowledge the booking request; nothing was accepted."""


class Unacknowledged(BrokerUnavailable):
    """Kafka did not acknowledge the booking request in time; nothing was accepted, though
    the request was sent and may still reach the topic."""


class QueueLost(Unavailable):
    """The event's queue has lost its data (Redis): nobody is admitted until an admin opens
    it again; admission tokens already given still work."""


class QueueNotConfigured(Unavailable):
    """No secret signs admission tokens (TICKETS_QUEUE_SECRET): nobody can be admitted."""


class MailUnavailable(Unavailable):
    """The SMTP server could not take the mail now (unreachable, or a 4xx reply)."""


class MailRefused(TicketsError):
    """The SMTP server refused the mail for good (a 5xx reply): sending it again is useless."""


class CounterMissing(TicketsError):
    """The inventory counter for the event is missing and must be rebuilt from PostgreSQL."""


class GateStale(TicketsError):
    """The Redis primary changed since this event's gate was last written: a promoted replica
    may lack the old primary's last writes, so the gate must be rebuilt from PostgreSQL."""


class Stopped(TicketsError):
    """Asked to stop while waiting for a dependency to come back; the work was not done."""
