"""django_dbq.operations.stats: per-minute counts rolled up from finished jobs, and
the snapshot the dashboard, the metrics and the health checks read.

Every figure is read at an explicit ``now`` (see factories.NOW), so no test depends
on the clock; the jobs' finish times are chosen around it."""

from __future__ import annotations

import datetime
import itertools
import json

import pytest
from django.test import override_settings
from django.utils import timezone

from django_dbq.operations import pauses, registry, stats
from django_dbq.records import MinuteCount, WorkerRecord
from django_dbq.states import JobStates

from .factories import NOW, UTC, at, finished, job

pytestmark = pytest.mark.django_db

MINUTE = datetime.timedelta(minutes=1)
HOUR = datetime.timedelta(hours=1)
SETTLE = datetime.timedelta(seconds=stats.SETTLE_SECONDS)
#: The first hour bucket at NOW (the current hour so far and the 23 before it).
DAY_START = datetime.datetime(2024, 6, 30, 13, 0, tzinfo=UTC)
#: The first minute of the 24-hour figures at NOW (1,440 minutes, the current one included).
DAY_FROM = datetime.datetime(2024, 6, 30, 12, 1, tzinfo=UTC)


def counts() -> dict[tuple[datetime.datetime, str], tuple[int, int]]:
    """The minute counts: (minute, queue) -> (completed, failed)."""
    return {
        (row.minute.astimezone(UTC), row.queue_name): (row.completed, row.failed)
        for row in MinuteCount.objects.all()
    }


def minute_bucket(snapshot: stats.Snapshot, start: datetime.datetime) -> tuple[int, int]:
    (bucket,) = [b for b in snapshot.per_minute if b.start == start]
    return bucket.completed, bucket.failed


def hour_bucket(snapshot: stats.Snapshot, start: datetime.datetime) -> tuple[int, int]:
    (bucket,) = [b for b in snapshot.per_hour if b.start == start]
    return bucket.completed, bucket.failed


def by_queue(snapshot: stats.Snapshot) -> dict[str, stats.QueueFigures]:
    return {item.queue: item for item in snapshot.queues}


def live_worker(owner: str, queues: list[str]) -> WorkerRecord:
    return registry.register(owner, queues=queues, concurrency=1, interval=60)


# --- roll_up -----------------------------------------------------------------------------------


def test_roll_up_counts_each_closed_minute_once_per_queue_by_outcome():
    finished(at(11, 58, 1), "a")
    finished(at(11, 58, 59), "a")
    finished(at(11, 58, 30), "a", failed=True)
    finished(at(11, 58, 10), "b")
    finished(at(11, 59, 0), "a", failed=True)

    end = stats.roll_up(now=at(12, 0, 30))

    assert end == at(12, 0)
    assert counts() == {
        (at(11, 58), "a"): (2, 1),
        (at(11, 58), "b"): (1, 0),
        (at(11, 59), "a"): (0, 1),
    }


def test_roll_up_leaves_out_the_current_minute():
    finished(at(11, 59, 30), "a")
    finished(at(12, 0, 1), "a")  # the current minute: not over yet

    stats.roll_up(now=at(12, 0, 40))

    assert counts() == {(at(11, 59), "a"): (1, 0)}


def test_roll_up_leaves_out_a_minute_that_ended_less_than_settle_seconds_ago():
    finished(at(11, 59, 59), "a")

    end = stats.roll_up(now=at(12, 0) + SETTLE - datetime.timedelta(seconds=1))

    assert end == at(11, 59)
    assert counts() == {}

    end = stats.roll_up(now=at(12, 0) + SETTLE)

    assert end == at(12, 0)
    assert counts() == {(at(11, 59), "a"): (1, 0)}


def test_roll_up_ignores_jobs_that_have_not_finished():
    job("a", state=JobStates.READY)
    job("a", state=JobStates.PROCESSING)
    finished(at(11, 59), "a")

    stats.roll_up(now=at(12, 1))

    assert counts() == {(at(11, 59), "a"): (1, 0)}


