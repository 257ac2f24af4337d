"""tasks.py: django_dbq as a backend for Django's tasks framework (django.tasks).

Ports the behaviours django-tasks-db 0.13's own backend tests check (the test
names say which), and checks what django_dbq adds: retries, the allow-list of
task modules, leases and crash recovery, the shared worker. docs/tasks.rst
lists every ported behaviour and where django_dbq differs.
"""

from __future__ import annotations

import datetime
import inspect
import signal
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import django
import pytest

if django.VERSION < (6, 0):
    pytest.skip(
        "django.tasks (and so django_dbq.tasks) needs Django 6.0 or later",
        allow_module_level=True,
    )

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.db import connection, connections, transaction
from django.tasks import (
    TaskResultStatus,
    default_task_backend,
    task_backends,
)
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.test import override_settings
from django.utils import timezone

from django_dbq import job_types, store
from django_dbq.db import backend_for
from django_dbq.integrations.tasks_backend import (
    JOB_NAME,
    DatabaseBackend,
    DatabaseTask,
    TaskRefusedError,
    job_options,
)
from django_dbq.models import Job
from django_dbq.runtime import executor
from tests import django_tasks as t
from tests.conftest import wait_for
from tests.models import Execution

pytestmark = pytest.mark.django_db

OWNER = "test-worker"
# Per-task and per-backend retries need the executor to ask job_types.job_type_for(job)
# for a job's options (see docs/tasks.rst, "Retries"); until it does, they are skipped.
EXECUTOR_APPLIES_JOB_OPTIONS = "job_type_for" in inspect.getsource(executor)
needs_job_options = pytest.mark.skipif(
    not EXECUTOR_APPLIES_JOB_OPTIONS,
    reason="the executor does not apply per-job options yet (job_types.job_type_for)",
)
# A module outside INSTALLED_APPS that nothing else imports: a canary for "never imported".
CANARY_MODULE = "json.tool"


@pytest.fixture
def received() -> Iterator[list[tuple[str, type, Any]]]:
    """Every django.tasks signal sent while the test runs: (name, sender, task_result)."""
    captured: list[tuple[str, type, Any]] = []
    receivers = {}
    for name, sig in (
        ("enqueued", task_enqueued),
        ("started", task_started),
        ("finished", task_finished),
    ):

        def receiver(sender, task_result, _name=name, **kwargs):
            captured.append((_name, sender, task_result))

        receivers[name] = receiver
        sig.connect(receiver, dispatch_uid=f"test-tasks-{name}")
    yield captured
    for name, sig in (
        ("enqueued", task_enqueued),
        ("started", task_started),
        ("finished", task_finished),
    ):
        sig.disconnect(dispatch_uid=f"test-tasks-{name}")


def run_one(queues=("default", "queue-1"), **claim_kwargs) -> store.Outcome:
    """Claim one job and run it in this process, as a worker thread would."""
    [job] = store.claim(OWNER, list(queues), 1, 30, **claim_kwargs)
    outcome = executor.run(job, OWNER, executor.snapshot(job))
    if outcome.kind == "completed":
        store.complete(OWNER, [outcome])
    return outcome


def task_row(**workspace: Any) -> Job:
    """A "django_dbq.tasks" row written directly, as a tampered or stale row would be."""
    full = {"task": "tests.django_tasks.noop_task", "args": [], "kwargs": {}, "backend": "default"}
    full.update(workspace)
    return Job.objects.create(name=JOB_NAME, workspace=full)


# --- the backend: configuration ------------------------------------------------------------


def test_using_correct_backend():
    assert default_task_backend == task_backends["default"]
    assert isinstance(task_backends["default"], DatabaseBackend)
    assert default_task_backend.alias == "default"
    assert default_task_backend.options == {}


def test_every_capability_is_supported():
    backend = task_backends["default"]
    assert backend.supports_defer
    assert backend.supports_priority
    assert backend.supports_get_result
    assert backend.supports_async_task
    assert backend.task_class is DatabaseTask
    assert isinstance(t.noop_task, DatabaseTask)


def test_the_constructor_touches_no_models(django_assert_num_queries):
    with django_assert_num_queries(0):
        backend = DatabaseBackend("x", {"QUEUES": ["a"], "OPTIONS": {"max_attempts": 2}})
    assert backend.queues == {"a"}
    assert backend.options == {"max_attempts": 2}


