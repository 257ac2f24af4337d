"""Pausing a queue: while a queue is paused, workers claim nothing from it.

A pause is a row in its own table, so it survives restarts and applies to every
worker on every host. Workers read the paused queues at most every
:data:`CHECK_SECONDS` (before a claim), so a pause takes effect within that
time; jobs already running finish as usual.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import conf
from ..records import QUEUE_NAME_MAX_LENGTH, QueuePause

#: How stale a worker's view of the paused queues may be, in seconds.
CHECK_SECONDS = 1.0


def _checked(queue: str) -> str:
    if not isinstance(queue, str) or not queue.strip():
        raise ValueError("A queue name must be a non-empty string.")
    if len(queue) > QUEUE_NAME_MAX_LENGTH:
        raise ValueError(
            f"Queue name {queue[:20]!r}... is {len(queue)} characters long; "
            f"the limit is {QUEUE_NAME_MAX_LENGTH}."
        )
    return queue


def pause(queue: str, *, by: str = "", using: str | None = None) -> bool:
    """Pause ``queue``; ``False`` if it was paused already. ``by`` says who paused it."""
    using = using or conf.database()
    queue = _checked(queue)
    try:
        with transaction.atomic(using=using):
            _, created = QueuePause.objects.using(using).get_or_create(
                queue_name=queue, defaults={"paused_at": timezone.now(), "paused_by": by[:255]}
            )
    except IntegrityError:  # paused by someone else at the same moment
        return False
    return created


def resume(queue: str, *, using: str | None = None) -> bool:
    """Resume ``queue``; ``False`` if it was not paused."""
    using = using or conf.database()
    deleted, _ = QueuePause.objects.using(using).filter(queue_name=_checked(queue)).delete()
    return bool(deleted)


def paused(*, using: str | None = None) -> list[QueuePause]:
    """Every pause, by queue name."""
    using = using or conf.database()
    return list(QueuePause.objects.using(using).all())


def paused_queues(*, using: str | None = None) -> set[str]:
    """The names of the paused queues."""
    using = using or conf.database()
    return set(QueuePause.objects.using(using).values_list("queue_name", flat=True))
