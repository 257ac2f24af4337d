"""django_dbq.runtime.worker and supervisor, end to end: real ``manage.py worker``
processes, signals and kills."""

from __future__ import annotations

import itertools
import os
import re
import signal
import time
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count

from django_dbq.models import Job
from django_dbq.runtime.worker import SECOND_SIGNAL_AFTER
from tests.conftest import run_command, wait_for
from tests.models import Execution

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

FAST_RESCUE = {"DBQ_LEASE_SECONDS": "2", "DBQ_RESCUE_INTERVAL": "0.3"}


def states() -> dict[str, int]:
    return dict(Job.objects.values_list("state").annotate(n=Count("pk")).order_by())


def marker_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_burst_worker_runs_every_chain_and_failure_then_exits(start_worker):
    chains = [Job.objects.create(name="chain") for _ in range(3)]
    failing = Job.objects.create(name="failing")
    worker = start_worker("--burst")
    assert worker.wait() == 0, worker.output()
    for job in chains:
        job.refresh_from_db()
        assert job.state == Job.STATES.COMPLETED
        assert job.workspace["trail"] == ["one", "two", "three"]
    failing.refresh_from_db()
    assert failing.state == Job.STATES.FAILED
    log = worker.output()
    assert "starting: queues=default concurrency=1" in log
    assert f"database={connection.vendor}" in log
    assert "outcome=completed" in log and "Job failed" in log


def test_processes_and_threads_run_each_job_exactly_once_and_never_overlap(start_worker):
    count = 1200
    Job.objects.bulk_create_jobs([{"name": "record"} for _ in range(count)])
    workers = [start_worker("--burst", "--concurrency", "4") for _ in range(3)]
    for worker in workers:
        assert worker.wait(timeout=240) == 0, worker.output()[-3000:]
    assert states() == {"COMPLETED": count}
    runs = Execution.objects.values("job_id").annotate(n=Count("pk"))
    assert runs.count() == count
    assert max(r["n"] for r in runs) == 1
    # Every process took part: claiming spread the work.
    assert Execution.objects.values("pid").distinct().count() >= 2


