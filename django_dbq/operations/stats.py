"""The figures of the dashboard, the metrics command and the metrics view.

Two kinds of figure, read differently so the page stays fast on a big table:

- **waiting work** (ready now, scheduled for later, processing, the oldest ready
  job) is counted from the jobs that have not finished: one grouped query over
  the unfinished rows, however many finished ones the table holds;
- **finished work** (completed and failed per minute and per hour) is read from
  per-minute counts (:class:`~django_dbq.records.MinuteCount`). :func:`roll_up`
  counts each minute once, after it is over (plus :data:`SETTLE_SECONDS`, the
  time a finish takes to commit), from an index of finished jobs by finish time;
  workers call it at their rescue passes and :func:`snapshot` before reading.
  The minutes not yet rolled up (the last one or two) are counted from the jobs.

Times are bucketed in UTC by the database without time zone support (a stock
MariaDB has no time zone tables) and shown in the current time zone.

Nothing here locks a job row: these are plain reads, and the only writes are of
the per-minute counts (an insert that skips minutes already there).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db.models import Case, Count, IntegerField, Max, Min, Q, Sum, Value, When
from django.db.models.functions import Coalesce, TruncHour, TruncMinute
from django.utils import timezone

from .. import conf
from ..models import Job
from ..records import MinuteCount, QueuePause, WorkerRecord
from ..states import RUNNABLE_STATES, JobStates

UTC = datetime.timezone.utc
MINUTE = datetime.timedelta(minutes=1)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
#: A finished job is counted in its minute's roll-up if its finish committed within
#: this many seconds of the time it records (a completion is written in milliseconds).
SETTLE_SECONDS = 10
#: How far back a roll-up looks the first time, and how long minute counts are kept.
ROLL_UP_FROM = datetime.timedelta(hours=25)
KEEP = datetime.timedelta(hours=48)


@dataclass(frozen=True)
class Bucket:
    """Jobs that finished in one minute or hour, starting at ``start`` (UTC)."""

    start: datetime.datetime
    completed: int = 0
    failed: int = 0


@dataclass
class QueueFigures:
    """The figures of one queue (or, with ``queue`` ``None``, of all of them)."""

    queue: str | None
    ready: int = 0
    scheduled: int = 0
    processing: int = 0
    #: Jobs finished in the last 24 hours (1,440 minutes, the current one included).
    completed_24h: int = 0
    failed_24h: int = 0
    #: Since when the oldest ready job has been ready (its run_after, or its creation).
    oldest_ready_since: datetime.datetime | None = None
    paused: bool = False

    def lag(self, now: datetime.datetime) -> float | None:
        """Seconds the oldest ready job has waited at ``now``; ``None`` if none waits."""
        if self.oldest_ready_since is None:
            return None
        return max(0.0, (now - self.oldest_ready_since).total_seconds())


@dataclass
class Snapshot:
    """Everything the dashboard shows, read at ``taken_at``."""

    taken_at: datetime.datetime
    queues: list[QueueFigures]
    totals: QueueFigures
    per_minute: list[Bucket]  # the last 60 minutes, oldest first
    per_hour: list[Bucket]  # the last 24 hours, oldest first
    workers: list[WorkerRecord] = field(default_factory=list)
    pauses: dict[str, QueuePause] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The figures as plain JSON-ready values (times in ISO 8601, UTC)."""

        def figures(item: QueueFigures) -> dict[str, Any]:
            values = asdict(item)
            values["oldest_ready_since"] = _iso(item.oldest_ready_since)
            values["lag_seconds"] = item.lag(self.taken_at)
            return values

        def buckets(items: list[Bucket]) -> list[dict[str, Any]]:
            return [{**asdict(b), "start": _iso(b.start)} for b in items]

        return {
            "taken_at": _iso(self.taken_at),
            "queues": [figures(q) for q in self.queues],
            "totals": figures(self.totals),
            "per_minute": buckets(self.per_minute),
            "per_hour": buckets(self.per_hour),
            "workers": [
                {
                    "owner": w.owner,
                    "host": w.host,
                    "pid": w.pid,
                    "queues": w.queues,
                    "concurrency": w.concurrency,
                    "started_at": _iso(w.started_at),
                    "heartbeat_at": _iso(w.heartbeat_at),
                    "jobs_held": w.jobs_held,
                    "jobs_done": w.jobs_done,
                }
                for w in self.workers
            ],
        }


