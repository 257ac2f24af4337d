"""django_dbq.store: the operators' writes (retry a failed job, run a scheduled one now,
cancel a waiting one, edit, delete), each guarded so that a job a worker claimed in
the meantime is left alone."""

from __future__ import annotations

import contextlib
import datetime
import types

import pytest
from django.db import transaction
from django.utils import timezone

from django_dbq import signals, store
from django_dbq.integrations.synchronous import run_job
from django_dbq.models import Job
from tests import tasks

pytestmark = pytest.mark.django_db

WORKER = "a-worker"


def failed_job(name: str = "admin_flaky") -> Job:
    """A job that really failed: run by the executor until its attempts ran out."""
    job = run_job(Job.objects.create(name=name))
    assert job.state == Job.STATES.FAILED
    return job


def later(minutes: float = 60) -> datetime.datetime:
    return timezone.now() + datetime.timedelta(minutes=minutes)


def between_read_and_write(monkeypatch, interfere) -> None:
    """Run ``interfere()`` once, after the operator's write has read its candidates and
    before it writes them: the race every operator write must survive."""
    real = transaction.atomic
    pending = [interfere]

    @contextlib.contextmanager
    def atomic(*args, **kwargs):
        while pending:
            pending.pop()()
        with real(*args, **kwargs):
            yield

    monkeypatch.setattr(store, "transaction", types.SimpleNamespace(atomic=atomic))


def worker_claims_first(monkeypatch, queue: str = "default") -> None:
    between_read_and_write(monkeypatch, lambda: store.claim(WORKER, [queue], 1000, 30))


# --- retry_failed ------------------------------------------------------------------------------


def test_retry_puts_a_failed_job_back_at_the_failed_step_with_its_attempts_reset():
    job = failed_job()
    assert (job.step, job.attempts, len(job.errors)) == (1, 2, 2)

    result = store.retry_failed([job.pk], by="alice")

    assert (result.changed, result.skipped) == ([job.pk], 0)
    job.refresh_from_db()
    assert job.state == Job.STATES.READY
    assert (job.step, job.next_task, job.attempts) == (1, "tests.tasks.fail", 0)
    assert (job.run_after, job.finished_at, job.started_at) == (None, None, None)
    assert len(job.errors) == 2  # the earlier errors are kept


def test_a_retried_job_gets_all_its_attempts_again_not_one_more():
    job = failed_job()
    store.retry_failed([job.pk], by="alice")

    job = run_job(job)

    assert job.state == Job.STATES.FAILED
    assert job.attempts == 2  # max_attempts, not 3
    assert [e["attempt"] for e in job.errors] == [1, 2, 1, 2]


def test_retry_leaves_jobs_that_are_not_failed_alone():
    failed = failed_job()
    waiting = Job.objects.create(name="noop", run_after=later())
    done = run_job(Job.objects.create(name="noop"))

    result = store.retry_failed([failed.pk, waiting.pk, done.pk], by="alice")

    assert (result.changed, result.skipped) == ([failed.pk], 2)
    assert Job.objects.get(pk=waiting.pk).run_after is not None
    assert Job.objects.get(pk=done.pk).state == Job.STATES.COMPLETED


def test_retry_skips_a_failed_tracked_operation_which_no_worker_can_run():
    with contextlib.suppress(ValueError), Job.objects.track("an_operation"):
        raise ValueError("it went wrong")
    tracked = Job.objects.get(name="an_operation")
    assert tracked.state == Job.STATES.FAILED

    result = store.retry_failed([tracked.pk], by="alice")

    assert (result.changed, result.skipped) == ([], 1)


def test_retry_leaves_a_job_that_a_worker_claimed_after_the_operator_looked(monkeypatch):
    job = failed_job()
    store.retry_failed([job.pk], by="someone else")  # READY again: a worker may claim it

    worker_claims_first(monkeypatch)
    result = store.retry_failed([job.pk], by="alice")

    assert (result.changed, result.skipped) == ([], 1)
    job.refresh_from_db()
    assert (job.state, job.lease_owner) == (Job.STATES.PROCESSING, WORKER)


def test_retry_writes_every_job_of_a_selection_larger_than_one_chunk():
    jobs = [failed_job("failing") for _ in range(store.OPERATOR_CHUNK + 5)]

    result = store.retry_failed([str(j.pk) for j in jobs] + [str(jobs[0].pk)], by="alice")

    assert (len(result.changed), result.skipped) == (len(jobs), 0)
    assert result.changed == [j.pk for j in jobs]
    assert Job.objects.filter(state=Job.STATES.READY).count() == len(jobs)


# --- run_now ------------------------------------------------------------------------------------


def test_run_now_clears_run_after_of_a_scheduled_job():
    job = Job.objects.create(name="noop", run_after=later())
    assert not Job.objects.runnable().exists()

    result = store.run_now([job.pk], by="alice")

    assert (result.changed, result.skipped) == ([job.pk], 0)
    assert list(Job.objects.runnable()) == [job]