def test_roll_up_is_idempotent():
    finished(at(11, 58, 5), "a")
    finished(at(11, 59, 5), "a", failed=True)
    stats.roll_up(now=at(12, 1))
    first = counts()
    rows = MinuteCount.objects.count()

    stats.roll_up(now=at(12, 1))
    stats.roll_up(now=at(12, 5))

    assert counts() == first == {(at(11, 58), "a"): (1, 0), (at(11, 59), "a"): (0, 1)}
    assert MinuteCount.objects.count() == rows


def test_roll_up_resumes_after_the_last_rolled_minute_and_does_not_count_a_minute_twice():
    finished(at(11, 58, 5), "a")
    stats.roll_up(now=at(12, 0, 30))
    finished(at(11, 58, 40), "a")  # a late finish in a minute already counted
    finished(at(12, 0, 20), "a")
    finished(at(12, 3, 20), "b", failed=True)

    end = stats.roll_up(now=at(12, 5))

    assert end == at(12, 4)
    assert counts() == {
        (at(11, 58), "a"): (1, 0),
        (at(12, 0), "a"): (1, 0),
        (at(12, 3), "b"): (0, 1),
    }


def test_roll_up_looks_back_roll_up_from_the_first_time():
    now = at(12, 0, 30)
    finished(now - stats.ROLL_UP_FROM - 2 * MINUTE, "a")  # too old to count
    finished(now - stats.ROLL_UP_FROM + 2 * MINUTE, "a")

    stats.roll_up(now=now)

    assert list(counts().values()) == [(1, 0)]
    ((minute, _),) = counts()
    assert minute == (now - stats.ROLL_UP_FROM + 2 * MINUTE).replace(second=0)


def test_a_roll_up_that_inserts_deletes_counts_older_than_keep():
    now = at(12, 0, 30)
    old = (now - stats.KEEP).replace(second=0) - MINUTE
    kept = (now - stats.KEEP).replace(second=0) + 5 * MINUTE
    MinuteCount.objects.create(minute=old, queue_name="a", completed=7)
    MinuteCount.objects.create(minute=kept, queue_name="a", completed=3)
    finished(at(11, 59), "a")

    stats.roll_up(now=now)

    assert counts() == {(kept, "a"): (3, 0), (at(11, 59), "a"): (1, 0)}


# --- snapshot: waiting work --------------------------------------------------------------------


def test_snapshot_counts_ready_scheduled_and_processing_jobs_per_queue():
    job("a", state=JobStates.READY)
    job("a", state=JobStates.NEW)
    job("a", state=JobStates.NEW, run_after=NOW - MINUTE)  # due: ready
    job("a", state=JobStates.READY, run_after=NOW + HOUR)  # scheduled
    job("a", state=JobStates.PROCESSING)
    job("b", state=JobStates.NEW, run_after=NOW + MINUTE)
    job("b", state=JobStates.PROCESSING)
    finished(NOW - HOUR, "a")  # finished jobs are not waiting work
    finished(NOW - HOUR, "a", failed=True)

    snapshot = stats.snapshot(now=NOW)

    figures = by_queue(snapshot)
    assert [q.queue for q in snapshot.queues] == ["a", "b"]
    assert (figures["a"].ready, figures["a"].scheduled, figures["a"].processing) == (3, 1, 1)
    assert (figures["b"].ready, figures["b"].scheduled, figures["b"].processing) == (0, 1, 1)
    totals = snapshot.totals
    assert totals.queue is None
    assert (totals.ready, totals.scheduled, totals.processing) == (3, 2, 2)


def test_a_job_whose_run_after_is_exactly_now_is_ready():
    job("a", run_after=NOW)

    figures = by_queue(stats.snapshot(now=NOW))["a"]

    assert (figures.ready, figures.scheduled) == (1, 0)


