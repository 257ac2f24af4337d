"""django_dbq.runtime under faults: the short form of the chaos suite (tests/chaos),
on the database of this test run.

Real worker processes are SIGKILLed, cut off from the database and shut down
while they run jobs; each run checks that no job was lost, left stuck, run twice
at once, or re-run without a kill or fault to explain it. ``python -m tests.chaos``
runs the long form (see docs/reliability.rst).
"""

from __future__ import annotations

import os
import signal

import pytest
from django.db import connection

from django_dbq.runtime.worker import Worker
from tests.chaos import runner
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.chaos]

FAULT = {"postgresql": "pg-terminate", "mysql": "mariadb-kill", "sqlite": "sqlite-lock"}


def check(summary: dict) -> None:
    assert not summary["violations"], runner.report(summary)


def test_killed_workers_lose_nothing_and_never_run_a_job_twice_at_once(tmp_path):
    config = runner.Config(
        jobs=1500,
        workers=3,
        concurrency=4,
        kill_every=1.5,
        max_kills=4,
        enqueue_over=7.0,  # so that there is time for the kills, however fast the box
        lease=2.0,
        rescue_interval=0.3,
        task_ms=(0.0, 3.0),
        deadline=150,
        log_dir=tmp_path,
        seed=1,
    )

    summary = runner.run_chaos(config, progress=lambda line: None)

    check(summary)
    assert summary["kills"] >= 3, runner.report(summary)
    assert summary["completed"] == 1500


def test_with_one_attempt_only_jobs_whose_task_started_are_failed_by_kills(tmp_path):
    """max_attempts 1: a kill fails the jobs that were running, never those it only held."""
    config = runner.Config(
        jobs=1000,
        workers=3,
        concurrency=2,
        kill_every=1.0,
        max_kills=5,
        enqueue_over=6.0,
        lease=2.0,
        rescue_interval=0.3,
        task_ms=(0.0, 3.0),
        deadline=150,
        log_dir=tmp_path,
        seed=2,
        job_name=runner.ONCE_JOB_NAME,
    )

    summary = runner.run_chaos(config, progress=lambda line: None)

    check(summary)
    assert summary["kills"] >= 3, runner.report(summary)
    assert summary["completed"] + summary["failed"] == 1000
    assert summary["failed_never_started"] == 0


def test_a_limited_job_type_never_exceeds_its_limit_while_workers_are_killed(tmp_path):
    """max_running 3 over 3 workers of 4 threads, workers killed: nothing lost, never
    more than 3 running (a killed worker's jobs hold their slots until rescued)."""
    config = runner.Config(
        jobs=300,
        workers=3,
        concurrency=4,
        kill_every=1.0,
        max_kills=4,
        lease=2.0,
        rescue_interval=0.3,
        task_ms=(5.0, 15.0),
        deadline=150,
        log_dir=tmp_path,
        seed=3,
        job_name=runner.LIMITED_JOB_NAME,
    )

    summary = runner.run_chaos(config, progress=lambda line: None)

    check(summary)
    assert summary["kills"] >= 2, runner.report(summary)
    assert summary["completed"] == 300
    assert summary["most_running_at_once"] == runner.LIMITED_MAX_RUNNING


def test_workers_ride_out_database_faults(tmp_path):
    fault = FAULT[connection.vendor]
    config = runner.Config(
        # Slow enough tasks that the run outlasts both faults (about 7 s on a quiet box).
        jobs=800,
        workers=2,
        concurrency=2,
        kill_every=0,
        lease=2.0,
        rescue_interval=0.3,
        task_ms=(20.0, 40.0),
        fault=fault,
        fault_first=1.0,
        fault_every=2.5,
        max_faults=2,
        # SQLite: a lock held longer than the busy timeout and than a lease.
        sqlite_lock_hold=3.0,
        sqlite_busy_timeout=0.5,
        deadline=150,
        log_dir=tmp_path,
        seed=2,
    )

    summary = runner.run_chaos(config, progress=lambda line: None)

    check(summary)
    assert len(summary["faults"]) == 2, runner.report(summary)
    assert not any(f["what"].startswith(("terminated 0 ", "killed 0 ")) for f in summary["faults"])
    logged = summary["worker_log_counts"]
    if not os.environ.get("DBQ_TEST_PGBOUNCER"):
        # The workers noticed: a claim, the heartbeat, the completer or (PostgreSQL)
        # the idle main thread's LISTEN found its connection gone. Behind PgBouncer
        # the terminated connections are the pooler's: it opens new ones for the next
        # transactions, and a worker between two sees nothing.
        noticed = ("database_unavailable", "heartbeat_lost_db", "listen_lost", "renewals_failed")
        assert sum(logged[what] for what in noticed) > 0, summary
    assert logged["traceback"] == 0, summary
    # No worker lost a lease while cut off: nothing was rescued, nothing run twice.
    assert summary["duplicates"] == 0, runner.report(summary)


def test_sigterm_under_load_finishes_or_hands_back_every_job(tmp_path):
    config = runner.Config(
        jobs=60,
        workers=2,
        concurrency=3,
        task_ms=(100.0, 2500.0),
        grace=1.0,
        sigterm_after=1.5,
        deadline=120,
        log_dir=tmp_path,
        seed=3,
    )

    summary = runner.run_shutdown(config, progress=lambda line: None)

    check(summary)
    assert summary["states_at_end"] == {"COMPLETED": 60}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="restarts PostgreSQL")
@pytest.mark.skipif(
    not os.environ.get("DBQ_CHAOS_PG_RESTART"),
    reason="restarts the PostgreSQL server for everyone on it: set DBQ_CHAOS_PG_RESTART=1",
)
def test_workers_ride_out_a_postgresql_restart(tmp_path):
    config = runner.Config(
        jobs=600,
        workers=2,
        concurrency=3,
        kill_every=0,
        lease=3.0,
        rescue_interval=0.3,
        task_ms=(0.0, 5.0),
        fault="pg-restart",
        fault_first=2.0,
        max_faults=1,
        deadline=150,
        log_dir=tmp_path,
    )

    summary = runner.run_chaos(config, progress=lambda line: None)

    check(summary)
    assert summary["duplicates"] == 0, runner.report(summary)


@pytest.mark.timeout(30)
def test_a_stop_signal_arriving_while_the_main_thread_holds_an_event_lock_still_stops():
    """The chaos suite found a worker that never stopped on SIGTERM: the handler ran
    while the main thread was inside ``Event.clear()`` and called ``Event.set()``,
    which waited forever for the lock its own thread held."""
    worker = Worker()
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker._install_signal_handlers()
        with worker._wake._flag._cond:  # as inside Event.wait() or Event.clear()
            signal.raise_signal(signal.SIGTERM)  # the handler runs here, in this thread
        wait_for(
            lambda: worker._stop.is_set() and worker._wake.is_set(),
            timeout=10,
            message="the stop request",
        )
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
