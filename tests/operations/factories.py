"""Rows for the operations tests: jobs in a chosen state at chosen times, written
straight to the job table (a finish is a state and a ``finished_at``, nothing more
is read by the figures), and fixed moments to read them at."""

from __future__ import annotations

import datetime

from django_dbq.models import Job
from django_dbq.states import JobStates

UTC = datetime.timezone.utc
#: A fixed moment the tests read the figures at (a summer day: London is on UTC+1).
NOW = datetime.datetime(2024, 7, 1, 12, 0, 5, tzinfo=UTC)


def at(hour: int, minute: int, second: int = 0, day: int = 1) -> datetime.datetime:
    """A moment of July 2024, in UTC."""
    return datetime.datetime(2024, 7, day, hour, minute, second, tzinfo=UTC)


def job(
    queue: str = "default",
    *,
    state: str = JobStates.READY,
    created: datetime.datetime | None = None,
    run_after: datetime.datetime | None = None,
    finished_at: datetime.datetime | None = None,
) -> Job:
    """A job of ``queue`` in ``state``: created as usual, then its fields set by an UPDATE."""
    made = Job.objects.create(name="noop", queue_name=queue, run_after=run_after)
    fields = {"state": state, "finished_at": finished_at}
    if created is not None:
        fields["created"] = created
    Job.objects.filter(pk=made.pk).update(**fields)
    made.refresh_from_db()
    return made


def finished(
    finished_at: datetime.datetime, queue: str = "default", *, failed: bool = False
) -> Job:
    """A job of ``queue`` that completed (or failed) at ``finished_at``."""
    state = JobStates.FAILED if failed else JobStates.COMPLETED
    return job(queue, state=state, finished_at=finished_at)