def test_oldest_ready_since_is_the_run_after_or_else_the_creation_of_the_oldest_ready_job():
    job("a", created=NOW - 10 * MINUTE, run_after=NOW - 2 * MINUTE)
    job("a", created=NOW - 5 * MINUTE)
    job("a", created=NOW - HOUR, run_after=NOW + MINUTE)  # scheduled: does not wait yet
    job("b", created=NOW - 10 * MINUTE, run_after=NOW - 3 * MINUTE)
    job("c", run_after=NOW + MINUTE)

    figures = by_queue(stats.snapshot(now=NOW))

    assert figures["a"].oldest_ready_since == NOW - 5 * MINUTE
    assert figures["a"].lag(NOW) == 300.0
    assert figures["b"].oldest_ready_since == NOW - 3 * MINUTE
    assert figures["b"].lag(NOW) == 180.0
    assert (figures["c"].oldest_ready_since, figures["c"].lag(NOW)) == (None, None)


def test_totals_take_the_oldest_ready_job_of_all_queues():
    job("a", created=NOW - 5 * MINUTE)
    job("b", created=NOW - 7 * MINUTE)

    totals = stats.snapshot(now=NOW).totals

    assert totals.oldest_ready_since == NOW - 7 * MINUTE
    assert totals.lag(NOW) == 420.0


def test_lag_is_never_negative():
    figures = stats.QueueFigures(queue="a", oldest_ready_since=NOW)

    assert figures.lag(NOW - MINUTE) == 0.0
    assert figures.lag(NOW + MINUTE) == 60.0


# --- snapshot: finished work -------------------------------------------------------------------


def test_per_minute_has_sixty_buckets_ending_with_the_current_minute():
    snapshot = stats.snapshot(now=NOW)

    starts = [b.start for b in snapshot.per_minute]
    assert len(starts) == 60
    assert (starts[0], starts[-1]) == (at(11, 1), at(12, 0))
    assert all(later - earlier == MINUTE for earlier, later in itertools.pairwise(starts))
    assert all((b.completed, b.failed) == (0, 0) for b in snapshot.per_minute)


def test_per_hour_has_twenty_four_buckets_ending_with_the_current_hour():
    snapshot = stats.snapshot(now=NOW)

    starts = [b.start for b in snapshot.per_hour]
    assert len(starts) == 24
    assert (starts[0], starts[-1]) == (DAY_START, at(12, 0))
    assert all(later - earlier == HOUR for earlier, later in itertools.pairwise(starts))
    assert all((b.completed, b.failed) == (0, 0) for b in snapshot.per_hour)


def finished_around_now() -> None:
    """Finished jobs around NOW (12:00:05). At NOW the minutes before 11:59 are rolled
    up; 11:59 is over but ended less than SETTLE_SECONDS ago, so it and 12:00 are
    counted from the jobs."""
    finished(at(11, 58, 10), "a")
    finished(at(11, 58, 20), "a")
    finished(at(11, 58, 30), "b", failed=True)
    finished(at(11, 59, 50), "a")  # a closed minute, not rolled up yet
    finished(at(11, 59, 55), "b", failed=True)
    finished(at(12, 0, 2), "a")  # the current minute
    finished(at(11, 1, 30), "b")  # the first minute bucket
    finished(at(11, 0, 0), "a", failed=True)  # a minute before the minute buckets
    finished(at(9, 15), "b")  # in the hours only
    finished(DAY_START, "a")  # the first second of the first hour bucket
    finished(DAY_START - datetime.timedelta(seconds=1), "a")  # before it: in 24 h only
    finished(DAY_FROM, "b", failed=True)  # the first minute of the 24-hour figures
    finished(DAY_FROM - datetime.timedelta(seconds=1), "b")  # before it: left out


EXPECTED_MINUTES = {
    at(11, 1): (1, 0),
    at(11, 58): (2, 1),
    at(11, 59): (1, 1),
    at(12, 0): (1, 0),
}
EXPECTED_HOURS = {
    DAY_START: (1, 0),
    at(9, 0): (1, 0),
    at(11, 0): (4, 3),
    at(12, 0): (1, 0),
}


def nonzero(buckets: list[stats.Bucket]) -> dict[datetime.datetime, tuple[int, int]]:
    return {b.start: (b.completed, b.failed) for b in buckets if b.completed or b.failed}


