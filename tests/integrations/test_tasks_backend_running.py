"""django_dbq.integrations.tasks_backend, running tasks: in this process (claim and
executor, as a worker thread does), rescue of a lost task, per-task options (retries,
backoff, lease), and real ``manage.py worker`` processes. Configuration, enqueue and
get_result: test_tasks_backend.py, which also says what is ported from django-tasks-db.
"""

from __future__ import annotations

import datetime
import signal
import sys

import django
import pytest

if django.VERSION < (6, 0):
    pytest.skip(
        "django.tasks (and so django_dbq.tasks) needs Django 6.0 or later",
        allow_module_level=True,
    )

from django.db import connection, connections, transaction
from django.tasks import TaskResultStatus
from django.tasks.signals import task_started
from django.utils import timezone

from django_dbq import job_types, store
from django_dbq.db import backend_for
from django_dbq.integrations.tasks_backend import JOB_NAME, DatabaseBackend, job_options
from django_dbq.models import Job
from django_dbq.runtime import executor
from tests import django_tasks as t
from tests.conftest import wait_for
from tests.integrations.tasks_support import (
    CANARY_MODULE,
    OWNER,
    needs_job_options,
    run_one,
    task_row,
)
from tests.models import Execution

pytestmark = pytest.mark.django_db


# --- running, in this process (claim + executor, as a worker thread does) ------------------------


def test_run_enqueued_task(received):
    result = t.add.enqueue(2, 3)
    assert run_one().kind == "completed"

    assert result.status == TaskResultStatus.READY
    assert result.attempts == 0
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.started_at >= result.enqueued_at
    assert result.finished_at >= result.started_at
    assert result.last_attempted_at == result.started_at
    assert result.attempts == 1
    assert result.worker_ids == [OWNER]
    assert [(name, sender, r.status) for name, sender, r in received[1:]] == [
        ("started", DatabaseBackend, TaskResultStatus.RUNNING),
        ("finished", DatabaseBackend, TaskResultStatus.SUCCESSFUL),
    ]
    assert received[2][2].return_value == 5
    assert not Job.objects.runnable().exists()

def test_the_return_value_is_json_normalised():
    result = t.echo.enqueue(1, (2, 3), key=b"bytes")
    run_one()
    result.refresh()
    assert result.return_value == {"args": [1, [2, 3]], "kwargs": {"key": "bytes"}}

def test_failing_task(received):
    result = t.failing_task_value_error.enqueue()
    assert run_one().kind == "failed"

    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.started_at >= result.enqueued_at
    assert result.finished_at >= result.started_at
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    [error] = result.errors
    assert error.exception_class is ValueError
    assert error.traceback.endswith("ValueError: This task failed due to ValueError\n")
    assert result.worker_ids == [OWNER]
    [finished] = [r for name, _, r in received if name == "finished"]
    assert finished.status == TaskResultStatus.FAILED
    assert finished.errors[0].exception_class is ValueError

def test_complex_exception():
    result = t.complex_exception.enqueue()
    run_one()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is ValueError
    assert 'ValueError(ValueError("This task failed"))' in result.errors[0].traceback

def test_complex_return_value():
    result = t.complex_return_value.enqueue()
    run_one()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result._return_value is None
    assert result.errors[0].exception_class is TypeError
    assert "Unsupported type" in result.errors[0].traceback
    assert "return_value" not in Job.objects.get().workspace

def test_a_return_value_json_cannot_store_fails_the_task():
    result = t.nan_return.enqueue()
    run_one()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert "not JSON-serialisable" in result.errors[0].traceback

@pytest.mark.parametrize(
    ("task", "exception"),
    [(t.exit_task, SystemExit), (t.failing_task_keyboard_interrupt, KeyboardInterrupt)],
    ids=["SystemExit", "KeyboardInterrupt"],
)
def test_a_task_raising_a_base_exception_fails_and_the_worker_goes_on(task, exception):
    result = task.enqueue()
    assert run_one().kind == "failed"
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is exception
    exit_error = "django_dbq.integrations.tasks_backend.TaskExitError"
    assert Job.objects.get().errors[0]["type"] == exit_error

def test_takes_context():
    result = t.get_task_id.enqueue()
    run_one()
    result.refresh()
    assert result.return_value == result.id

def test_context():
    result = t.context_details.enqueue(1)
    run_one()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    assert result.return_value == {"attempt": 1, "worker_ids": [OWNER], "id": result.id}

def test_an_async_task_runs_on_the_worker():
    result = t.async_add.enqueue(2, 40)
    run_one()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42

def test_an_async_task_can_use_the_orm():
    result = t.async_record.enqueue("from-async")
    run_one()
    result.refresh()
    assert result.return_value == "from-async"
    assert Execution.objects.filter(thread="from-async").count() == 1

