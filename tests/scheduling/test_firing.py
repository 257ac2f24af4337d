"""django_dbq.scheduling.firing on the database: the schedule table kept in step with
DBQ_SCHEDULES, and each tick fired exactly once (one Job, one ScheduleTick), at
explicit times, by stale rows and by threads racing on their own connections."""

from __future__ import annotations

import datetime
import logging
import threading
import uuid

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from django_dbq import schedules
from django_dbq.models import Job, Schedule, ScheduleTick
from django_dbq.scheduling import firing
from django_dbq.scheduling.firing import Fired

pytestmark = pytest.mark.django_db

UTC = datetime.timezone.utc
SECOND = datetime.timedelta(seconds=1)
MINUTE = datetime.timedelta(minutes=1)
HOUR = datetime.timedelta(hours=1)
T0 = datetime.datetime(2026, 1, 5, 12, 0, 30, tzinfo=UTC)  # created; ticks at whole minutes
FIRST = datetime.datetime(2026, 1, 5, 12, 1, tzinfo=UTC)  # its first tick (every 60 s)


def make(name: str = "beat", *, created: datetime.datetime = T0, **fields) -> Schedule:
    """A schedule as the admin would add it (every minute unless told)."""
    fields.setdefault("job_name", "noop")
    if "cron" not in fields:
        fields.setdefault("every_seconds", 60)
    return Schedule.objects.create(name=name, created=created, modified=created, **fields)


def fresh(schedule: Schedule) -> Schedule:
    return Schedule.objects.get(pk=schedule.pk)


def specs(raw: dict) -> dict[str, schedules.ScheduleSpec]:
    valid, problems = schedules.validate(raw)
    assert problems == []
    return valid


def writes(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]


# --- sync_settings -------------------------------------------------------------------


def test_sync_creates_a_row_for_each_schedule_of_the_setting():
    firing.sync_settings(
        specs(
            {
                "nightly": {
                    "job": "record",
                    "cron": "30 2 * * *",
                    "timezone": "Europe/London",
                    "workspace": {"kind": "daily"},
                    "queue": "reports",
                    "priority": 3,
                    "missed": "skip",
                },
                "beat": {"job": "noop", "every": 30, "enabled": False},
            }
        )
    )

    nightly, beat = Schedule.objects.get(name="nightly"), Schedule.objects.get(name="beat")
    assert nightly.from_settings and beat.from_settings
    assert (nightly.job_name, nightly.cron, nightly.every_seconds, nightly.timezone) == (
        "record",
        "30 2 * * *",
        None,
        "Europe/London",
    )
    assert (nightly.workspace, nightly.queue_name, nightly.priority, nightly.missed) == (
        {"kind": "daily"},
        "reports",
        3,
        "skip",
    )
    assert nightly.enabled and nightly.last_tick is None and nightly.created is not None
    assert (beat.job_name, beat.cron, beat.every_seconds, beat.enabled) == ("noop", "", 30, False)
    assert [s.name for s in firing.enabled()] == ["nightly"]


def test_sync_reads_dbq_schedules_by_default_and_leaves_out_invalid_entries(settings):
    settings.DBQ_SCHEDULES = {
        "beat": {"job": "noop", "every": 30},
        "broken": {"job": "noop", "every": 0},  # E014: the checks report it
    }

    firing.sync_settings()

    assert list(Schedule.objects.values_list("name", "every_seconds")) == [("beat", 30)]


def test_sync_updates_a_changed_definition_and_keeps_its_last_tick():
    firing.sync_settings(specs({"nightly": {"job": "noop", "every": 60}}))
    row = Schedule.objects.get(name="nightly")
    Schedule.objects.filter(pk=row.pk).update(last_tick=FIRST, last_job_id=uuid.uuid4())
    before = fresh(row)

    firing.sync_settings(
        specs(
            {
                "nightly": {
                    "job": "record",
                    "cron": "30 2 * * *",
                    "timezone": "Europe/London",
                    "workspace": {"v": 2},
                    "queue": "reports",
                    "priority": -1,
                    "missed": "skip",
                    "enabled": False,
                }
            }
        )
    )

    after = fresh(row)
    assert (after.job_name, after.cron, after.every_seconds, after.timezone) == (
        "record",
        "30 2 * * *",
        None,
        "Europe/London",
    )
    assert (after.workspace, after.queue_name, after.priority, after.missed, after.enabled) == (
        {"v": 2},
        "reports",
        -1,
        "skip",
        False,
    )
    assert (after.last_tick, after.last_job_id) == (before.last_tick, before.last_job_id)
    assert (after.created, after.from_settings) == (before.created, True)
    assert after.modified >= before.modified