def test_per_minute_and_per_hour_count_rolled_up_minutes_and_the_tail_once():
    finished_around_now()

    snapshot = stats.snapshot(now=NOW)

    assert nonzero(snapshot.per_minute) == EXPECTED_MINUTES
    assert nonzero(snapshot.per_hour) == EXPECTED_HOURS
    # Both parts were used: 11:58 comes from the minute counts, 11:59 from the jobs.
    assert (at(11, 58), "a") in counts()
    assert not [minute for minute, _ in counts() if minute >= at(11, 59)]


def test_completed_and_failed_in_24h_per_queue_and_in_total():
    finished_around_now()

    snapshot = stats.snapshot(now=NOW)

    figures = by_queue(snapshot)
    assert (figures["a"].completed_24h, figures["a"].failed_24h) == (6, 1)
    assert (figures["b"].completed_24h, figures["b"].failed_24h) == (2, 3)
    assert (snapshot.totals.completed_24h, snapshot.totals.failed_24h) == (8, 4)


def test_a_second_snapshot_counts_nothing_twice():
    finished_around_now()
    stats.snapshot(now=NOW)

    snapshot = stats.snapshot(now=NOW)

    assert nonzero(snapshot.per_minute) == EXPECTED_MINUTES
    assert nonzero(snapshot.per_hour) == EXPECTED_HOURS
    assert (snapshot.totals.completed_24h, snapshot.totals.failed_24h) == (8, 4)


def test_a_roll_up_by_a_worker_whose_clock_is_ahead_changes_no_figure():
    finished_around_now()
    stats.roll_up(now=NOW + 5 * MINUTE)  # 11:59 and 12:00 are minute counts now

    snapshot = stats.snapshot(now=NOW)

    assert nonzero(snapshot.per_minute) == EXPECTED_MINUTES
    assert nonzero(snapshot.per_hour) == EXPECTED_HOURS
    assert (snapshot.totals.completed_24h, snapshot.totals.failed_24h) == (8, 4)


def test_a_later_snapshot_counts_the_minutes_rolled_up_since_the_same():
    finished_around_now()
    stats.snapshot(now=NOW)
    later = at(12, 1, 30)  # 11:59 and 12:00 are rolled up by now; the same hours

    snapshot = stats.snapshot(now=later)

    assert (at(11, 59), "b") in counts()
    assert nonzero(snapshot.per_minute) == {
        minute: values for minute, values in EXPECTED_MINUTES.items() if minute != at(11, 1)
    }
    assert nonzero(snapshot.per_hour) == EXPECTED_HOURS
    # The 24 hours moved on by a minute: the failure at DAY_FROM is out of them.
    assert (snapshot.totals.completed_24h, snapshot.totals.failed_24h) == (8, 3)


@pytest.mark.parametrize(
    ("zone", "utc_minute"),
    [
        # 23:59:20 on 30 June, local time, is ...
        ("Europe/London", datetime.datetime(2024, 6, 30, 22, 59, tzinfo=UTC)),  # BST, UTC+1
        ("America/New_York", datetime.datetime(2024, 7, 1, 3, 59, tzinfo=UTC)),  # the next day
        ("Asia/Kolkata", datetime.datetime(2024, 6, 30, 18, 29, tzinfo=UTC)),  # UTC+5:30
    ],
)
@pytest.mark.parametrize(
    "after",
    [datetime.timedelta(minutes=20), datetime.timedelta(seconds=30)],
    ids=["rolled", "tail"],
)
def test_a_job_finished_at_2359_local_time_lands_in_its_utc_buckets(zone, utc_minute, after):
    with override_settings(TIME_ZONE=zone), timezone.override(zone):
        finished_at = timezone.make_aware(datetime.datetime(2024, 6, 30, 23, 59, 20))
        assert finished_at.astimezone(UTC) == utc_minute + datetime.timedelta(seconds=20)
        finished(finished_at, "a")
        finished(finished_at, "a", failed=True)
        now = finished_at + after

        snapshot = stats.snapshot(now=now)
        exported = stats.snapshot(now=now).as_dict()

    assert nonzero(snapshot.per_minute) == {utc_minute: (1, 1)}
    assert nonzero(snapshot.per_hour) == {utc_minute.replace(minute=0): (1, 1)}
    assert (snapshot.totals.completed_24h, snapshot.totals.failed_24h) == (1, 1)
    assert counts() == ({(utc_minute, "a"): (1, 1)} if after > SETTLE + MINUTE else {})
    starts = [b["start"] for b in exported["per_minute"] if b["completed"]]
    assert starts == [utc_minute.isoformat()]
    assert starts[0].endswith("+00:00")