def test_an_async_task_past_its_timeout_is_cancelled():
    result = t.too_slow.enqueue()
    outcome = run_one()
    assert outcome.kind == "failed"
    assert outcome.duration < 10
    result.refresh()
    assert result.errors[0].exception_class is TimeoutError

def test_a_signal_receiver_that_raises_does_not_fail_the_task(caplog):
    def explode(**kwargs):
        raise RuntimeError("receiver bug")

    task_started.connect(explode, dispatch_uid="test-explode")
    try:
        result = t.add.enqueue(1, 1)
        with caplog.at_level("ERROR", logger="django_dbq.tasks"):
            run_one()
    finally:
        task_started.disconnect(dispatch_uid="test-explode")
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert "receiver" in caplog.text

def test_invalid_task_path_fails_the_job_without_importing_or_retrying():
    sys.modules.pop(CANARY_MODULE, None)
    job = task_row(task=f"{CANARY_MODULE}.main", backend="retrying")
    assert run_one().kind == "failed"
    job.refresh_from_db()
    assert job.state == Job.STATES.FAILED
    assert job.attempts == 1
    assert job.errors[0]["type"] == "django_dbq.exceptions.PermanentJobError"
    assert "outside the modules" in job.errors[0]["message"]
    assert CANARY_MODULE not in sys.modules

@pytest.mark.parametrize(
    ("workspace", "message"),
    [
        ({"task": "tests.tasks.noop"}, "not a django.tasks Task"),
        ({"task": "not a path"}, "not the dotted path"),
        ({"task": None}, "not the dotted path"),
        ({"backend": "dummy"}, "not a django_dbq DatabaseBackend"),
        ({"backend": "gone"}, "which TASKS lacks"),
        ({"args": {"a": 1}}, "args must be a list"),
        ({"options": {"backoff": "os.system", "max_attempts": "9"}}, None),
    ],
    ids=["not-a-task", "bad-path", "no-path", "other-backend", "no-backend", "bad-args", "opts"],
)
def test_a_malformed_row_fails_without_retries(workspace, message):
    job = task_row(**workspace)
    outcome = run_one()
    job.refresh_from_db()
    if message is None:  # invalid stored options are ignored, never imported
        assert outcome.kind == "completed"
        assert job_types.job_type_for(job).backoff == 2.0
        return
    assert outcome.kind == "failed"
    assert message in job.errors[0]["message"]

def test_missing_task_path_fails_with_import_error():
    job = task_row(task="tests.django_tasks.some_test")
    run_one()
    job.refresh_from_db()
    assert job.state == Job.STATES.FAILED
    assert "ImportError" in job.errors[0]["traceback"]

def test_doesnt_process_different_queue():
    result = t.noop_task.using(queue_name="queue-1").enqueue()
    assert store.claim(OWNER, ["default"], 10, 30) == []
    run_one(queues=["queue-1"])
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL

def test_run_after():
    result = t.noop_task.using(run_after=timezone.now() + datetime.timedelta(hours=10)).enqueue()
    assert store.claim(OWNER, ["default"], 10, 30) == []
    run_one(now=timezone.now() + datetime.timedelta(hours=11))
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL

def test_run_after_priority():
    now = timezone.now()
    old = t.noop_task.using(priority=20, run_after=now - datetime.timedelta(hours=2)).enqueue()
    very_old = t.noop_task.using(
        priority=20, run_after=now - datetime.timedelta(hours=10)
    ).enqueue()
    t.noop_task.using(run_after=now + datetime.timedelta(hours=10)).enqueue()
    t.noop_task.using(priority=10, run_after=now + datetime.timedelta(hours=10)).enqueue()
    t.noop_task.using(run_after=now + datetime.timedelta(hours=2)).enqueue()
    high = t.noop_task.using(priority=10).enqueue()
    low = t.noop_task.using(priority=2).enqueue()
    lower = t.noop_task.using(priority=-2).enqueue()

    claimed = store.claim(OWNER, ["default"], 100, 30)
    # Highest priority first, then oldest *enqueued* (django-tasks-db: earliest run_after).
    assert [str(j.pk) for j in claimed] == [r.id for r in (old, very_old, high, low, lower)]

@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite locks the whole database")
def test_worker_with_locked_rows():
    locked = t.noop_task.enqueue()
    with transaction.atomic():  # (select_for_update compiles only in a transaction)
        query = Job.objects.filter(pk=locked.id).select_for_update().query
        sql, params = query.sql_with_params()
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(sql, params)
            assert len(cursor.fetchall()) == 1
        free = t.noop_task.enqueue()
        claimed = store.claim(OWNER, ["default"], 10, 30)
        assert [str(j.pk) for j in claimed] == [free.id]
    finally:
        other.close()
    assert _status(locked) == TaskResultStatus.READY


