"""django_dbq.integrations.synchronous: the always-synchronous mode and the in-process helpers."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from django_dbq.integrations.synchronous import run_job, run_pending_jobs
from django_dbq.models import Job
from tests import tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def sync_mode(settings):
    settings.DBQ_RUN_SYNCHRONOUSLY = True


def test_sync_mode_runs_the_whole_chain_at_commit(sync_mode, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = Job.objects.create(name="chain")
        assert Job.objects.get(pk=job.pk).state == Job.STATES.NEW  # not before the commit
    job.refresh_from_db()
    assert job.state == Job.STATES.COMPLETED
    assert job.workspace["trail"] == ["one", "two", "three"]
    assert job.lease_owner.startswith("sync:")
    assert [c[0] for c in tasks.calls].count("post_task_hook") == 3


def test_sync_mode_records_failures_like_a_worker(sync_mode, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = Job.objects.create(name="failing")
    job.refresh_from_db()
    assert job.state == Job.STATES.FAILED
    assert job.errors[0]["message"] == "task failed on purpose"
    assert ("failure_hook", "ValueError: task failed on purpose") in tasks.calls


def test_sync_mode_retries_what_is_due_and_leaves_what_is_not(
    sync_mode, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        flaky = Job.objects.create(name="flaky", workspace={"succeed_on": 2})  # backoff 0
        later = Job.objects.create(name="retry_later")  # backoff 600 s
    flaky.refresh_from_db()
    assert flaky.state == Job.STATES.COMPLETED
    assert flaky.attempts == 2
    later.refresh_from_db()
    assert later.state == Job.STATES.READY
    assert later.run_after > timezone.now() + datetime.timedelta(seconds=250)


def test_sync_mode_runs_bulk_created_jobs(sync_mode, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        Job.objects.bulk_create_jobs([{"name": "chain"} for _ in range(3)])
    assert set(Job.objects.values_list("state", flat=True)) == {Job.STATES.COMPLETED}


def test_sync_mode_runs_bulk_enqueued_jobs(sync_mode, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        ids = Job.objects.bulk_enqueue("noop", [{}, {}])
    assert [Job.objects.get(pk=pk).state for pk in ids] == [Job.STATES.COMPLETED] * 2


def test_without_sync_mode_nothing_runs_at_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = Job.objects.create(name="chain")
    assert Job.objects.get(pk=job.pk).state == Job.STATES.NEW


def test_run_job_runs_one_job_now():
    job = Job.objects.create(name="chain")
    other = Job.objects.create(name="noop")
    assert run_job(job).state == Job.STATES.COMPLETED
    assert Job.objects.get(pk=other.pk).state == Job.STATES.NEW


def test_run_pending_jobs_runs_everything_or_one_queue():
    Job.objects.create(name="chain")
    Job.objects.create(name="noop", queue_name="other")
    Job.objects.create(name="count_clicks")  # a batch that is not due yet
    assert run_pending_jobs("other") == 1
    assert Job.objects.filter(state=Job.STATES.COMPLETED).count() == 1
    assert run_pending_jobs() == 4  # three chain steps and one batch
    assert set(Job.objects.values_list("state", flat=True)) == {Job.STATES.COMPLETED}


def test_run_pending_jobs_can_leave_batches_alone():
    Job.objects.create(name="count_clicks")
    assert run_pending_jobs(flush_batches=False) == 0
    assert Job.objects.get().state == Job.STATES.NEW
