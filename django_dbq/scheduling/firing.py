"""Keeping the schedule table in step with ``DBQ_SCHEDULES``, and firing ticks.

A tick fires exactly once, however many workers on however many hosts try at
the same moment, because two things in the database say so:

1. moving the schedule's ``last_tick`` forward is a guarded ``UPDATE ... WHERE
   last_tick < tick``: of the workers that try, the database lets one through
   (the others wait for its row lock, then match nothing), and a worker with a
   stale view can never fire a tick older than one already handled;
2. the tick's row in ``django_dbq_schedule_tick`` is unique on (schedule, tick).

The ``UPDATE``, the tick's row and the job are written in one transaction: a
worker killed in the middle leaves none of them, and the next worker to look
fires the tick.
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from .. import conf, schedules
from ..models import Job
from ..records import Schedule, ScheduleTick

logger = logging.getLogger("django_dbq.scheduling")

#: The fields of a schedule row that come from its definition.
DEFINITION_FIELDS = (
    "job_name",
    "cron",
    "every_seconds",
    "timezone",
    "workspace",
    "queue_name",
    "priority",
    "missed",
    "enabled",
)


@dataclass(frozen=True)
class Fired:
    """A tick this process handled: the job it created, or ``None`` if the tick was
    passed over (missed under the ``skip`` policy, or its job could not be made)."""

    schedule: str
    tick: datetime.datetime
    job_id: uuid.UUID | None


def _definition(spec: schedules.ScheduleSpec) -> dict[str, Any]:
    return {
        "job_name": spec.job,
        "cron": spec.cron,
        "every_seconds": spec.every,
        "timezone": spec.timezone,
        # As the JSON column gives it back (a tuple would never compare equal).
        "workspace": json.loads(json.dumps(spec.workspace)),
        "queue_name": spec.queue,
        "priority": spec.priority,
        "missed": spec.missed,
        "enabled": spec.enabled,
    }


def sync_settings(
    specs: dict[str, schedules.ScheduleSpec] | None = None, *, using: str | None = None
) -> None:
    """Make the settings' schedules rows of the table: add new ones, update changed
    ones (their ticks go on from where they were), delete those no longer declared.
    A schedule added in the admin with the same name as one in the setting is left
    as it is (and a warning logged)."""
    using = using or conf.database()
    specs = schedules.from_settings() if specs is None else specs
    now = timezone.now()
    table = Schedule.objects.using(using)
    existing = {row.name: row for row in table.all()}
    for name, spec in specs.items():
        values = _definition(spec)
        row = existing.get(name)
        if row is None:
            try:
                with transaction.atomic(using=using):
                    table.create(name=name, from_settings=True, created=now, modified=now, **values)
            except IntegrityError:
                pass  # another worker added it a moment ago
        elif not row.from_settings:
            logger.warning(
                "DBQ_SCHEDULES[%r] has the name of a schedule added in the admin; the "
                "admin's schedule is kept and the setting's ignored: rename one of them",
                name,
            )
        elif any(getattr(row, key) != value for key, value in values.items()):
            table.filter(pk=row.pk, from_settings=True).update(modified=now, **values)
    gone = [row.pk for name, row in existing.items() if row.from_settings and name not in specs]
    if gone:
        table.filter(pk__in=gone, from_settings=True).delete()


def enabled(*, using: str | None = None) -> list[Schedule]:
    """The schedules to fire."""
    using = using or conf.database()
    return list(Schedule.objects.using(using).filter(enabled=True))


def _timing(schedule: Schedule) -> dict[str, Any]:
    return {
        "cron": schedule.cron,
        "every": schedule.every_seconds,
        "timezone": schedule.timezone,
    }


def handled_through(schedule: Schedule) -> datetime.datetime:
    """The time up to which the schedule's ticks are handled (its last tick, or its
    creation for a schedule that never ticked)."""
    return schedule.last_tick or schedule.created


def next_fire(schedule: Schedule, now: datetime.datetime | None = None) -> datetime.datetime | None:
    """When the schedule fires next (``now`` if a tick is due and will fire); ``None``
    for a schedule that is disabled or never fires."""
    now = now or timezone.now()
    if not schedule.enabled:
        return None
    timing = _timing(schedule)
    after = handled_through(schedule)
    try:
        if schedules.due_ticks(after, now, missed=schedule.missed, **timing):
            return now
        return schedules.next_tick(max(after, now), **timing)
    except (ValueError, LookupError):  # an expression or zone made invalid in the table
        return None


def fire_due(
    owner: str,
    *,
    rows: Iterable[Schedule] | None = None,
    using: str | None = None,
    now: datetime.datetime | None = None,
) -> list[Fired]:
    """Fire the due ticks of ``rows`` (default: every enabled schedule). Each row's
    ``last_tick`` is moved forward in memory past what was tried, so a caller that
    keeps the rows does not try the same ticks again."""
    using = using or conf.database()
    now = now or timezone.now()
    fired: list[Fired] = []
    for schedule in enabled(using=using) if rows is None else rows:
        try:
            fired += fire_schedule(schedule, owner, using=using, now=now)
        except (ValueError, LookupError) as exc:
            logger.error("Schedule %r cannot be fired: %s", schedule.name, exc)
    return fired


def fire_schedule(
    schedule: Schedule, owner: str, *, using: str | None = None, now: datetime.datetime
) -> list[Fired]:
    """Fire the due ticks of one schedule (see :func:`django_dbq.schedules.due_ticks`)."""
    using = using or conf.database()
    after = handled_through(schedule)
    timing = _timing(schedule)
    fired: list[Fired] = []
    if schedule.missed == "skip":
        missed = schedules.latest_missed(after, now, **timing)
        if missed is not None and _pass_over(schedule, missed, using):
            fired.append(Fired(schedule.name, missed, None))
        if missed is not None:
            after = schedule.last_tick = max(after, missed)
    for tick in schedules.due_ticks(after, now, missed=schedule.missed, **timing):
        job_id = _fire(schedule, tick, owner, using, now)
        if job_id is not False:
            fired.append(Fired(schedule.name, tick, job_id))
        # Whoever won, the tick is handled: never try it (or an older one) again.
        schedule.last_tick = max(schedule.last_tick or tick, tick)
    return fired


def _advance(schedule: Schedule, tick: datetime.datetime, using: str, **values: Any) -> bool:
    """Move ``last_tick`` forward to ``tick``, if no one has handled it yet."""
    return bool(
        Schedule.objects.using(using)
        .filter(pk=schedule.pk, enabled=True)
        .filter(Q(last_tick__isnull=True) | Q(last_tick__lt=tick))
        .update(last_tick=tick, **values)
    )


def _pass_over(schedule: Schedule, tick: datetime.datetime, using: str) -> bool:
    with transaction.atomic(using=using):
        return _advance(schedule, tick, using)


def _fire(
    schedule: Schedule, tick: datetime.datetime, owner: str, using: str, now: datetime.datetime
) -> uuid.UUID | bool | None:
    """Fire one tick: the job's id; ``None`` if the tick was passed over because its
    job could not be made; ``False`` if another worker had handled it."""
    job_id = uuid.uuid4()
    try:
        with transaction.atomic(using=using):
            # The guarded UPDATE first: it takes the schedule's row lock, so the
            # workers firing this tick queue up here and all but one match nothing.
            if not _advance(schedule, tick, using, last_fired_at=now, last_job_id=job_id):
                return False
            ScheduleTick.objects.using(using).create(
                schedule_id=schedule.pk, tick=tick, job_id=job_id, fired_at=now, fired_by=owner
            )
            Job.objects.db_manager(using).create(
                id=job_id,
                name=schedule.job_name,
                workspace=copy.deepcopy(schedule.workspace),
                queue_name=schedule.queue_name,
                priority=schedule.priority,
            )
    except IntegrityError:
        return False  # the tick's row exists: fired by another worker
    except DatabaseError:
        raise  # the database failed, not the job: the tick stays due
    except Exception as exc:  # the job was refused (DbqError) or its creation hook raised
        logger.error(
            "Schedule %r: could not create its %r job for the tick at %s (%s: %s); the "
            "tick is passed over",
            schedule.name,
            schedule.job_name,
            tick.isoformat(),
            type(exc).__name__,
            exc,
        )
        return None if _pass_over(schedule, tick, using) else False
    logger.info(
        "Schedule %r fired: job %s (%s) for the tick at %s",
        schedule.name,
        job_id,
        schedule.job_name,
        tick.isoformat(),
    )
    return job_id
