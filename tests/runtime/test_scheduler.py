"""Periodic jobs fired by real worker processes: every tick exactly once, whatever
the number of workers, with workers killed (SIGKILL) and replaced while it runs.

The run lasts ``DBQ_SCHEDULE_SOAK_SECONDS`` (30 by default; the figures in
docs/scheduling.rst come from a run of 300)."""

from __future__ import annotations

import datetime
import itertools
import os
import random
import signal
import time

import pytest
from django.utils import timezone

from django_dbq.models import Job, Schedule, ScheduleTick, WorkerRecord
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

EVERY = 2  # seconds between ticks
FAST = {"DBQ_LEASE_SECONDS": "3", "DBQ_RESCUE_INTERVAL": "0.5"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_every_tick_fires_exactly_once_across_eight_workers_some_killed(start_worker):
    soak = float(os.environ.get("DBQ_SCHEDULE_SOAK_SECONDS", "30"))
    now = timezone.now()
    schedule = Schedule.objects.create(
        name="soak", job_name="noop", every_seconds=EVERY, created=now, modified=now
    )
    # Eight worker processes: two supervisors of two, two single workers with two
    # threads, two plain ones.
    singles = [
        start_worker("--processes", "2", **FAST),
        start_worker("--processes", "2", **FAST),
        start_worker("--concurrency", "2", **FAST),
        start_worker("--concurrency", "2", **FAST),
        start_worker(**FAST),
        start_worker(**FAST),
    ]
    wait_for(
        lambda: WorkerRecord.objects.count() >= 8, timeout=60, message="eight workers registered"
    )
    first = wait_for(
        lambda: ScheduleTick.objects.filter(schedule=schedule).order_by("tick").first(),
        timeout=30,
        message="the first tick",
    )
    rng = random.Random(1234)
    killed = 0
    deadline = time.monotonic() + soak
    next_kill = time.monotonic() + soak / 5
    while time.monotonic() < deadline:
        if time.monotonic() >= next_kill:
            # Kill a random registered worker process: a supervisor's child is
            # restarted by its supervisor; a single worker is replaced here.
            victims = [r.pid for r in WorkerRecord.objects.all() if _alive(r.pid)]
            pid = rng.choice(victims)
            os.kill(pid, signal.SIGKILL)
            killed += 1
            for worker in list(singles):
                if worker.pid == pid:
                    singles.remove(worker)
                    singles.append(start_worker(**FAST))
            next_kill = time.monotonic() + soak / 5
        time.sleep(0.2)  # the soak's pace, not a wait for a result
    last_due = timezone.now() - datetime.timedelta(seconds=EVERY)
    wait_for(
        lambda: ScheduleTick.objects.filter(schedule=schedule, tick__gte=last_due).exists(),
        message="the ticks up to the end",
    )
    for worker in singles:
        worker.signal(signal.SIGTERM)
    for worker in singles:
        worker.wait()

    ticks = list(ScheduleTick.objects.filter(schedule=schedule).order_by("tick"))
    gaps = [(b.tick - a.tick).total_seconds() for a, b in itertools.pairwise(ticks)]
    assert killed >= 4
    assert ticks[0].tick == first.tick
    assert len(ticks) >= soak / EVERY
    assert set(gaps) == {float(EVERY)}, "a tick was skipped while workers were alive"
    jobs = set(Job.objects.filter(name="noop").values_list("pk", flat=True))
    assert jobs == {tick.job_id for tick in ticks}  # one job per tick, no other
    assert len({tick.fired_by for tick in ticks}) > 1  # the firing was shared


def test_a_worker_started_with_no_schedules_fires_none(start_worker):
    now = timezone.now()
    Schedule.objects.create(
        name="quiet", job_name="noop", every_seconds=1, created=now, modified=now
    )
    quiet = start_worker("--no-schedules")
    wait_for(lambda: "schedules=off" in quiet.output(), message="the start-up line")
    wait_for(  # the worker runs: its registry row is renewed at least once
        lambda: (
            (r := WorkerRecord.objects.filter(pid=quiet.pid).first())
            and r.heartbeat_at > r.started_at
        ),
        message="a heartbeat",
    )
    assert not ScheduleTick.objects.exists()
    firing = start_worker(**FAST)
    wait_for(lambda: ScheduleTick.objects.exists(), message="the other worker's first tick")
    assert "schedules=on" in firing.output()
