"""The worker registry: each running worker keeps a row up to date.

A worker writes its row at start (:func:`register`), renews it at every
heartbeat (:func:`beat`) and deletes it when it stops (:func:`unregister`). Each
beat pushes ``expires_at`` forward by :data:`MISSED_BEATS` heartbeat intervals;
a row whose ``expires_at`` has passed belongs to a worker that died without a
word, and the next rescue pass of any worker deletes it (:func:`prune_dead`).
"""

from __future__ import annotations

import datetime
import os
import socket
from collections.abc import Sequence

from django.utils import timezone

from .. import conf
from ..records import WorkerRecord

#: Heartbeats a worker may miss before its record counts as dead.
MISSED_BEATS = 3
#: Added to the expiry, so a slow heartbeat (a busy database) is not taken for death.
EXPIRY_SLACK_SECONDS = 5.0


def _expiry(now: datetime.datetime, interval: float) -> datetime.datetime:
    return now + datetime.timedelta(seconds=MISSED_BEATS * interval + EXPIRY_SLACK_SECONDS)


def register(
    owner: str,
    *,
    queues: Sequence[str],
    concurrency: int,
    interval: float,
    using: str | None = None,
) -> WorkerRecord:
    """Write the row of a starting worker (``owner`` is its lease owner string)."""
    using = using or conf.database()
    now = timezone.now()
    record = WorkerRecord(
        owner=owner,
        host=socket.gethostname()[:255],
        pid=os.getpid(),
        queues=list(queues),
        concurrency=concurrency,
        started_at=now,
        heartbeat_at=now,
        expires_at=_expiry(now, interval),
    )
    WorkerRecord.objects.using(using).filter(owner=owner).delete()
    record.save(using=using, force_insert=True)
    return record


def beat(
    record: WorkerRecord,
    *,
    jobs_held: int,
    jobs_done: int,
    interval: float,
    using: str | None = None,
) -> None:
    """Renew a worker's row; write it again if it was pruned meanwhile (the worker was
    cut off from the database for longer than its expiry)."""
    using = using or conf.database()
    now = timezone.now()
    record.heartbeat_at, record.expires_at = now, _expiry(now, interval)
    record.jobs_held, record.jobs_done = jobs_held, jobs_done
    fields = ["heartbeat_at", "expires_at", "jobs_held", "jobs_done"]
    found = WorkerRecord.objects.using(using).filter(owner=record.owner)
    if not found.update(**{field: getattr(record, field) for field in fields}):
        record.pk = None
        record.save(using=using, force_insert=True)


def unregister(owner: str, *, using: str | None = None) -> None:
    """Delete the row of a worker that stops."""
    using = using or conf.database()
    WorkerRecord.objects.using(using).filter(owner=owner).delete()


def prune_dead(*, using: str | None = None) -> int:
    """Delete the rows of workers that stopped heartbeating; returns how many."""
    using = using or conf.database()
    # One DELETE statement: nothing refers to these rows and no signal is wanted, so
    # Django's collector (and the transaction around it) has nothing to do.
    stale = WorkerRecord.objects.using(using).filter(expires_at__lt=timezone.now())
    return stale._raw_delete(using)


def live_workers(*, using: str | None = None) -> list[WorkerRecord]:
    """The workers whose rows have not expired, by host and pid."""
    using = using or conf.database()
    return list(WorkerRecord.objects.using(using).filter(expires_at__gte=timezone.now()))