def test_sync_deletes_the_schedules_no_longer_in_the_setting_with_their_ticks():
    firing.sync_settings(specs({"old": {"job": "noop", "every": 60}}))
    old = Schedule.objects.get(name="old")
    Schedule.objects.filter(pk=old.pk).update(created=T0)
    [fired] = firing.fire_schedule(fresh(old), "w1", now=FIRST)
    admin_made = make("by-hand")
    assert ScheduleTick.objects.filter(schedule=old).count() == 1

    firing.sync_settings({})

    assert list(Schedule.objects.values_list("name", flat=True)) == ["by-hand"]
    assert not ScheduleTick.objects.filter(schedule_id=old.pk).exists()
    assert Job.objects.filter(pk=fired.job_id).exists()  # the job it made stays
    assert fresh(admin_made).from_settings is False


def test_sync_leaves_an_admin_made_schedule_of_the_same_name_alone(caplog):
    admin_made = make("nightly", cron="0 3 * * *", job_name="record")
    before = list(Schedule.objects.values())

    with caplog.at_level(logging.WARNING, logger="django_dbq.scheduling"):
        firing.sync_settings(specs({"nightly": {"job": "noop", "every": 60}}))

    assert list(Schedule.objects.values()) == before
    assert fresh(admin_made).from_settings is False
    [record] = [r for r in caplog.records if r.name == "django_dbq.scheduling"]
    assert record.levelno == logging.WARNING
    assert "DBQ_SCHEDULES['nightly']" in record.getMessage()
    assert "admin" in record.getMessage()


def test_sync_twice_changes_nothing():
    declared = specs(
        {
            "nightly": {"job": "noop", "cron": "30 2 * * *", "workspace": {"a": [1, {"b": None}]}},
            "beat": {"job": "noop", "every": 30, "missed": "skip", "priority": 2},
        }
    )
    firing.sync_settings(declared)
    before = list(Schedule.objects.order_by("name").values())

    with CaptureQueriesContext(connection) as queries:
        firing.sync_settings(declared)

    assert writes(queries) == []
    assert list(Schedule.objects.order_by("name").values()) == before


# --- fire_schedule ---------------------------------------------------------------------


def test_a_new_schedule_fires_nothing_before_its_first_tick():
    schedule = make()

    assert firing.fire_schedule(schedule, "w1", now=T0) == []
    assert (
        firing.fire_schedule(schedule, "w1", now=FIRST - datetime.timedelta(microseconds=1)) == []
    )
    assert not Job.objects.exists()
    assert not ScheduleTick.objects.exists()
    assert fresh(schedule).last_tick is None


def test_a_new_cron_schedule_does_not_fire_a_tick_from_before_it_was_created():
    schedule = make(cron="0 12 * * *")  # created at 12:00:30: the first tick is tomorrow

    assert firing.fire_schedule(schedule, "w1", now=T0 + 5 * SECOND) == []
    assert not Job.objects.exists()


def test_the_tick_fires_a_job_made_from_the_schedule():
    workspace = {"kind": "daily", "nested": {"n": [1]}}
    # "chain" has a creation hook that writes to the job's workspace.
    schedule = make(job_name="chain", workspace=workspace, queue_name="reports", priority=7)
    now = FIRST + 2 * SECOND

    [fired] = firing.fire_schedule(schedule, "host:1:w", now=now)

    assert (fired.schedule, fired.tick) == ("beat", FIRST)
    job = Job.objects.get()
    assert job.pk == fired.job_id
    assert (job.name, job.queue_name, job.priority) == ("chain", "reports", 7)
    assert job.workspace == {"kind": "daily", "nested": {"n": [1]}, "created_by_hook": True}
    # The job had a copy: the schedule's workspace is untouched, in memory and stored.
    assert schedule.workspace == workspace == {"kind": "daily", "nested": {"n": [1]}}
    assert fresh(schedule).workspace == workspace
    tick = ScheduleTick.objects.get()
    assert (tick.schedule_id, tick.tick, tick.job_id) == (schedule.pk, FIRST, job.pk)
    assert (tick.fired_at, tick.fired_by) == (now, "host:1:w")
    row = fresh(schedule)
    assert (row.last_tick, row.last_job_id, row.last_fired_at) == (FIRST, job.pk, now)
    assert schedule.last_tick == FIRST  # moved in memory too