def _iso(value: datetime.datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _floor(moment: datetime.datetime, unit: datetime.timedelta) -> datetime.datetime:
    moment = moment.astimezone(UTC).replace(second=0, microsecond=0)
    return moment.replace(minute=0) if unit == HOUR else moment


def _aware(value: datetime.datetime) -> datetime.datetime:
    """A bucket as the database returns it: aware in UTC (naive with USE_TZ off)."""
    return value.replace(tzinfo=UTC) if timezone.is_naive(value) else value.astimezone(UTC)


def _outcomes() -> dict[str, Any]:
    # SUM(CASE ...) rather than COUNT(...) FILTER: it reads only the state column
    # (PostgreSQL answers from the index alone) and works on every database.
    def one_if(state: str) -> Any:
        one = Case(When(state=state, then=Value(1)), default=Value(0))
        return Sum(one, output_field=IntegerField())

    return {"completed": one_if(JobStates.COMPLETED), "failed": one_if(JobStates.FAILED)}


def _finished_by_minute(
    using: str, start: datetime.datetime | None, end: datetime.datetime | None
) -> list[tuple[datetime.datetime, str, int, int]]:
    """(minute, queue, completed, failed) of the jobs finished in [start, end)."""
    jobs = Job.objects.using(using).filter(finished_at__isnull=False)
    if start is not None:
        jobs = jobs.filter(finished_at__gte=start)
    if end is not None:
        jobs = jobs.filter(finished_at__lt=end)
    rows = (
        jobs.annotate(bucket=TruncMinute("finished_at", tzinfo=UTC))
        .values("bucket", "queue_name")
        .annotate(**_outcomes())
        .order_by()
    )
    return [
        (_aware(r["bucket"]), r["queue_name"], r["completed"] or 0, r["failed"] or 0) for r in rows
    ]


def roll_up(*, using: str | None = None, now: datetime.datetime | None = None) -> datetime.datetime:
    """Count the jobs finished in every minute that is over and not yet counted.

    Returns the end of the rolled-up time: every finish before it is in the minute
    counts. Safe to run from many processes at once: a minute already counted is
    skipped (a unique constraint), and the counts of a minute are the same whoever
    makes them.
    """
    using = using or conf.database()
    now = now or timezone.now()
    end = _floor(now - datetime.timedelta(seconds=SETTLE_SECONDS), MINUTE)
    last = MinuteCount.objects.using(using).aggregate(last=Max("minute"))["last"]
    start = _floor(now - ROLL_UP_FROM, MINUTE)
    if last is not None:
        start = max(start, _aware(last) + MINUTE)
    if start >= end:
        return end
    counts = [
        MinuteCount(minute=minute, queue_name=queue, completed=completed, failed=failed)
        for minute, queue, completed, failed in _finished_by_minute(using, start, end)
    ]
    if counts:
        MinuteCount.objects.using(using).bulk_create(counts, ignore_conflicts=True)
        MinuteCount.objects.using(using).filter(minute__lt=now - KEEP).delete()
    return end


def waiting(
    *, using: str | None = None, now: datetime.datetime | None = None
) -> dict[str, QueueFigures]:
    """Ready, scheduled and processing jobs and the oldest ready job, by queue."""
    using = using or conf.database()
    now = now or timezone.now()
    runnable = Q(state__in=RUNNABLE_STATES)
    due = runnable & (Q(run_after__isnull=True) | Q(run_after__lte=now))
    # The unfinished jobs, spelled as the predicates of the partial indexes of
    # migration 0010 (claim, batch claim, lease): PostgreSQL then reads them through
    # those indexes (a BitmapOr) rather than scanning the finished jobs too.
    unfinished = (
        Q(state__in=RUNNABLE_STATES, batch_key__isnull=True)
        | Q(state__in=RUNNABLE_STATES, batch_key__isnull=False)
        | Q(state=JobStates.PROCESSING)
    )
    rows = (
        Job.objects.using(using)
        .filter(unfinished)
        .values("queue_name")
        .annotate(
            ready=Count("pk", filter=due),
            scheduled=Count("pk", filter=runnable & Q(run_after__gt=now)),
            processing=Count("pk", filter=Q(state=JobStates.PROCESSING)),
            oldest=Min(Coalesce("run_after", "created"), filter=due),
        )
        .order_by()
    )
    return {
        r["queue_name"]: QueueFigures(
            queue=r["queue_name"],
            ready=r["ready"],
            scheduled=r["scheduled"],
            processing=r["processing"],
            oldest_ready_since=r["oldest"],
        )
        for r in rows
    }


def _add(buckets: dict[datetime.datetime, list[int]], start: Any, completed: int, failed: int):
    if start in buckets:
        buckets[start][0] += completed
        buckets[start][1] += failed


def snapshot(*, using: str | None = None, now: datetime.datetime | None = None) -> Snapshot:
    """Read every figure of the dashboard (a dozen small queries)."""
    using = using or conf.database()
    now = now or timezone.now()
    rolled_until = roll_up(using=using, now=now)
    queues = waiting(using=using, now=now)

    this_minute, this_hour = _floor(now, MINUTE), _floor(now, HOUR)
    minutes = {this_minute - i * MINUTE: [0, 0] for i in range(59, -1, -1)}
    hours = {this_hour - i * HOUR: [0, 0] for i in range(23, -1, -1)}

    def queue(name: str) -> QueueFigures:
        return queues.setdefault(name, QueueFigures(queue=name))

    # The 24-hour figures cover the last 1,440 minutes, this one included; the hour
    # chart starts at the top of the hour 23 hours ago.
    day_from = this_minute - DAY + MINUTE
    counts = MinuteCount.objects.using(using).filter(minute__lt=rolled_until)
    by_hour = (
        counts.filter(minute__gte=this_hour - 23 * HOUR)
        .annotate(hour=TruncHour("minute", tzinfo=UTC))
        .values("hour")
        .annotate(completed=Sum("completed"), failed=Sum("failed"))
        .order_by()
    )
    for row in by_hour:
        _add(hours, _aware(row["hour"]), row["completed"], row["failed"])
    by_queue = (
        counts.filter(minute__gte=day_from)
        .values("queue_name")
        .annotate(completed=Sum("completed"), failed=Sum("failed"))
        .order_by()
    )
    for row in by_queue:
        figures = queue(row["queue_name"])
        figures.completed_24h += row["completed"]
        figures.failed_24h += row["failed"]
    recent = counts.filter(minute__gte=this_minute - 59 * MINUTE).values_list(
        "minute", "completed", "failed"
    )
    for minute, completed, failed in recent:
        _add(minutes, _aware(minute), completed, failed)
    for minute, name, completed, failed in _finished_by_minute(using, rolled_until, None):
        # A finish stamped later than now (a host whose clock runs ahead) counts now.
        minute = min(minute, this_minute)
        _add(minutes, minute, completed, failed)
        _add(hours, _floor(minute, HOUR), completed, failed)
        figures = queue(name)
        figures.completed_24h += completed
        figures.failed_24h += failed

    workers = list(WorkerRecord.objects.using(using).filter(expires_at__gte=now))
    pauses = {p.queue_name: p for p in QueuePause.objects.using(using).all()}
    for worker in workers:
        for name in worker.queues:
            queue(name)
    for name in pauses:
        queue(name).paused = True
    ordered = [queues[name] for name in sorted(queues)]
    return Snapshot(
        taken_at=now,
        queues=ordered,
        totals=_totals(ordered),
        per_minute=[Bucket(start, *values) for start, values in minutes.items()],
        per_hour=[Bucket(start, *values) for start, values in hours.items()],
        workers=workers,
        pauses=pauses,
    )


def _totals(queues: Iterable[QueueFigures]) -> QueueFigures:
    total = QueueFigures(queue=None)
    for item in queues:
        total.ready += item.ready
        total.scheduled += item.scheduled
        total.processing += item.processing
        total.completed_24h += item.completed_24h
        total.failed_24h += item.failed_24h
        if item.oldest_ready_since is not None and (
            total.oldest_ready_since is None or item.oldest_ready_since < total.oldest_ready_since
        ):
            total.oldest_ready_since = item.oldest_ready_since
    return total
