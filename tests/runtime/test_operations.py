"""Real worker processes and the operators' tools: the worker registry (a row per
running worker, heartbeated, gone when the worker stops or dies) and queue pauses
(nothing claimed from a paused queue, running jobs finish, the pause survives a
restart)."""

from __future__ import annotations

import signal

import pytest

from django_dbq.models import Job, WorkerRecord
from django_dbq.operations import pauses
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

# Heartbeats every 0.5 s (a third of the lease), rescue passes every 0.3 s.
FAST = {"DBQ_LEASE_SECONDS": "1.5", "DBQ_RESCUE_INTERVAL": "0.3"}


def record_of(worker) -> WorkerRecord | None:
    return WorkerRecord.objects.filter(pid=worker.pid).first()


def state_of(job: Job) -> str:
    return Job.objects.get(pk=job.pk).state


def test_a_running_worker_heartbeats_into_the_registry_and_leaves_it_when_stopped(start_worker):
    worker = start_worker("emails", "reports", "--concurrency", "3", **FAST)
    first = wait_for(lambda: record_of(worker), message="the worker's registry row")
    assert first.queues == ["emails", "reports"]
    assert first.concurrency == 3
    assert first.owner.split(":")[1] == str(worker.pid)
    beat = wait_for(
        lambda: (r := record_of(worker)) and r.heartbeat_at > first.heartbeat_at and r,
        message="a heartbeat",
    )
    assert beat.expires_at > beat.heartbeat_at
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert record_of(worker) is None


def test_a_killed_workers_row_expires_and_another_worker_prunes_it(start_worker):
    doomed = start_worker(**FAST)
    record = wait_for(lambda: record_of(doomed), message="the doomed worker's row")
    doomed.signal(signal.SIGKILL)
    doomed.wait()
    assert WorkerRecord.objects.filter(pk=record.pk).exists()  # nobody said it died
    survivor = start_worker(**FAST)
    wait_for(lambda: record_of(survivor), message="the survivor's row")
    wait_for(
        lambda: not WorkerRecord.objects.filter(pk=record.pk).exists(),
        timeout=30,
        message="the dead worker's row to expire and be pruned",
    )
    assert record_of(survivor) is not None


def test_a_paused_queue_is_left_alone_across_a_restart_until_resumed(start_worker):
    assert pauses.pause("held", by="test")
    held = Job.objects.create(name="noop", queue_name="held")
    first = Job.objects.create(name="noop", queue_name="open")
    worker = start_worker("held", "open", "--poll-interval", "0.1")
    # One claim serves both queues: had the pause been ignored, it would take both jobs.
    wait_for(lambda: state_of(first) == Job.STATES.COMPLETED, message="the open queue's job")
    assert state_of(held) == Job.STATES.NEW
    assert "paused=held" in worker.output()
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0

    restarted = start_worker("held", "open", "--poll-interval", "0.1")
    second = Job.objects.create(name="noop", queue_name="open")
    wait_for(lambda: state_of(second) == Job.STATES.COMPLETED, message="after the restart")
    assert state_of(held) == Job.STATES.NEW

    assert pauses.resume("held")
    wait_for(
        lambda: state_of(held) == Job.STATES.COMPLETED,
        timeout=20,
        message="the resumed queue's job",
    )
    wait_for(lambda: "Queue(s) resumed: held" in restarted.output(), message="the resume log")


def test_pausing_a_busy_queue_lets_its_running_job_finish_and_claims_no_more(
    start_worker, tmp_path
):
    marker = tmp_path / "started"
    running = Job.objects.create(
        name="sleepy",
        queue_name="work",
        workspace={"seconds": 2, "started_marker": str(marker)},
    )
    worker = start_worker("work", "other", "--poll-interval", "0.1", "--concurrency", "2")
    wait_for(lambda: marker.exists(), message="the first job to start")
    pauses.pause("work", by="test")
    wait_for(
        lambda: "Queue(s) paused: work" in worker.output(),
        timeout=10,
        message="the worker to notice the pause",
    )
    waiting = Job.objects.create(name="noop", queue_name="work")
    other = Job.objects.create(name="noop", queue_name="other")
    wait_for(lambda: state_of(other) == Job.STATES.COMPLETED, message="the other queue's job")
    wait_for(
        lambda: state_of(running) == Job.STATES.COMPLETED,
        timeout=20,
        message="the job that was running when the queue was paused",
    )
    assert state_of(waiting) == Job.STATES.NEW