def test_run_now_skips_jobs_that_are_not_scheduled_or_not_waiting():
    unscheduled = Job.objects.create(name="noop")
    claimed = Job.objects.create(name="noop", queue_name="busy", run_after=later(-1))
    store.claim(WORKER, ["busy"], 1, 30)

    result = store.run_now([unscheduled.pk, claimed.pk], by="alice")

    assert (result.changed, result.skipped) == ([], 2)
    assert Job.objects.get(pk=claimed.pk).state == Job.STATES.PROCESSING


# --- cancel_waiting ----------------------------------------------------------------------------


def test_cancel_fails_waiting_jobs_with_a_record_of_who_cancelled_them():
    new = Job.objects.create(name="failing")
    scheduled = Job.objects.create(name="failing", run_after=later())
    failed_signals = []
    signals.job_failed.connect(failed_signals.append, dispatch_uid="test-cancel")
    try:
        result = store.cancel_waiting([new.pk, scheduled.pk], by="alice")
    finally:
        signals.job_failed.disconnect(dispatch_uid="test-cancel")

    assert (sorted(map(str, result.changed)), result.skipped) == (
        sorted([str(new.pk), str(scheduled.pk)]),
        0,
    )
    for job in Job.objects.filter(pk__in=[new.pk, scheduled.pk]):
        assert job.state == Job.STATES.FAILED
        assert job.finished_at is not None
        [record] = job.errors
        assert record["type"] == "django_dbq.exceptions.JobCancelledError"
        assert record["cancelled_by"] == "alice"
        assert record["message"].startswith("Cancelled by alice while it waited to run")
    # Cancelling is not a failure: no failure hook, no job_failed signal.
    assert ("failure_hook",) not in [call[:1] for call in tasks.calls]
    assert failed_signals == []


def test_cancel_keeps_the_errors_of_earlier_attempts():
    job = failed_job()
    store.retry_failed([job.pk], by="bob")

    store.cancel_waiting([job.pk], by="alice")

    job.refresh_from_db()
    assert [e.get("cancelled_by") for e in job.errors] == [None, None, "alice"]


def test_cancel_leaves_running_and_finished_jobs_alone():
    running = Job.objects.create(name="noop", queue_name="busy")
    store.claim(WORKER, ["busy"], 1, 30)
    done = run_job(Job.objects.create(name="noop"))

    result = store.cancel_waiting([running.pk, done.pk], by="alice")

    assert (result.changed, result.skipped) == ([], 2)
    assert Job.objects.get(pk=running.pk).state == Job.STATES.PROCESSING
    assert Job.objects.get(pk=done.pk).state == Job.STATES.COMPLETED


def test_cancel_leaves_a_job_that_a_worker_claimed_after_the_operator_looked(monkeypatch):
    job = Job.objects.create(name="noop")

    worker_claims_first(monkeypatch)
    result = store.cancel_waiting([job.pk], by="alice")

    assert (result.changed, result.skipped) == ([], 1)
    job.refresh_from_db()
    assert (job.state, job.errors) == (Job.STATES.PROCESSING, [])


def test_cancel_reads_again_a_job_that_changed_but_still_waits(monkeypatch):
    job = Job.objects.create(name="noop", run_after=later())
    # Another operator makes it runnable now between our read and our write.
    between_read_and_write(monkeypatch, lambda: store.run_now([job.pk], by="bob"))
    result = store.cancel_waiting([job.pk], by="alice")

    assert result.changed == [job.pk]
    job.refresh_from_db()
    assert (job.state, job.run_after) == (Job.STATES.FAILED, None)


# --- delete_finished ---------------------------------------------------------------------------


def test_delete_removes_finished_jobs_only():
    done = run_job(Job.objects.create(name="noop"))
    failed = failed_job("failing")
    waiting = Job.objects.create(name="noop")

    result = store.delete_finished([done.pk, failed.pk, waiting.pk], by="alice")

    assert (set(result.changed), result.skipped) == ({done.pk, failed.pk}, 1)
    assert list(Job.objects.all()) == [waiting]


# --- edit ---------------------------------------------------------------------------------------


def test_edit_writes_a_job_unchanged_since_the_operator_read_it():
    job = Job.objects.create(name="noop")

    assert store.edit(job.pk, job.modified, {"priority": 5, "workspace": {"a": 1}})

    job.refresh_from_db()
    assert (job.priority, job.workspace) == (5, {"a": 1})


def test_edit_leaves_a_job_that_a_worker_claimed_since_it_was_read():
    job = Job.objects.create(name="noop")
    store.claim(WORKER, ["default"], 1, 30)

    assert not store.edit(job.pk, job.modified, {"priority": 5})
    assert Job.objects.get(pk=job.pk).priority == 0


def test_edit_leaves_a_job_that_someone_else_changed_since_it_was_read():
    job = Job.objects.create(name="noop", run_after=later())
    store.run_now([job.pk], by="bob")

    assert not store.edit(job.pk, job.modified, {"priority": 5})
    assert Job.objects.get(pk=job.pk).priority == 0


def test_edit_refuses_fields_an_operator_may_not_set():
    job = Job.objects.create(name="noop")

    with pytest.raises(ValueError, match="state"):
        store.edit(job.pk, job.modified, {"state": Job.STATES.PROCESSING})
