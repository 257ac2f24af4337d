"""django_dbq.operations.health: a worker heartbeated recently, and no ready job of the
checked queues waited too long; the outcome as one line for a probe's log."""

from __future__ import annotations

import datetime

import pytest

from django_dbq.operations import health, pauses, registry
from django_dbq.records import WorkerRecord
from django_dbq.states import JobStates

from .factories import NOW, job

pytestmark = pytest.mark.django_db

SECOND = datetime.timedelta(seconds=1)


def worker(owner: str, heartbeat_ago: float) -> WorkerRecord:
    """A registered worker whose last heartbeat was ``heartbeat_ago`` seconds before NOW."""
    record = registry.register(owner, queues=["default"], concurrency=1, interval=5)
    WorkerRecord.objects.filter(pk=record.pk).update(heartbeat_at=NOW - heartbeat_ago * SECOND)
    return record


def waiting_since(queue: str, seconds: float) -> None:
    job(queue, state=JobStates.READY, created=NOW - seconds * SECOND)


def check(**kwargs) -> health.Health:
    return health.check(now=NOW, **kwargs)


# --- heartbeat ---------------------------------------------------------------------------------


def test_no_registered_worker_is_a_problem():
    result = check(max_heartbeat_age=30)

    assert not result.ok
    assert result.problems == ["no worker is registered (none has started, or all stopped)"]
    assert result.line().startswith("unhealthy: no worker is registered")


def test_a_stale_heartbeat_is_a_problem_that_says_its_age():
    worker("w1", heartbeat_ago=90)

    result = check(max_heartbeat_age=30)

    assert not result.ok
    assert result.problems == ["no worker heartbeat within 30s (newest 90s ago)"]
    assert result.line() == "unhealthy: no worker heartbeat within 30s (newest 90s ago)"


def test_an_age_of_minutes_is_said_in_minutes():
    worker("w1", heartbeat_ago=600)

    result = check(max_heartbeat_age=60)

    assert result.problems == ["no worker heartbeat within 60s (newest 10 min ago)"]


def test_a_fresh_heartbeat_is_ok():
    worker("w1", heartbeat_ago=5)

    result = check(max_heartbeat_age=30)

    assert result.ok
    assert result.problems == []
    assert result.line() == "ok: newest worker heartbeat 5s ago"


def test_the_newest_heartbeat_of_all_workers_counts():
    worker("stale", heartbeat_ago=300)
    worker("fresh", heartbeat_ago=3)

    assert check(max_heartbeat_age=30).ok


def test_a_heartbeat_exactly_at_the_limit_is_ok():
    worker("w1", heartbeat_ago=30)

    assert check(max_heartbeat_age=30).ok
    assert not check(max_heartbeat_age=29.5).ok


# --- lag ---------------------------------------------------------------------------------------


def test_a_queue_whose_oldest_ready_job_waited_too_long_is_a_problem_naming_it():
    waiting_since("slow", 120)
    waiting_since("fast", 10)

    result = check(max_lag=60)

    assert not result.ok
    assert result.problems == ["queue 'slow': the oldest ready job has waited 120s (over 60s)"]
    assert (
        result.line() == "unhealthy: queue 'slow': the oldest ready job has waited 120s (over 60s)"
    )


def test_every_lagging_queue_is_named():
    waiting_since("b", 100)
    waiting_since("a", 200)

    result = check(max_lag=60)

    assert [problem.split(":")[0] for problem in result.problems] == ["queue 'a'", "queue 'b'"]


def test_lag_within_the_limit_is_ok_and_noted():
    waiting_since("fast", 10)
    waiting_since("faster", 2)

    result = check(max_lag=60)

    assert result.ok
    assert result.line() == "ok: oldest ready job waited 10.0s (queue 'fast')"


def test_scheduled_and_processing_jobs_do_not_lag():
    job("later", state=JobStates.READY, created=NOW - 3600 * SECOND, run_after=NOW + SECOND)
    job("busy", state=JobStates.PROCESSING, created=NOW - 3600 * SECOND)

    result = check(max_lag=60)

    assert result.ok
    assert result.line() == "ok: no ready job waits"


def test_paused_queues_are_not_lag_checked():
    waiting_since("slow", 120)
    pauses.pause("slow")

    result = check(max_lag=60)

    assert result.ok
    assert result.line() == "ok: no ready job waits"


def test_a_paused_queue_is_left_out_even_when_named():
    waiting_since("slow", 120)
    pauses.pause("slow")

    assert check(max_lag=60, queues=["slow"]).ok


def test_queues_restricts_the_lag_check_to_those_queues():
    waiting_since("slow", 120)
    waiting_since("fast", 10)

    assert check(max_lag=60, queues=["fast"]).ok
    assert not check(max_lag=60, queues=["slow", "fast"]).ok
    assert check(max_lag=60, queues=["empty"]).line() == "ok: no ready job waits"


# --- both, and neither -------------------------------------------------------------------------


def test_every_problem_is_on_the_line():
    worker("w1", heartbeat_ago=90)
    waiting_since("slow", 120)

    result = check(max_heartbeat_age=30, max_lag=60)

    assert len(result.problems) == 2
    assert result.line() == (
        "unhealthy: no worker heartbeat within 30s (newest 90s ago); "
        "queue 'slow': the oldest ready job has waited 120s (over 60s)"
    )


def test_both_checks_passing_are_both_noted():
    worker("w1", heartbeat_ago=5)
    waiting_since("fast", 10)

    result = check(max_heartbeat_age=30, max_lag=60)

    assert result.line() == (
        "ok: newest worker heartbeat 5s ago; oldest ready job waited 10.0s (queue 'fast')"
    )


def test_no_check_asked_for_is_ok():
    waiting_since("slow", 3600)

    result = check()

    assert result.ok
    assert result.line() == "ok: nothing to check"