def test_firing_again_at_the_same_now_makes_no_second_job():
    schedule = make()
    [fired] = firing.fire_schedule(schedule, "w1", now=FIRST)

    assert firing.fire_schedule(schedule, "w1", now=FIRST) == []
    assert firing.fire_schedule(fresh(schedule), "w1", now=FIRST) == []
    assert list(Job.objects.values_list("pk", flat=True)) == [fired.job_id]
    assert ScheduleTick.objects.count() == 1


def test_two_workers_with_rows_read_before_either_fired_fire_the_tick_once():
    schedule = make()
    mine, theirs = fresh(schedule), fresh(schedule)  # both read last_tick = None

    first = firing.fire_schedule(mine, "w1", now=FIRST + SECOND)
    second = firing.fire_schedule(theirs, "w2", now=FIRST + 2 * SECOND)

    assert [f.tick for f in first] == [FIRST] and second == []
    assert Job.objects.count() == 1
    assert list(ScheduleTick.objects.values_list("tick", "fired_by")) == [(FIRST, "w1")]
    assert theirs.last_tick == FIRST  # the loser does not try that tick again
    # The next tick goes to whoever comes first, still once.
    assert [f.tick for f in firing.fire_schedule(theirs, "w2", now=FIRST + MINUTE)] == [
        FIRST + MINUTE
    ]
    assert firing.fire_schedule(mine, "w1", now=FIRST + MINUTE) == []
    assert Job.objects.count() == ScheduleTick.objects.count() == 2


def test_a_stale_row_never_fires_a_tick_older_than_the_last_tick():
    schedule = make()
    stale = fresh(schedule)  # last_tick None
    # Another worker has fired up to 12:05.
    for minute in range(5):
        firing.fire_schedule(schedule, "w1", now=FIRST + minute * MINUTE)
    assert fresh(schedule).last_tick == FIRST + 4 * MINUTE

    # The stale row (and a clock behind) sees 12:01-12:03 as due: none may fire again,
    # neither as late ticks nor as the one for the missed ones.
    assert firing.fire_schedule(stale, "w2", now=FIRST + 2 * MINUTE + 5 * SECOND) == []
    assert firing.fire_schedule(stale, "w2", now=FIRST + 4 * MINUTE + 5 * SECOND) == []
    assert Job.objects.count() == ScheduleTick.objects.count() == 5
    assert set(ScheduleTick.objects.values_list("fired_by", flat=True)) == {"w1"}
    assert fresh(schedule).last_tick == FIRST + 4 * MINUTE


def test_a_stale_row_never_fires_a_tick_passed_over_by_another_worker():
    # A worker read the schedule under "once"; the admin then switched it to "skip" and
    # another worker passed over the missed ticks (no tick row: only last_tick says so).
    schedule = make(missed="once")
    stale = fresh(schedule)
    Schedule.objects.filter(pk=schedule.pk).update(missed="skip")
    now = T0 + 3 * HOUR + 20 * SECOND
    assert firing.fire_schedule(fresh(schedule), "w1", now=now) == [
        Fired("beat", FIRST + 179 * MINUTE, None)
    ]

    assert firing.fire_schedule(stale, "w2", now=now + 5 * SECOND) == []
    assert not Job.objects.exists()
    assert not ScheduleTick.objects.exists()


def test_missed_once_after_an_outage_makes_one_job():
    schedule = make(missed="once")
    now = T0 + 3 * HOUR + 20 * SECOND  # 180 ticks missed; none in the last 10 s

    fired = firing.fire_schedule(schedule, "w1", now=now)

    latest = FIRST + 179 * MINUTE  # 15:00
    assert [(f.tick, f.job_id is not None) for f in fired] == [(latest, True)]
    assert Job.objects.count() == 1
    assert list(ScheduleTick.objects.values_list("tick", flat=True)) == [latest]
    assert fresh(schedule).last_tick == latest
    assert firing.fire_schedule(fresh(schedule), "w1", now=now + 5 * SECOND) == []
    assert Job.objects.count() == 1


def test_missed_once_with_a_tick_just_due_makes_two_jobs():
    schedule = make(missed="once")
    now = FIRST + 179 * MINUTE + 5 * SECOND  # 15:00 is 5 s late; 14:59 and before missed

    fired = firing.fire_schedule(schedule, "w1", now=now)

    assert [f.tick for f in fired] == [FIRST + 178 * MINUTE, FIRST + 179 * MINUTE]
    assert Job.objects.count() == ScheduleTick.objects.count() == 2