def test_sigterm_lets_a_running_task_finish_and_exits_zero(start_worker, tmp_path):
    marker = tmp_path / "started"
    job = Job.objects.create(
        name="sleepy", workspace={"seconds": 1.5, "started_marker": str(marker)}
    )
    worker = start_worker("--grace", "20")
    wait_for(lambda: marker_lines(marker), message="the task to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.output()
    job.refresh_from_db()
    assert job.state == Job.STATES.COMPLETED
    assert Execution.objects.filter(job_id=job.pk).count() == 1


def test_sigterm_past_the_grace_period_releases_the_job_without_spending_an_attempt(
    start_worker, tmp_path
):
    marker = tmp_path / "started"
    job = Job.objects.create(
        name="sleepy", workspace={"seconds": 120, "started_marker": str(marker)}
    )
    worker = start_worker("--grace", "0.5")
    wait_for(lambda: marker_lines(marker), message="the task to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.output()
    job.refresh_from_db()
    assert job.state == Job.STATES.READY
    assert job.attempts == 0
    assert "released" in worker.output()


def test_a_second_signal_releases_at_once(start_worker, tmp_path):
    marker = tmp_path / "started"
    job = Job.objects.create(
        name="sleepy", workspace={"seconds": 120, "started_marker": str(marker)}
    )
    worker = start_worker("--grace", "600")
    wait_for(lambda: marker_lines(marker), message="the task to start")
    worker.signal(signal.SIGINT)
    wait_for(lambda: "finishing running jobs" in worker.output(), message="first signal seen")
    # The worker took the first signal before now (it logged it), maybe well after it
    # was sent on a busy machine. A repeat within SECOND_SIGNAL_AFTER of taking it is
    # the same stop request; later it is a second.
    first = time.monotonic()
    wait_for(lambda: time.monotonic() - first > SECOND_SIGNAL_AFTER, message="the window")
    worker.signal(signal.SIGINT)
    assert worker.wait(timeout=30) == 0, worker.output()
    job.refresh_from_db()
    assert job.state == Job.STATES.READY
    assert job.attempts == 0


def test_a_signal_delivered_twice_at_once_is_one_stop_request(start_worker, tmp_path):
    marker = tmp_path / "started"
    job = Job.objects.create(
        name="sleepy", workspace={"seconds": 1.5, "started_marker": str(marker)}
    )
    worker = start_worker("--grace", "20")
    wait_for(lambda: marker_lines(marker), message="the task to start")
    worker.signal(signal.SIGTERM)  # as systemd and a --processes supervisor both would
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.output()
    job.refresh_from_db()
    assert job.state == Job.STATES.COMPLETED


def test_dry_run_checks_the_options_and_exits():
    result = run_command("worker", "emails", "--concurrency", "3", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Starting job worker for queue(s) emails" in result.stdout
    assert "concurrency=3" in result.stdout


def test_a_job_of_a_killed_worker_is_rescued_and_finished_by_another(start_worker, tmp_path):
    marker = tmp_path / "started"
    job = Job.objects.create(
        name="sleepy",
        workspace={"seconds": 120, "slow_once": True, "started_marker": str(marker)},
    )
    doomed = start_worker(**FAST_RESCUE)
    wait_for(lambda: marker_lines(marker), message="the task to start")
    wait_for(  # the worker has recorded that the task started: it will be charged
        lambda: Job.objects.get(pk=job.pk).started_at is not None,
        message="the task's start to be marked",
    )
    doomed.signal(signal.SIGKILL)
    doomed.wait()
    rescuer = start_worker("--poll-interval", "0.2", **FAST_RESCUE)
    wait_for(
        lambda: Job.objects.get(pk=job.pk).state == Job.STATES.COMPLETED,
        timeout=60,
        message="the rescued job to complete",
    )
    job.refresh_from_db()
    assert job.attempts == 2
    assert job.errors[0]["type"] == "django_dbq.exceptions.WorkerLostError"
    assert str(doomed.pid) in job.errors[0]["worker"]
    assert Execution.objects.filter(job_id=job.pk).count() == 1
    assert "Job rescued" in rescuer.output()


def test_an_idle_worker_polls_for_new_jobs(start_worker):
    worker = start_worker("--poll-interval", "0.1")
    wait_for(lambda: "starting:" in worker.output(), message="the worker to start")
    job = Job.objects.create(name="noop")
    wait_for(
        lambda: Job.objects.get(pk=job.pk).state == Job.STATES.COMPLETED,
        timeout=20,
        message="the job to be picked up",
    )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's")
def test_listen_notify_wakes_an_idle_worker_long_before_its_poll(start_worker):
    worker = start_worker("--poll-interval", "300")
    wait_for(lambda: "Listening for new jobs" in worker.output(), message="LISTEN")
    job = Job.objects.create(name="noop")
    # The poll is 300 s away: only the NOTIFY sent at commit can explain a pickup.
    wait_for(
        lambda: Job.objects.get(pk=job.pk).state == Job.STATES.COMPLETED,
        timeout=15,
        message="NOTIFY pickup",
    )


def _kill_other_connections() -> int:
    """Terminate every other connection to the test database; return how many."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return len(cursor.fetchall())
        cursor.execute(
            "SELECT id FROM information_schema.processlist "
            "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
        )
        ids = [row[0] for row in cursor.fetchall()]
        for pid in ids:
            cursor.execute(f"KILL {int(pid)}")
        return len(ids)


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite has no server connections")
def test_a_worker_whose_connections_are_killed_reconnects_and_goes_on(start_worker):
    worker = start_worker("--poll-interval", "0.2", "--concurrency", "2")
    Job.objects.bulk_create_jobs([{"name": "record"} for _ in range(20)])
    wait_for(lambda: states() == {"COMPLETED": 20}, timeout=30, message="first batch")
    assert _kill_other_connections() > 0, "the worker had no connection to kill"
    Job.objects.bulk_create_jobs([{"name": "record"} for _ in range(20)])
    wait_for(lambda: states() == {"COMPLETED": 40}, timeout=60, message="second batch")
    assert worker.proc.poll() is None
    assert Execution.objects.count() == 40


def test_processes_are_supervised_and_a_dead_child_is_replaced(start_worker):
    supervisor = start_worker("--processes", "2", "--poll-interval", "0.2")
    started = re.compile(r"Started worker process (\d+)")
    pids = wait_for(
        lambda: (
            len(started.findall(supervisor.output())) >= 2 and started.findall(supervisor.output())
        ),
        message="two children",
    )
    os.kill(int(pids[0]), signal.SIGKILL)
    wait_for(
        lambda: len(started.findall(supervisor.output())) >= 3,
        timeout=30,
        message="a replacement child",
    )
    job = Job.objects.create(name="noop")
    wait_for(lambda: Job.objects.get(pk=job.pk).state == Job.STATES.COMPLETED, timeout=20)
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait(timeout=60) == 0, supervisor.output()
    for pid in started.findall(supervisor.output()):
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "0"], "--concurrency must be at least 1"),
        (["--concurrency", "many"], "--concurrency must be a whole number"),
        (["--grace", "-1"], "--grace must be at least 0"),
        (["--poll-interval", "soon"], "--poll-interval must be a number of seconds"),
    ],
)
def test_bad_worker_options_get_a_one_line_error(args, message):
    result = run_command("worker", *args)
    assert result.returncode == 1
    assert result.stderr.strip() == f"CommandError: {message}, not {args[1]!r}."


def test_rate_limit_spaces_out_job_starts(start_worker):
    jobs = Job.objects.bulk_create_jobs([{"name": "noop"} for _ in range(3)])
    worker = start_worker("--burst", "--rate_limit", "0.3")
    assert worker.wait() == 0, worker.output()
    starts = sorted(
        Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("started_at", flat=True)
    )
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert len(gaps) == 2 and min(gaps) >= 0.29, gaps