def test_check():
    assert default_task_backend.check() == []
    assert task_backends["retrying"].check() == []


def test_database_backend_app_missing(monkeypatch):
    from django_dbq import tasks

    monkeypatch.setattr(tasks.apps, "is_installed", lambda name: name != "django_dbq")
    [error] = default_task_backend.check()
    assert error.id == "django_dbq.tasks.E001"
    assert "django_dbq" in error.hint


@pytest.mark.parametrize(
    ("options", "check_id"),
    [
        ({"max_attempts": 0}, "django_dbq.tasks.E002"),
        ({"backoff": -1}, "django_dbq.tasks.E002"),
        ({"backoff_max": "x"}, "django_dbq.tasks.E002"),
        ({"lease_seconds": 1}, "django_dbq.tasks.E002"),
        ({"timeout": 0}, "django_dbq.tasks.E002"),
        ({"task_modules": "tests"}, "django_dbq.tasks.E002"),
        ({"colour": "blue"}, "django_dbq.tasks.W001"),
    ],
)
def test_check_reports_bad_options(options, check_id):
    backend = DatabaseBackend("x", {"OPTIONS": options})
    assert [m.id for m in backend.check()] == [check_id]


def test_check_reports_queue_names_a_job_cannot_hold():
    backend = DatabaseBackend("x", {"QUEUES": ["q" * 65]})
    assert [m.id for m in backend.check()] == ["django_dbq.tasks.E003"]


def test_a_backoff_path_is_allowed_in_options_but_not_per_task():
    assert DatabaseBackend("x", {"OPTIONS": {"backoff": "tests.tasks.noop"}}).check() == []
    with pytest.raises(InvalidTask, match="backoff"):
        t.noop_task.using(backoff="tests.tasks.noop")


def test_the_tasks_job_type_is_built_in_and_reserved(settings):
    job_type = job_types.get_job_type(JOB_NAME)
    assert job_type.tasks == ("django_dbq.integrations.tasks_backend.run_task",)
    assert JOB_NAME not in job_types.job_types()
    _, problems = job_types.validate({JOB_NAME: ["tests.tasks.noop"]})
    assert [p.id for p in problems] == ["django_dbq.E003"]
    del settings.JOBS
    assert job_types.get_job_type(JOB_NAME) is job_type


# --- validate_task ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: t.noop_task.using(priority=101), "priority"),
        (lambda: t.noop_task.using(backend="retrying", queue_name="q" * 65), "queue_name"),
        (lambda: t.noop_task.using(max_attempts=0), "max_attempts"),
        (lambda: t.noop_task.using(lease_seconds=1), "DBQ_LEASE_SECONDS"),
        (lambda: t.noop_task.using(timeout=5), "async task functions only"),
        (lambda: t.noop_task.using(run_after=datetime.datetime(2030, 1, 1)), "aware"),
    ],
    ids=["priority", "long-queue", "max-attempts", "short-lease", "sync-timeout", "naive"],
)
def test_validate_task_rejects(make, message):
    with pytest.raises(InvalidTask, match=message):
        make()


def test_using_rejects_unknown_options():
    with pytest.raises(TypeError, match="colour"):
        t.noop_task.using(colour="blue")


def test_using_sets_options_and_keeps_the_rest():
    task = t.noop_task.using(priority=5, max_attempts=4, backoff=1.5)
    assert (task.priority, task.max_attempts, task.backoff) == (5, 4, 1.5)
    assert task.dbq_options == {"max_attempts": 4, "backoff": 1.5}
    assert task.using(queue_name="queue-1").max_attempts == 4


def test_validate_on_enqueue():
    with override_settings(
        TASKS={
            "default": {"BACKEND": "django_dbq.integrations.tasks_backend.DatabaseBackend", "QUEUES": ["unknown_queue"]}
        }
    ):
        task = t.noop_task.using(queue_name="unknown_queue")
    with pytest.raises(InvalidTask, match="Queue 'unknown_queue' is not valid for backend"):
        task.enqueue()
    assert not Job.objects.exists()