def test_missed_skip_after_an_outage_makes_no_job_but_moves_past_the_missed_ticks():
    schedule = make(missed="skip")
    now = T0 + 3 * HOUR + 20 * SECOND
    latest = FIRST + 179 * MINUTE

    fired = firing.fire_schedule(schedule, "w1", now=now)

    assert fired == [Fired("beat", latest, None)]
    assert not Job.objects.exists()
    assert not ScheduleTick.objects.exists()
    assert fresh(schedule).last_tick == latest
    # Nothing more for them, from this row or a fresh one; the next tick fires.
    assert firing.fire_schedule(fresh(schedule), "w2", now=now + 5 * SECOND) == []
    [next_one] = firing.fire_schedule(schedule, "w1", now=latest + MINUTE)
    assert next_one.tick == latest + MINUTE and next_one.job_id is not None
    assert Job.objects.count() == 1


def test_a_disabled_schedule_fires_nothing():
    schedule = make(enabled=False)

    assert firing.fire_schedule(schedule, "w1", now=FIRST + SECOND) == []
    assert (
        firing.fire_schedule(make("skipper", enabled=False, missed="skip"), "w1", now=T0 + HOUR)
        == []
    )
    assert firing.fire_due("w1", now=FIRST + SECOND) == []
    assert not Job.objects.exists()
    assert not ScheduleTick.objects.exists()
    assert fresh(schedule).last_tick is None


def test_a_schedule_disabled_after_a_worker_read_it_fires_nothing():
    schedule = make()
    Schedule.objects.filter(pk=schedule.pk).update(enabled=False)  # in the admin

    assert firing.fire_schedule(schedule, "w1", now=FIRST + SECOND) == []
    assert not Job.objects.exists()


def test_a_job_no_longer_in_jobs_is_passed_over_logged_and_not_retried(caplog):
    schedule = make("orphan", job_name="removed_from_jobs")
    now = FIRST + SECOND

    with caplog.at_level(logging.INFO, logger="django_dbq.scheduling"):
        fired = firing.fire_schedule(schedule, "w1", now=now)

    assert fired == [Fired("orphan", FIRST, None)]
    assert not Job.objects.exists()
    assert not ScheduleTick.objects.exists()
    assert fresh(schedule).last_tick == FIRST
    [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "'orphan'" in error.getMessage() and "'removed_from_jobs'" in error.getMessage()
    assert "passed over" in error.getMessage()

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="django_dbq.scheduling"):
        assert firing.fire_schedule(schedule, "w1", now=now + SECOND) == []
        assert firing.fire_schedule(fresh(schedule), "w2", now=now + SECOND) == []
    assert caplog.records == []
    assert not Job.objects.exists()


def test_fire_due_fires_every_enabled_schedule_and_keeps_the_rows_in_step():
    make("a")
    make("b", every_seconds=120)
    make("off", enabled=False)
    rows = firing.enabled()

    fired = firing.fire_due("w1", rows=rows, now=FIRST)

    assert [(f.schedule, f.tick) for f in fired] == [("a", FIRST)]
    assert [r.last_tick for r in rows] == [FIRST, None]
    fired = firing.fire_due("w1", rows=rows, now=FIRST + MINUTE)
    assert [(f.schedule, f.tick) for f in fired] == [("a", FIRST + MINUTE), ("b", FIRST + MINUTE)]
    assert firing.fire_due("w1", now=FIRST + MINUTE) == []  # rows read again: nothing new
    assert Job.objects.count() == ScheduleTick.objects.count() == 3


def test_fire_due_across_the_autumn_clock_change_fires_each_local_time_once():
    start = datetime.datetime(2026, 10, 24, 22, 59, 30, tzinfo=UTC)
    make("night", cron="30 1 * * *", timezone="Europe/London", created=start)
    make("hourly", cron="0 * * * *", timezone="Europe/London", created=start)
    rows = firing.enabled()
    now = start
    while now <= datetime.datetime(2026, 10, 25, 3, 30, tzinfo=UTC):
        firing.fire_due("w1", rows=rows, now=now)
        now += MINUTE

    ticks = ScheduleTick.objects.order_by("tick")
    assert list(ticks.filter(schedule__name="night").values_list("tick", flat=True)) == [
        datetime.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # the first 01:30 (BST) only
    ]
    assert list(ticks.filter(schedule__name="hourly").values_list("tick", flat=True)) == [
        datetime.datetime(2026, 10, 24, 23, tzinfo=UTC),
        *(datetime.datetime(2026, 10, 25, h, tzinfo=UTC) for h in range(4)),  # 01:00 twice
    ]


def test_a_row_with_an_invalid_cron_does_not_stop_the_others(caplog):
    bad = make("a-bad", cron="61 * * * *")  # written past the admin's form
    make("b-good")

    fired = firing.fire_due("w1", now=FIRST)

    assert [(f.schedule, f.tick) for f in fired] == [("b-good", FIRST)]
    assert "'a-bad'" in caplog.text
    assert fresh(bad).last_tick is None


