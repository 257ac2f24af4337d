"""The scheduler thread of a worker: fires the ticks of periodic jobs.

Every worker runs one (unless started with ``--no-schedules``); they need no
leader, because the database lets exactly one of them fire each tick
(:mod:`django_dbq.scheduling.firing`). The thread reads the enabled schedules
every :data:`REFRESH_SECONDS` (so a schedule added or changed in the admin is
picked up within that time), sleeps until the next tick of any of them, and
fires what is due. With no schedule, its only cost is that read.
"""

from __future__ import annotations

import logging
import threading
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


class Scheduler(threading.Thread):
    """Fires due ticks until ``stop`` is set."""

    def __init__(self, owner: str, stop: threading.Event, *, using: str | None = None) -> None:
        using = using or conf.database()
        super().__init__(name="dbq-scheduler", daemon=True)
        self.owner = owner
        self.stop = stop
        self.using = using
        self.fired = 0

    def run(self) -> None:
        rows: list[Any] = []
        next_refresh = 0.0
        synced = False
        backoff = 0.5
        try:
            while not self.stop.is_set():
                try:
                    if not synced:
                        firing.sync_settings(using=self.using)
                        synced = True
                    if time.monotonic() >= next_refresh:
                        rows = firing.enabled(using=self.using)
                        next_refresh = time.monotonic() + REFRESH_SECONDS
                    self.fired += sum(
                        1
                        for fired in firing.fire_due(self.owner, rows=rows, using=self.using)
                        if fired.job_id is not None
                    )
                    backoff = 0.5
                except (DatabaseError, InterfaceError) as exc:
                    logger.warning("Scheduler could not reach the database (%s); retrying", exc)
                    connections[self.using].close()
                    next_refresh = 0.0  # read the rows again: what we hold may be stale
                    self.stop.wait(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                except Exception:
                    logger.exception("Scheduler failed; going on")
                    next_refresh = 0.0
                    self.stop.wait(1.0)
                    continue
                self.stop.wait(self._sleep(rows, next_refresh))
        finally:
            connections.close_all()

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