def test_validate_on_aenqueue():
    with override_settings(
        TASKS={
            "default": {"BACKEND": "django_dbq.integrations.tasks_backend.DatabaseBackend", "QUEUES": ["unknown_queue"]}
        }
    ):
        task = t.noop_task.using(queue_name="unknown_queue")
    with pytest.raises(InvalidTask, match="Queue 'unknown_queue' is not valid for backend"):
        async_to_sync(task.aenqueue)()


def test_a_task_outside_the_task_modules_is_refused_at_enqueue():
    with override_settings(
        TASKS={
            "default": {
                "BACKEND": "django_dbq.integrations.tasks_backend.DatabaseBackend",
                "QUEUES": [],
                "OPTIONS": {"task_modules": ["shop"]},
            }
        }
    ):
        with pytest.raises(InvalidTask, match=r"outside the modules .*\(shop\)"):
            t.noop_task.enqueue()
        assert task_backends["default"].allows("shop.tasks.send")
        assert task_backends["default"].allows("shop.send")
        assert not task_backends["default"].allows("shopping.tasks.send")
    assert not Job.objects.exists()


def test_allows_follows_installed_apps_when_they_change():
    backend = task_backends["default"]
    assert backend.allows("tests.tasks.noop")  # remembered ...
    apps_now = [app for app in settings.INSTALLED_APPS if app != "tests"]
    with override_settings(INSTALLED_APPS=apps_now):
        assert not backend.allows("tests.tasks.noop")  # ... and asked again
    assert backend.allows("tests.tasks.noop")


def test_allows_remembers_a_bounded_number_of_paths(monkeypatch):
    from django_dbq.integrations import tasks_backend as dbq_tasks

    monkeypatch.setattr(dbq_tasks, "_ALLOWS_REMEMBERED", 3)
    backend = task_backends["default"]
    backend.__dict__.pop("_allowed", None)  # what earlier tests left
    answers = [backend.allows(f"tests.made_up_{n}.task") for n in range(10)]
    assert answers == [True] * 10
    assert not backend.allows("elsewhere.task")
    assert len(backend._allowed[1]) <= 3


# --- enqueue -------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", [t.noop_task, t.noop_task_async], ids=["sync", "async"])
def test_enqueue_task(task, received, django_assert_num_queries):
    with django_assert_num_queries(1):
        result = task.enqueue(1, two=3)

    assert uuid.UUID(result.id).version == 4
    assert result.status == TaskResultStatus.READY
    assert not result.is_finished
    assert result.started_at is None
    assert result.last_attempted_at is None
    assert result.finished_at is None
    with pytest.raises(ValueError, match="Task has not finished yet"):
        result.return_value  # noqa: B018
    assert result.task == task
    assert result.args == [1]
    assert result.kwargs == {"two": 3}
    assert result.attempts == 0
    assert result.errors == []
    assert result.backend == "default"
    assert result.enqueued_at is not None
    assert received == [("enqueued", DatabaseBackend, result)]


@pytest.mark.parametrize("task", [t.noop_task, t.noop_task_async], ids=["sync", "async"])
def test_enqueue_task_async(task, received):
    result = async_to_sync(task.aenqueue)()

    assert uuid.UUID(result.id).version == 4
    assert result.status == TaskResultStatus.READY
    assert result.started_at is None and result.finished_at is None
    assert result.task == task
    assert result.args == [] and result.kwargs == {}
    assert result.attempts == 0
    assert received == [("enqueued", DatabaseBackend, result)]
    assert Job.objects.get().pk == uuid.UUID(result.id)


def test_enqueue_writes_one_job_row():
    run_after = timezone.now() + datetime.timedelta(hours=1)
    task = t.add.using(priority=7, queue_name="queue-1", run_after=run_after, max_attempts=2)
    result = task.enqueue(2, b=(3, 4))

    job = Job.objects.get()
    assert str(job.pk) == result.id
    assert job.name == "django_dbq.tasks"
    assert job.next_task == "django_dbq.integrations.tasks_backend.run_task"
    assert job.state == Job.STATES.NEW
    assert (job.queue_name, job.priority, job.run_after) == ("queue-1", 7, run_after)
    assert job.created == result.enqueued_at
    assert job.workspace == {
        "task": "tests.django_tasks.add",
        "args": [2],
        "kwargs": {"b": [3, 4]},
        "backend": "default",
        "options": {"max_attempts": 2},
    }
    assert result.kwargs == {"b": [3, 4]}


