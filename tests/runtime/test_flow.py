"""Flow control with real worker processes: global max_running and rate limits,
timeouts that stop a sleeping task and a blocking socket read, and cancelling
running jobs (cooperatively, and past the grace period)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from django_dbq.models import Job
from django_dbq.states import JobStates
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

FAST = {"DBQ_LEASE_SECONDS": "3", "DBQ_RESCUE_INTERVAL": "0.5"}


def lines(log: Path, kind: str) -> list[list[str]]:
    if not log.exists():
        return []
    return [line.split() for line in log.read_text().splitlines() if line.split()[2] == kind]


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of spans that overlap at one instant."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, step in events:  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


def all_done(name: str) -> bool:
    return not Job.objects.filter(name=name).exclude(state=JobStates.COMPLETED).exists()


def test_max_running_holds_across_six_processes_of_four_threads(start_worker, tmp_path):
    log = tmp_path / "spans.log"
    Job.objects.bulk_enqueue("limited", [{"log": str(log), "seconds": 0.2}] * 36)
    Job.objects.bulk_enqueue("unlimited_span", [{"log": str(log), "seconds": 0}] * 20)
    workers = [start_worker("--concurrency", "4", **FAST) for _ in range(6)]
    wait_for(lambda: all_done("limited"), timeout=120, message="the limited jobs")
    assert all_done("unlimited_span")
    spans = [
        (float(start), float(end))
        for job_id, _, _, start, end in lines(log, "span")
        if Job.objects.filter(pk=job_id, name="limited").exists()
    ]
    assert len(spans) == 36
    assert most_at_once(spans) <= 3
    assert most_at_once(spans) == 3  # the limit is reached, not merely respected
    assert len({pid for _, pid, *_ in lines(log, "span")}) > 1
    for worker in workers:
        worker.signal(signal.SIGTERM)


def test_a_queue_limit_holds_for_every_job_of_the_queue(start_worker, tmp_path):
    log = tmp_path / "spans.log"
    Job.objects.bulk_enqueue(
        "unlimited_span", [{"log": str(log), "seconds": 0.2}] * 16, queue_name="partner"
    )
    env = {**FAST, "DBQ_QUEUE_LIMITS": json.dumps({"partner": {"max_running": 2}})}
    for _ in range(3):
        start_worker("partner", "--concurrency", "3", **env)
    wait_for(lambda: all_done("unlimited_span"), timeout=120, message="the queue's jobs")
    spans = [(float(start), float(end)) for *_, start, end in lines(log, "span")]
    assert len(spans) == 16
    assert most_at_once(spans) == 2


def test_a_rate_limit_spaces_out_starts_across_four_workers(start_worker, tmp_path):
    log = tmp_path / "starts.log"
    Job.objects.bulk_enqueue("rated", [{"log": str(log)}] * 1000)
    for _ in range(4):
        start_worker("--concurrency", "4", **FAST)
    wait_for(lambda: all_done("rated"), timeout=120, message="the rated jobs")
    records = [(float(token), float(at)) for *_, token, at in lines(log, "start")]
    assert len(records) == 1000
    tokens = sorted(token for token, _ in records)
    starts = sorted(at for _, at in records)

    def busiest(times: list[float]) -> int:
        return max(
            sum(1 for t in times[i : i + 200] if t < first + 1.0) for i, first in enumerate(times)
        )

    # A token bucket of 50/s holding at most 2.5 (a twentieth of a second's worth): any
    # one-second window hands out at most 52.5 tokens, whatever the workers do.
    assert busiest(tokens) <= 52
    # No job starts before its token; one may start late when the host does not run
    # its worker at once, and jobs claimed just before a window may start in it: so
    # starts in a second stay within 50 + 2 x 2.5, plus the rate times that lateness.
    lateness = [at - token for token, at in records]
    assert min(lateness) >= -0.005
    assert busiest(starts) <= 55 + 50 * max(lateness)
    took = starts[-1] - starts[0]
    assert took + 0.05 >= (1000 - 5) / 50  # never faster than the rate
    assert took <= 22.0  # 20 s, +10%


def test_a_sleeping_task_is_stopped_by_its_timeout_retried_and_failed(start_worker, tmp_path):
    log = tmp_path / "timeout.log"
    job = Job.objects.create(name="timed_sleep", workspace={"log": str(log)})
    worker = start_worker("--concurrency", "4", **FAST)
    wait_for(
        lambda: Job.objects.get(pk=job.pk).state == JobStates.FAILED,
        timeout=60,
        message="both attempts to time out",
    )
    job.refresh_from_db()
    assert [r["type"] for r in job.errors] == ["django_dbq.exceptions.JobTimeoutError"] * 2
    assert "ran longer than the timeout of 1s" in job.errors[-1]["message"]
    assert job.workspace["failure_hook"].startswith("JobTimeoutError")  # on the last
    assert [attempt for *_, attempt in lines(log, "start")] == ["1", "2"]
    assert not lines(log, "woke")
    # The runners are free again: the worker goes on with other jobs.
    other = Job.objects.create(name="noop")
    wait_for(lambda: Job.objects.get(pk=other.pk).state == JobStates.COMPLETED, timeout=30)
    wait_for(lambda: "stuck in job" in worker.output(), message="the runner left behind")


def test_a_blocking_socket_read_is_stopped_by_its_timeout(start_worker, tmp_path):
    log = tmp_path / "read.log"
    job = Job.objects.create(name="timed_read", workspace={"log": str(log)})
    start_worker("--concurrency", "2", **FAST)
    wait_for(
        lambda: Job.objects.get(pk=job.pk).state == JobStates.FAILED,
        timeout=60,
        message="the read to time out",
    )
    job.refresh_from_db()
    assert job.errors[-1]["type"] == "django_dbq.exceptions.JobTimeoutError"
    assert lines(log, "start") and not lines(log, "woke")


def test_a_worker_whose_runners_are_all_stuck_stops_to_be_replaced(start_worker, tmp_path):
    log = tmp_path / "read.log"
    job = Job.objects.create(name="timed_read", workspace={"log": str(log)})
    worker = start_worker("--concurrency", "1", **FAST)
    assert worker.wait(timeout=60) == 3
    assert Job.objects.get(pk=job.pk).state == JobStates.FAILED
    assert "runner threads are stuck" in worker.output()


def test_a_running_job_is_cancelled_at_its_next_checkpoint(start_worker, tmp_path):
    log = tmp_path / "cancel.log"
    job = Job.objects.create(name="cooperative", workspace={"log": str(log)})
    start_worker(**FAST)
    wait_for(lambda: lines(log, "start"), message="the task to start")
    result = job.cancel(by="ops: wrong input")
    assert result.requested == [job.pk]
    wait_for(
        lambda: Job.objects.get(pk=job.pk).state == JobStates.FAILED,
        timeout=30,
        message="the cancel to reach the task",
    )
    job.refresh_from_db()
    record = job.errors[-1]
    assert record["type"] == "django_dbq.exceptions.JobCancelledError"
    assert record["cancelled_by"] == "ops: wrong input"
    assert "stopped at a checkpoint" in record["message"]
    assert job.attempts == 1 and not lines(log, "finished")


def test_a_running_job_that_ignores_the_cancel_is_ended_after_the_grace(start_worker, tmp_path):
    log = tmp_path / "cancel.log"
    job = Job.objects.create(name="stubborn", workspace={"log": str(log)})
    worker = start_worker("--concurrency", "2", DBQ_CANCEL_GRACE="1", **FAST)
    wait_for(lambda: lines(log, "start"), message="the task to start")
    Job.objects.filter(pk=job.pk).cancel(by="ops")
    wait_for(
        lambda: Job.objects.get(pk=job.pk).state == JobStates.FAILED,
        timeout=30,
        message="the grace to run out",
    )
    job.refresh_from_db()
    assert job.errors[-1]["cancelled_by"] == "ops"
    assert "did not stop in time" in job.errors[-1]["message"]
    wait_for(lambda: "stuck in job" in worker.output(), message="the runner left behind")
