"""django_dbq.integrations.tasks_backend: django_dbq as a backend for Django's tasks
framework (django.tasks): its configuration, validate_task, enqueue and get_result.
Running tasks, rescue, per-task options and real workers: test_tasks_backend_running.py.

Ports the behaviours django-tasks-db 0.13's own backend tests check (the test
names say which), and checks what django_dbq adds: retries, the allow-list of
task modules, leases and crash recovery, the shared worker. docs/tasks.rst
lists every ported behaviour and where django_dbq differs.
"""

from __future__ import annotations

import datetime
import sys
import uuid
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
from django.test import override_settings
from django.utils import timezone

from django_dbq import job_types
from django_dbq.integrations.tasks_backend import (
    JOB_NAME,
    DatabaseBackend,
    DatabaseTask,
    TaskRefusedError,
)
from django_dbq.models import Job
from tests import django_tasks as t
from tests.integrations.tasks_support import CANARY_MODULE, task_row

pytestmark = pytest.mark.django_db


# --- the backend: configuration ------------------------------------------------------------------


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
    from django_dbq.integrations import tasks_backend

    monkeypatch.setattr(tasks_backend.apps, "is_installed", lambda name: name != "django_dbq")
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


# --- validate_task -------------------------------------------------------------------------------


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


def _task_on_a_queue_the_backend_refuses():
    queues = {
        "BACKEND": "django_dbq.integrations.tasks_backend.DatabaseBackend",
        "QUEUES": ["unknown_queue"],
    }
    with override_settings(TASKS={"default": queues}):
        return t.noop_task.using(queue_name="unknown_queue")


def test_validate_on_enqueue():
    task = _task_on_a_queue_the_backend_refuses()
    with pytest.raises(InvalidTask, match="Queue 'unknown_queue' is not valid for backend"):
        task.enqueue()
    assert not Job.objects.exists()


def test_validate_on_aenqueue():
    task = _task_on_a_queue_the_backend_refuses()
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