def test_enqueue_rejects_arguments_json_cannot_hold():
    with pytest.raises(TypeError, match="Unsupported type"):
        t.echo.enqueue(object())
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        t.echo.enqueue(float("nan"))
    assert not Job.objects.exists()


def test_enqueue_logs(caplog):
    with caplog.at_level("DEBUG", logger="django.tasks"):
        result = t.noop_task.enqueue()
    [line] = [r.getMessage() for r in caplog.records if r.name == "django.tasks"]
    assert "enqueued" in line and result.id in line


@pytest.mark.parametrize("use_tz", [True, False])
def test_run_after_tz(use_tz):
    with override_settings(USE_TZ=use_tz):
        result = t.noop_task.enqueue()
        assert default_task_backend.get_result(result.id).task.run_after is None


# --- get_result ----------------------------------------------------------------------------------


def test_get_result(django_assert_num_queries):
    with django_assert_num_queries(1):
        result = default_task_backend.enqueue(t.noop_task, [], {})
    with django_assert_num_queries(1):
        new_result = default_task_backend.get_result(result.id)
    assert result == new_result
    assert t.noop_task.get_result(result.id) == result


def test_get_result_async():
    result = async_to_sync(default_task_backend.aenqueue)(t.noop_task, [], {})
    assert async_to_sync(default_task_backend.aget_result)(result.id) == result
    assert async_to_sync(t.noop_task.aget_result)(result.id) == result


def test_get_result_keeps_the_task_as_enqueued():
    run_after = timezone.now() + datetime.timedelta(minutes=5)
    task = t.add.using(priority=-3, queue_name="queue-1", run_after=run_after, max_attempts=4)
    result = task.enqueue(1, 2)
    again = default_task_backend.get_result(result.id)
    assert again == result
    assert again.task.max_attempts == 4 and again.task.priority == -3


def _finish(result_id: str, **values: Any) -> None:
    Job.objects.filter(pk=result_id).update(**values)


def test_refresh_result(django_assert_num_queries):
    result = default_task_backend.enqueue(t.calculate_meaning_of_life, [], {})
    now = timezone.now()
    _finish(
        result.id,
        state=Job.STATES.COMPLETED,
        started_at=now,
        finished_at=now,
        attempts=1,
        lease_owner="w1",
        workspace={**Job.objects.get().workspace, "return_value": 42},
    )
    assert result.status == TaskResultStatus.READY
    assert result.attempts == 0

    with django_assert_num_queries(1):
        result.refresh()

    assert result.started_at == now and result.last_attempted_at == now
    assert result.finished_at == now
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.is_finished
    assert result.return_value == 42
    assert result.attempts == 1
    assert result.worker_ids == ["w1"]


def test_refresh_result_async():
    result = async_to_sync(default_task_backend.aenqueue)(t.calculate_meaning_of_life, [], {})
    _finish(result.id, state=Job.STATES.PROCESSING, started_at=timezone.now(), attempts=1)
    async_to_sync(result.arefresh)()
    assert result.status == TaskResultStatus.RUNNING
    assert result.started_at is not None and result.finished_at is None


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("NEW", "READY"),
        ("READY", "READY"),
        ("PROCESSING", "RUNNING"),
        ("COMPLETED", "SUCCESSFUL"),
        ("FAILED", "FAILED"),
    ],
)
def test_status_follows_the_job_state(state, status):
    result = t.noop_task.enqueue()
    _finish(result.id, state=state)
    assert default_task_backend.get_result(result.id).status == status


def test_errors_and_worker_ids_come_from_every_attempt():
    result = t.noop_task.enqueue()
    record = {"type": "builtins.ValueError", "traceback": "Traceback ...", "worker": "w1"}
    lost = {"type": "django_dbq.exceptions.WorkerLostError", "traceback": "", "worker": "w2"}
    _finish(
        result.id,
        state=Job.STATES.PROCESSING,
        attempts=3,
        errors=[record, lost],
        lease_owner="w3",
        started_at=timezone.now(),
    )
    result.refresh()
    assert [e.exception_class_path for e in result.errors] == [
        "builtins.ValueError",
        "django_dbq.exceptions.WorkerLostError",
    ]
    assert result.errors[0].exception_class is ValueError
    assert result.worker_ids == ["w1", "w2", "w3"]
    assert result.attempts == 3