# --- snapshot: queues, pauses, workers ---------------------------------------------------------


def test_paused_queues_are_flagged_and_listed_even_without_jobs():
    job("a")
    job("b")
    pauses.pause("a")
    pauses.pause("idle")

    snapshot = stats.snapshot(now=NOW)

    figures = by_queue(snapshot)
    assert sorted(figures) == ["a", "b", "idle"]
    assert {name: item.paused for name, item in figures.items()} == {
        "a": True,
        "b": False,
        "idle": True,
    }
    assert (figures["idle"].ready, figures["a"].ready) == (0, 1)
    assert sorted(snapshot.pauses) == ["a", "idle"]
    assert snapshot.totals.paused is False


def test_the_queues_of_live_workers_are_listed_even_without_jobs():
    live_worker("w1", ["mail", "sms"])
    dead = live_worker("w2", ["ghost"])
    WorkerRecord.objects.filter(pk=dead.pk).update(expires_at=NOW - MINUTE)

    snapshot = stats.snapshot(now=NOW)

    assert [q.queue for q in snapshot.queues] == ["mail", "sms"]
    assert all((q.ready, q.scheduled, q.processing) == (0, 0, 0) for q in snapshot.queues)
    assert [w.owner for w in snapshot.workers] == ["w1"]


def test_queues_that_only_finished_jobs_are_listed():
    finished(at(11, 30), "done")

    snapshot = stats.snapshot(now=NOW)

    assert [(q.queue, q.completed_24h, q.ready) for q in snapshot.queues] == [("done", 1, 0)]


def test_as_dict_is_json_serialisable_with_iso_times_in_utc():
    job("a", created=NOW - datetime.timedelta(seconds=90))
    finished(at(11, 58, 10), "a")
    worker = live_worker("w1", ["a"])
    pauses.pause("a", by="alice")

    with timezone.override("America/New_York"):
        values = json.loads(json.dumps(stats.snapshot(now=NOW).as_dict()))

    assert values["taken_at"] == "2024-07-01T12:00:05+00:00"
    (queue,) = values["queues"]
    assert queue["queue"] == "a"
    assert queue["ready"] == 1
    assert queue["paused"] is True
    assert queue["oldest_ready_since"] == "2024-07-01T11:58:35+00:00"
    assert queue["lag_seconds"] == 90.0
    assert values["totals"]["queue"] is None
    assert values["totals"]["lag_seconds"] == 90.0
    assert (len(values["per_minute"]), len(values["per_hour"])) == (60, 24)
    assert values["per_minute"][-1]["start"] == "2024-07-01T12:00:00+00:00"
    assert {"start": "2024-07-01T11:58:00+00:00", "completed": 1, "failed": 0} in values[
        "per_minute"
    ]
    (exported,) = values["workers"]
    assert exported["owner"] == "w1"
    assert exported["queues"] == ["a"]
    heartbeat = datetime.datetime.fromisoformat(exported["heartbeat_at"])
    assert heartbeat == worker.heartbeat_at
    assert heartbeat.utcoffset() == datetime.timedelta(0)


def test_as_dict_gives_none_for_a_queue_where_nothing_waits():
    live_worker("w1", ["idle"])

    values = json.loads(json.dumps(stats.snapshot(now=NOW).as_dict()))

    (queue,) = values["queues"]
    assert (queue["oldest_ready_since"], queue["lag_seconds"]) == (None, None)


def test_a_finish_stamped_after_now_counts_in_the_current_minute():
    finished(NOW + 3 * MINUTE, "a")  # a worker whose clock runs three minutes ahead

    snapshot = stats.snapshot(now=NOW)

    assert nonzero(snapshot.per_minute) == {at(12, 0): (1, 0)}
    assert nonzero(snapshot.per_hour) == {at(12, 0): (1, 0)}
    assert snapshot.totals.completed_24h == 1