# --- rescue: a task whose worker was lost --------------------------------------------------------


def test_a_lost_task_is_failed_by_rescue_and_task_finished_is_sent(received):
    result = t.sleep_for.enqueue(1)
    [job] = store.claim("lost-worker", ["default"], 1, 30)
    job.started_at = timezone.now()
    assert store.mark_started("lost-worker", [job]) == 1  # its task had started
    Job.objects.filter(pk=job.pk).update(
        lease_expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    assert executor.rescue_expired("rescuer") == 1
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "django_dbq.exceptions.WorkerLostError"
    assert result.worker_ids == ["lost-worker"]
    [finished] = [r for name, _, r in received if name == "finished"]
    assert finished.status == TaskResultStatus.FAILED and finished.id == result.id


# --- per-job options (retries, backoff, lease) ---------------------------------------------------


def test_job_options_merge_the_backend_and_the_task():
    retrying = t.flaky_backend_options.enqueue(1)
    assert job_options(Job.objects.get(pk=retrying.id)) == {"max_attempts": 3, "backoff": 0}

    own = t.fail_then_wait.enqueue()
    assert job_options(Job.objects.get(pk=own.id)) == {"max_attempts": 2, "backoff": 600}

    overridden = t.flaky_backend_options.using(max_attempts=5).enqueue(1)
    assert job_options(Job.objects.get(pk=overridden.id)) == {"max_attempts": 5, "backoff": 0}

    plain = t.noop_task.enqueue()
    assert job_options(Job.objects.get(pk=plain.id)) == {}

def test_job_type_for_applies_the_options(settings):
    result = t.fail_then_wait.using(lease_seconds=settings.DBQ_LEASE_SECONDS + 60).enqueue()
    job_type = job_types.job_type_for(Job.objects.get(pk=result.id))
    assert job_type.name == JOB_NAME
    assert (job_type.max_attempts, job_type.backoff) == (2, 600)
    assert job_type.lease() == settings.DBQ_LEASE_SECONDS + 60
    assert job_types.job_type_for(Job.objects.create(name="noop")) == job_types.get_job_type("noop")

def test_a_stored_lease_shorter_than_the_workers_is_ignored(settings):
    short = task_row(options={"lease_seconds": 1, "max_attempts": 2})
    assert job_options(short) == {"max_attempts": 2}
    longer = task_row(options={"lease_seconds": settings.DBQ_LEASE_SECONDS + 1})
    assert job_options(longer) == {"lease_seconds": settings.DBQ_LEASE_SECONDS + 1}

def test_stored_options_cannot_name_a_function():
    job = task_row(options={"backoff": "os.system", "backoff_max": 5})
    assert job_options(job) == {"backoff_max": 5}

@needs_job_options
@pytest.mark.parametrize("task", [t.flaky, t.flaky_backend_options], ids=["task", "backend"])
def test_a_failing_attempt_is_retried_per_the_options(task, received):
    result = task.enqueue(3)
    kinds = [run_one().kind for _ in range(3)]
    assert kinds == ["retried", "retried", "completed"]
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 3
    assert result.attempts == 3
    assert [e.exception_class for e in result.errors] == [ValueError, ValueError]
    finished = [r for name, _, r in received if name == "finished"]
    assert [r.status for r in finished] == [TaskResultStatus.SUCCESSFUL]

@needs_job_options
def test_the_last_attempt_fails_the_task(received):
    result = t.flaky.enqueue(99)
    kinds = [run_one().kind for _ in range(3)]
    assert kinds == ["retried", "retried", "failed"]
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert len(result.errors) == 3 and result.attempts == 3
    finished = [r for name, _, r in received if name == "finished"]
    assert [r.status for r in finished] == [TaskResultStatus.FAILED]
    assert len(finished[0].errors) == 3

@needs_job_options
def test_a_retry_waits_for_its_backoff():
    result = t.fail_then_wait.enqueue()
    before = timezone.now()
    assert run_one().kind == "retried"
    result.refresh()
    assert result.status == TaskResultStatus.READY
    job = Job.objects.get(pk=result.id)
    assert job.run_after >= before + datetime.timedelta(seconds=299)
    assert store.claim(OWNER, ["default"], 1, 30) == []


# --- real worker processes -----------------------------------------------------------------------


FAST_RESCUE = {"DBQ_LEASE_SECONDS": "2", "DBQ_RESCUE_INTERVAL": "0.3"}

def _status(result) -> str:
    result.refresh()
    return result.status

@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_worker_runs_django_tasks_and_jobs_end_to_end(start_worker):
    results = {
        "add": t.add.enqueue(2, 3),
        "async": t.async_add.enqueue(20, 22),
        "context": t.get_task_id.enqueue(),
        "failing": t.failing_task_value_error.enqueue(),
        "exit": t.exit_task.enqueue(),
        "other_queue": t.noop_task_queue_1.enqueue(),
        "high": t.calculate_meaning_of_life.using(priority=50).enqueue(),
    }
    job = Job.objects.create(name="noop")

    worker = start_worker("--burst", "default", "queue-1", "--concurrency", "2")
    assert worker.wait() == 0, worker.output()

    for result in results.values():
        result.refresh()
    assert results["add"].return_value == 5
    assert results["async"].return_value == 42
    assert results["context"].return_value == results["context"].id
    assert results["high"].return_value == 42
    assert results["other_queue"].status == TaskResultStatus.SUCCESSFUL
    assert results["failing"].status == TaskResultStatus.FAILED
    assert results["failing"].errors[0].exception_class is ValueError
    assert results["exit"].errors[0].exception_class is SystemExit
    assert all(str(worker.pid) in r.worker_ids[0] for r in results.values())
    job.refresh_from_db()
    assert job.state == Job.STATES.COMPLETED

@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_run_subprocess_with_several_workers_runs_each_task_once(start_worker):
    results = [t.record.enqueue(f"task-{n}") for n in range(30)]
    workers = [start_worker("--burst", "--concurrency", "2") for _ in range(3)]
    for worker in workers:
        assert worker.wait() == 0, worker.output()
    assert {_status(r) for r in results} == {TaskResultStatus.SUCCESSFUL}
    assert Execution.objects.count() == 30
    assert Execution.objects.values("thread").distinct().count() == 30

@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_signals_let_a_running_task_finish(start_worker, signum, tmp_path):
    marker = tmp_path / "started"
    result = t.sleep_for.enqueue(1.5, started_marker=str(marker))
    worker = start_worker("--poll-interval", "0.1")
    wait_for(marker.exists, message="the task to start")
    assert _status(result) == TaskResultStatus.RUNNING
    worker.signal(signum)
    assert worker.wait(timeout=30) == 0, worker.output()
    assert _status(result) == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 1.5

@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_repeat_ctrl_c_hands_the_running_task_back(start_worker, tmp_path):
    marker = tmp_path / "started"
    result = t.sleep_for.enqueue(120, started_marker=str(marker))
    worker = start_worker("--poll-interval", "0.1")
    wait_for(marker.exists, message="the task to start")
    worker.signal(signal.SIGINT)
    wait_for(lambda: "finishing running jobs" in worker.output(), message="first signal seen")
    assert _status(result) == TaskResultStatus.RUNNING
    worker.signal(signal.SIGINT)
    assert worker.wait(timeout=30) == 0, worker.output()
    # django-tasks-db fails it with SystemExit; here it goes back, its attempt not spent.
    assert _status(result) == TaskResultStatus.READY
    assert result.attempts == 0 and result.errors == []

@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_kill_a_task_of_a_killed_worker_is_rescued(start_worker, tmp_path):
    marker = tmp_path / "started"
    result = t.sleep_for.enqueue(120, started_marker=str(marker))
    doomed = start_worker("--poll-interval", "0.1", **FAST_RESCUE)
    wait_for(marker.exists, message="the task to start")
    wait_for(  # the worker has recorded that the task started: it will be charged
        lambda: Job.objects.get(pk=result.id).started_at is not None,
        message="the task's start to be marked",
    )
    doomed.signal(signal.SIGKILL)
    doomed.wait()
    rescuer = start_worker("--poll-interval", "0.2", **FAST_RESCUE)
    wait_for(lambda: _status(result) == TaskResultStatus.FAILED, timeout=60, message="rescue")
    assert result.errors[0].exception_class_path == "django_dbq.exceptions.WorkerLostError"
    assert str(doomed.pid) in result.worker_ids[0]
    rescuer.signal(signal.SIGTERM)
    assert rescuer.wait() == 0

@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    not backend_for("default").supports_notify, reason="LISTEN/NOTIFY is PostgreSQL's; others poll"
)
def test_an_idle_worker_is_woken_at_commit(start_worker):
    worker = start_worker("--poll-interval", "60")
    wait_for(lambda: "wake=LISTEN/NOTIFY" in worker.output(), message="the worker to start")
    result = t.add.enqueue(1, 2)
    wait_for(lambda: _status(result) == TaskResultStatus.SUCCESSFUL, timeout=10, message="pickup")
