"""A worker's scheduler: fires the ticks of periodic jobs.

Every worker runs one (unless started with ``--no-schedules``); they need no
leader, because the database lets exactly one of them fire each tick
(:mod:`django_dbq.scheduling.firing`). It is not a thread of its own: the
worker's main thread calls :meth:`Scheduler.step` when it is due, on the main
thread's connection (so it costs no connection). A step reads the enabled
schedules every :data:`REFRESH_SECONDS` (so a schedule added or changed in the
admin is picked up within that time), fires what is due, and says how long until
the next tick of any of them. With no schedule, its only cost is that read.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import DatabaseError, InterfaceError, connections
from django.utils import timezone

from .. import conf, schedules
from ..scheduling import firing

logger = logging.getLogger("django_dbq.scheduler")

#: Seconds between reads of the schedule table.
REFRESH_SECONDS = 5.0
#: Longest sleep between two looks at the clock (a system clock may jump).
MAX_SLEEP_SECONDS = 5.0


class Scheduler:
    """Fires due ticks, one :meth:`step` at a time."""

    def __init__(self, owner: str, *, using: str | None = None) -> None:
        using = using or conf.database()
        self.owner = owner
        self.using = using
        self.fired = 0
        self._rows: list[Any] = []
        self._next_refresh = 0.0
        self._synced = False
        self._backoff = 0.5

    def step(self) -> float:
        """Fire what is due; returns the seconds until the next step is due. Never
        raises: a database error is logged and the step is tried again with backoff."""
        try:
            if not self._synced:
                firing.sync_settings(using=self.using)
                self._synced = True
            if time.monotonic() >= self._next_refresh:
                self._rows = firing.enabled(using=self.using)
                self._next_refresh = time.monotonic() + REFRESH_SECONDS
            self.fired += sum(
                1
                for fired in firing.fire_due(self.owner, rows=self._rows, using=self.using)
                if fired.job_id is not None
            )
            self._backoff = 0.5
        except (DatabaseError, InterfaceError) as exc:
            logger.warning("Scheduler could not reach the database (%s); retrying", exc)
            connections[self.using].close()
            self._next_refresh = 0.0  # read the rows again: what we hold may be stale
            delay, self._backoff = self._backoff, min(self._backoff * 2, 10.0)
            return delay
        except Exception:
            logger.exception("Scheduler failed; going on")
            self._next_refresh = 0.0
            return 1.0
        return self._sleep(self._rows, self._next_refresh)

    def _sleep(self, rows: list[Any], next_refresh: float) -> float:
        """Seconds until the next tick of any schedule, or the next refresh."""
        now = timezone.now()
        sleep = min(MAX_SLEEP_SECONDS, max(0.0, next_refresh - time.monotonic()))
        for row in rows:
            try:
                upcoming = schedules.next_tick(
                    max(firing.handled_through(row), now),
                    cron=row.cron,
                    every=row.every_seconds,
                    timezone=row.timezone,
                )
            except (ValueError, LookupError):
                continue
            if upcoming is not None:
                sleep = min(sleep, (upcoming - now).total_seconds())
        return max(0.01, sleep)