def test_a_row_with_every_zero_does_not_stop_the_others():
    make("a-bad", every_seconds=0)
    make("b-good")

    fired = firing.fire_due("w1", now=FIRST)

    assert [(f.schedule, f.tick) for f in fired] == [("b-good", FIRST)]


# --- next_fire -------------------------------------------------------------------------


def test_next_fire_is_the_next_tick_when_nothing_is_due():
    schedule = make()

    assert firing.next_fire(schedule, T0) == FIRST
    assert firing.next_fire(schedule, FIRST - SECOND) == FIRST
    firing.fire_schedule(schedule, "w1", now=FIRST)
    assert firing.next_fire(schedule, FIRST) == FIRST + MINUTE
    assert firing.next_fire(fresh(schedule), FIRST + 30 * SECOND) == FIRST + MINUTE


def test_next_fire_is_now_when_a_tick_is_due():
    schedule = make()

    assert firing.next_fire(schedule, FIRST) == FIRST
    assert firing.next_fire(schedule, FIRST + 5 * SECOND) == FIRST + 5 * SECOND
    # Back after an outage: "once" fires now; "skip" fires nothing until the next tick.
    later = T0 + 3 * HOUR + 20 * SECOND
    assert firing.next_fire(schedule, later) == later
    assert firing.next_fire(make("skipper", missed="skip"), later) == FIRST + 180 * MINUTE


def test_next_fire_of_a_cron_schedule_in_a_zone():
    schedule = make(cron="30 1 * * *", timezone="Europe/London", created=T0)

    assert firing.next_fire(schedule, T0) == datetime.datetime(2026, 1, 6, 1, 30, tzinfo=UTC)
    spring = datetime.datetime(2026, 3, 28, 12, tzinfo=UTC)
    Schedule.objects.filter(pk=schedule.pk).update(last_tick=spring)
    assert firing.next_fire(fresh(schedule), spring) == datetime.datetime(
        2026, 3, 29, 1, 0, tzinfo=UTC
    )


def test_next_fire_is_none_when_disabled():
    assert firing.next_fire(make(enabled=False), FIRST) is None
    assert firing.next_fire(make("later", enabled=False), T0) is None


def test_next_fire_is_none_for_a_zone_no_longer_known():
    assert firing.next_fire(make(cron="* * * * *", timezone="Gone/Away"), FIRST) is None


def test_next_fire_is_none_for_a_cron_no_longer_valid():
    assert firing.next_fire(make(cron="61 * * * *"), FIRST) is None


# --- true concurrency: threads on their own connections ---------------------------------

THREADS = 8


def race(pk: int, now: datetime.datetime) -> list[list[Fired]]:
    """THREADS threads, each with a row it read itself, fire at the same ``now``."""
    barrier = threading.Barrier(THREADS)
    results: list[list[Fired]] = [[] for _ in range(THREADS)]
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            row = Schedule.objects.get(pk=pk)
            barrier.wait(timeout=60)
            results[index] = firing.fire_schedule(row, f"w{index}", now=now)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    return results


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("missed", ["once", "skip"])
def test_threads_racing_fire_each_tick_exactly_once(missed):
    schedule = make(every_seconds=2, missed=missed)
    expected: list[datetime.datetime] = []
    handled = T0
    # Rounds: ticks just due, several late ticks at once, then back after an outage.
    for now in (
        T0 + 2 * SECOND,
        T0 + 7.5 * SECOND,
        T0 + 8 * SECOND,
        T0 + 8 * SECOND,
        T0 + MINUTE + 3 * SECOND,
    ):
        due = schedules.due_ticks(handled, now, every=2, missed=missed)
        skipped = schedules.latest_missed(handled, now, every=2) if missed == "skip" else None
        handled = max([handled, *due, *([skipped] if skipped else [])])
        expected += due

        results = race(schedule.pk, now)

        won = sorted(f.tick for fired in results for f in fired if f.job_id is not None)
        assert won == sorted(due), f"at {now}: each due tick fired by exactly one thread"
        assert fresh(schedule).last_tick == handled

    assert len(expected) == len(set(expected)) >= 6
    assert list(ScheduleTick.objects.order_by("tick").values_list("tick", flat=True)) == expected
    ticks = dict(ScheduleTick.objects.values_list("job_id", "tick"))
    assert set(Job.objects.values_list("pk", flat=True)) == set(ticks)
    assert Job.objects.count() == len(expected)