def test_get_missing_result():
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(str(uuid.uuid4()))


def test_async_get_missing_result():
    with pytest.raises(TaskResultDoesNotExist):
        async_to_sync(default_task_backend.aget_result)(str(uuid.uuid4()))


@pytest.mark.parametrize("bad_id", ["123", "", None, 5])
def test_invalid_uuid(bad_id):
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(bad_id)


def test_async_invalid_uuid():
    with pytest.raises(TaskResultDoesNotExist):
        async_to_sync(default_task_backend.aget_result)("123")


def test_a_jobs_job_is_not_a_task_result():
    job = Job.objects.create(name="noop")
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(str(job.pk))


def test_invalid_task_path():
    """A row naming a path outside the task modules: refused, never imported."""
    sys.modules.pop(CANARY_MODULE, None)
    job = task_row(task=f"{CANARY_MODULE}.main")
    with pytest.raises(TaskRefusedError, match="outside the modules") as excinfo:
        default_task_backend.get_result(str(job.pk))
    assert isinstance(excinfo.value, SuspiciousOperation)
    assert CANARY_MODULE not in sys.modules


def test_a_row_naming_a_function_that_is_not_a_task_is_refused():
    job = task_row(task="tests.tasks.noop")
    with pytest.raises(TaskRefusedError, match=r"not a django\.tasks Task"):
        default_task_backend.get_result(str(job.pk))


def test_missing_task_path():
    job = task_row(task="tests.django_tasks.no_such_task")
    with pytest.raises(ImportError):
        default_task_backend.get_result(str(job.pk))


def test_get_result_mismatch():
    from django.tasks.exceptions import TaskResultMismatch

    result = t.noop_task.enqueue()
    with pytest.raises(TaskResultMismatch):
        t.add.get_result(result.id)


# --- running, in this process (claim + executor, as a worker thread does) -----------------------


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
    assert Job.objects.get().errors[0]["type"] == "django_dbq.tasks.TaskExitError"


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


# --- rescue: a task whose worker was lost ----------------------------------------------------


def test_a_lost_task_is_failed_by_rescue_and_task_finished_is_sent(received):
    result = t.sleep_for.enqueue(1)
    [job] = store.claim("lost-worker", ["default"], 1, 30)
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


# --- per-job options (retries, backoff, lease) --------------------------------------------------


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


# --- real worker processes ----------------------------------------------------------------------

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
    doomed.signal(signal.SIGKILL)
    doomed.wait()
    rescuer = start_worker("--poll-interval", "0.2", **FAST_RESCUE)
    wait_for(lambda: _status(result) == TaskResultStatus.FAILED, timeout=60, message="rescue")
    assert result.errors[0].exception_class_path == "django_dbq.exceptions.WorkerLostError"
    assert str(doomed.pid) in result.worker_ids[0]
    rescuer.signal(signal.SIGTERM)
    assert rescuer.wait() == 0


@pytest.mark.django_db(transaction=True)
def test_doesnt_wait_until_transaction_commit():
    with transaction.atomic():
        result = t.noop_task.enqueue()
        assert result.enqueued_at is not None
        assert Job.objects.count() == 1
        if connection.vendor != "sqlite":  # SQLite holds the write lock until commit
            assert _count_in_new_connection() == 0
    if connection.vendor != "sqlite":
        assert _count_in_new_connection() == 1


@pytest.mark.django_db(transaction=True)
def test_enqueue_is_rolled_back_with_the_callers_transaction():
    with pytest.raises(RuntimeError), transaction.atomic():
        t.noop_task.enqueue()
        raise RuntimeError("the caller's work failed")
    assert not Job.objects.exists()


def _count_in_new_connection() -> int:
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute(str(Job.objects.values("id").query))
            return len(cursor.fetchall())
    finally:
        other.close()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    not backend_for(connection).supports_notify, reason="LISTEN/NOTIFY is PostgreSQL's; others poll"
)
def test_an_idle_worker_is_woken_at_commit(start_worker):
    worker = start_worker("--poll-interval", "60")
    wait_for(lambda: "wake=LISTEN/NOTIFY" in worker.output(), message="the worker to start")
    result = t.add.enqueue(1, 2)
    wait_for(lambda: _status(result) == TaskResultStatus.SUCCESSFUL, timeout=10, message="pickup")
