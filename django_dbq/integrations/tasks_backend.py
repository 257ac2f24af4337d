"""A backend for Django's tasks framework (``django.tasks``, Django 6.0+).

::

    TASKS = {
        "default": {
            "BACKEND": "django_dbq.integrations.tasks_backend.DatabaseBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"max_attempts": 3, "backoff": 5},
        }
    }

An enqueued task becomes one :class:`~django_dbq.models.Job` row named
``"django_dbq.tasks"`` (a job type django_dbq defines itself, see
:data:`django_dbq.job_types.BUILTIN_JOB_TYPES`) whose one step is :func:`run_task`.
Its workspace holds the task's module path, its arguments, the backend alias,
its own options and, once it succeeded, its return value::

    {"task": "shop.tasks.send_receipt", "args": [42], "kwargs": {}, "backend": "default",
     "options": {"max_attempts": 5}, "return_value": ...}

``queue_name``, ``priority`` and ``run_after`` are the job's own columns, so the
same ``manage.py worker`` claims, leases, retries and rescues these jobs like
any other.

Which paths a worker imports: a row names its task by a string, so before
importing it the worker checks that the path is inside the modules the backend
runs tasks from (``OPTIONS["task_modules"]``; by default the packages of
``INSTALLED_APPS``), and after importing that it is a ``django.tasks`` Task
declared under exactly that path. A row that fails either check is failed
without retries; nothing outside those modules is ever imported.

This module needs Django 6.0 or later; nothing else in django_dbq imports it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import traceback
import uuid
from collections.abc import Mapping, Sequence
from inspect import iscoroutinefunction
from typing import Any

import django
from asgiref.sync import async_to_sync
from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import SuspiciousOperation
from django.core.signals import setting_changed
from django.utils import timezone
from django.utils.module_loading import import_string

from .. import conf, job_types, signals
from .. import options as _options
from ..exceptions import PermanentJobError, WorkerLostError

try:
    from django.tasks import task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import Task, TaskContext, TaskError, TaskResult, TaskResultStatus
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json
except ImportError as exc:  # Django < 6.0
    raise ImportError(
        "django_dbq.integrations.tasks_backend is a backend for Django's tasks framework "
        "(django.tasks), which "
        f"needs Django 6.0 or later; this project runs Django {django.get_version()}. "
        "Upgrade Django to use TASKS with django_dbq, or keep using the JOBS setting and "
        "the Job model, which work on every supported Django version."
    ) from exc

__all__ = [
    "JOB_NAME",
    "DatabaseBackend",
    "DatabaseTask",
    "TaskExitError",
    "TaskRefusedError",
    "job_options",
    "run_task",
]

logger = logging.getLogger("django_dbq.tasks")

JOB_NAME = job_types.TASKS_JOB_NAME
STEP = "django_dbq.integrations.tasks_backend.run_task"
QUEUE_NAME_MAX_LENGTH = 64  # Job.queue_name

# Options a task (``@task(max_attempts=3)`` on Django 6.1, ``.using(...)``) or a backend
# (``OPTIONS``) may set. Per-task values win over the backend's.
TASK_OPTION_KEYS = ("max_attempts", "backoff", "backoff_max", "lease_seconds", "timeout")
BACKEND_OPTION_KEYS = (*TASK_OPTION_KEYS, "task_modules")

_DOTTED_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")

# Bumped when INSTALLED_APPS changes (tests): the default task_modules follow it, so
# every backend's remembered allows() answers are dropped.
_apps_generation = 0
_ALLOWS_REMEMBERED = 1024


def _installed_apps_changed(*, setting: str, **kwargs: Any) -> None:
    global _apps_generation
    if setting == "INSTALLED_APPS":
        _apps_generation += 1


setting_changed.connect(_installed_apps_changed, dispatch_uid="django_dbq.tasks.apps")

_STATUS = {
    "NEW": TaskResultStatus.READY,
    "READY": TaskResultStatus.READY,
    "PROCESSING": TaskResultStatus.RUNNING,
    "COMPLETED": TaskResultStatus.SUCCESSFUL,
    "FAILED": TaskResultStatus.FAILED,
}


class TaskRefusedError(SuspiciousOperation):
    """A job row names a task this backend will not import or run."""


class TaskExitError(Exception):
    """A task raised ``SystemExit``, ``KeyboardInterrupt`` or another ``BaseException``.

    The worker records it as the task's failure (and does not exit); the message
    starts with the dotted path of the original exception class, which
    ``get_result`` reports as the error's ``exception_class_path``.
    """

    def __init__(self, original: BaseException) -> None:
        self.original = original
        super().__init__(f"{_class_path(type(original))}: {original}")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseTask(Task):
    """The task class of :class:`DatabaseBackend`: a ``Task`` with django_dbq's options.

    On Django 6.1 set them in the decorator, ``@task(max_attempts=3, backoff=10)``;
    on any version with ``.using(max_attempts=3)``. ``None`` means the backend's
    ``OPTIONS`` value (or django_dbq's default).

    - ``max_attempts``: attempts in all, 1 = no retries;
    - ``backoff``, ``backoff_max``: seconds before a retry, doubled per attempt
      with jitter, capped;
    - ``lease_seconds``: how long the worker may go silent before the job is
      rescued; at least ``DBQ_LEASE_SECONDS``;
    - ``timeout``: async task functions only: cancelled after this many seconds
      (the attempt fails with ``TimeoutError``).
    """

    max_attempts: int | None = None
    backoff: float | None = None
    backoff_max: float | None = None
    lease_seconds: float | None = None
    timeout: float | None = None

    def using(  # type: ignore[override]
        self,
        *,
        priority: int | None = None,
        queue_name: str | None = None,
        run_after: Any = None,
        backend: str | None = None,
        **options: Any,
    ) -> DatabaseTask:
        """``Task.using``, also taking django_dbq's options (``max_attempts=5``, ...)."""
        unknown = sorted(set(options) - set(TASK_OPTION_KEYS))
        if unknown:
            raise TypeError(
                f"using() got unknown option(s) {', '.join(unknown)}; "
                f"known: {', '.join(TASK_OPTION_KEYS)}."
            )
        # Task.using by name: a slots dataclass cannot use zero-argument super().
        task = Task.using(
            self, priority=priority, queue_name=queue_name, run_after=run_after, backend=backend
        )
        changes = {key: value for key, value in options.items() if value is not None}
        return dataclasses.replace(task, **changes) if changes else task

    @property
    def dbq_options(self) -> dict[str, Any]:
        """The django_dbq options this task sets (those that are not ``None``)."""
        return {
            key: getattr(self, key) for key in TASK_OPTION_KEYS if getattr(self, key) is not None
        }


class DatabaseBackend(BaseTaskBackend):
    """Stores tasks as django_dbq jobs, run by ``manage.py worker``."""

    task_class = DatabaseTask

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    # The constructor is BaseTaskBackend's: it reads ``params`` and nothing else
    # (backends are built while task modules are imported, before models may be).

    # --- validation and checks ------------------------------------------------------------

    def validate_task(self, task: Task) -> None:
        """Django's validation, plus what a job row can hold and where tasks may live."""
        super().validate_task(task)
        if not task.queue_name or len(task.queue_name) > QUEUE_NAME_MAX_LENGTH:
            raise InvalidTask(
                f"queue_name must be 1 to {QUEUE_NAME_MAX_LENGTH} characters long, "
                f"not {task.queue_name!r}."
            )
        options = _task_options(task)
        problems = _option_problems(options, per_task=True)
        if problems:
            raise InvalidTask(f"Task {task.module_path}: {problems[0]}")
        if options.get("timeout") is not None and not iscoroutinefunction(task.func):
            raise InvalidTask(
                f"Task {task.module_path}: timeout is for async task functions only (a "
                "thread running a function cannot be interrupted)."
            )
        # While apps load, INSTALLED_APPS (the default task_modules) is not known yet:
        # the check then waits for enqueue.
        if apps.apps_ready and not self.allows(task.module_path):
            raise InvalidTask(self._outside_message(task.module_path))

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        messages = list(super().check(**kwargs))
        where = f"TASKS[{self.alias!r}]"
        if not apps.is_installed("django_dbq"):
            messages.append(
                checks.Error(
                    f"{where} uses {type(self).__name__}, but django_dbq is not installed.",
                    hint="Add 'django_dbq' to INSTALLED_APPS and run migrate.",
                    id="django_dbq.tasks.E001",
                )
            )
        if not isinstance(self.options, Mapping):
            messages.append(
                checks.Error(
                    f"{where}['OPTIONS'] is a {type(self.options).__name__}, not a dict.",
                    hint="Write OPTIONS = {'max_attempts': 3, ...}.",
                    id="django_dbq.tasks.E002",
                )
            )
            return messages
        for key in self.options:
            if key not in BACKEND_OPTION_KEYS:
                messages.append(
                    checks.Warning(
                        f"{where}['OPTIONS'] has an unknown key {key!r}; it is ignored.",
                        hint="Known keys: " + ", ".join(BACKEND_OPTION_KEYS) + ".",
                        id="django_dbq.tasks.W001",
                    )
                )
        for problem in _option_problems(self.options, per_task=False):
            messages.append(
                checks.Error(
                    f"{where}['OPTIONS']: {problem}",
                    hint="See the OPTIONS table in django_dbq's docs/tasks.rst.",
                    id="django_dbq.tasks.E002",
                )
            )
        for queue in sorted(map(str, self.queues)):
            if not queue or len(queue) > QUEUE_NAME_MAX_LENGTH:
                messages.append(
                    checks.Error(
                        f"{where}['QUEUES'] has the queue name {queue!r}.",
                        hint=f"Queue names are 1 to {QUEUE_NAME_MAX_LENGTH} characters long.",
                        id="django_dbq.tasks.E003",
                    )
                )
        return messages

    # --- which tasks may run --------------------------------------------------------------

    def task_modules(self) -> tuple[str, ...]:
        """The packages and modules tasks may live in (``OPTIONS["task_modules"]``).

        By default the packages of every installed app.
        """
        configured = self.options.get("task_modules") if isinstance(self.options, Mapping) else None
        if configured is not None:
            return tuple(configured)
        return tuple(app.name for app in apps.get_app_configs())

    def allows(self, path: str) -> bool:
        """Whether a task at dotted ``path`` may be imported by this backend."""
        if not isinstance(path, str):
            return False
        # Remembered per path: every enqueue asks, and the answer depends only on
        # OPTIONS (fixed for the backend) and INSTALLED_APPS.
        memo = self.__dict__.get("_allowed")
        if memo is None or memo[0] != _apps_generation:
            memo = self.__dict__["_allowed"] = (_apps_generation, {})
        allowed = memo[1].get(path)
        if allowed is None:
            module = path.rpartition(".")[0]
            allowed = bool(_DOTTED_PATH.fullmatch(path)) and any(
                module == m or module.startswith(m + ".") for m in self.task_modules()
            )
            if len(memo[1]) < _ALLOWS_REMEMBERED:  # paths also come from rows: bounded
                memo[1][path] = allowed
        return allowed

    def _outside_message(self, path: str) -> str:
        return (
            f"Task {path!r} is outside the modules the {self.alias!r} task backend runs tasks "
            f"from ({', '.join(self.task_modules()) or 'none'}). Move it into an installed app, "
            f"or list its package in TASKS[{self.alias!r}]['OPTIONS']['task_modules']."
        )

    def load_task(self, path: Any) -> Task:
        """Import the task a job row names, refusing anything that is not an allowed Task.

        Raises :class:`TaskRefusedError` (nothing imported) for a path outside
        :meth:`task_modules`, or after importing, for an object that is not a
        ``Task`` declared under exactly ``path``; ``ImportError`` if it is gone.
        """
        if not isinstance(path, str) or not _DOTTED_PATH.fullmatch(path):
            raise TaskRefusedError(f"{path!r} is not the dotted path of a task.")
        if not self.allows(path):
            raise TaskRefusedError(self._outside_message(path) + " Refusing to import it.")
        task = import_string(path)
        if not isinstance(task, Task) or task.module_path != path:
            raise TaskRefusedError(
                f"{path!r} is not a django.tasks Task (declare it with @task); refusing to run it."
            )
        return task

    # --- enqueueing -----------------------------------------------------------------------

    def _new_job(self, task: Task, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        from ..models import Job

        workspace: dict[str, Any] = {
            "task": task.module_path,
            "args": normalize_json(args),
            "kwargs": normalize_json(kwargs),
            "backend": self.alias,
        }
        options = _task_options(task)
        if options:
            workspace["options"] = options
        return Job(
            name=JOB_NAME,
            next_task=STEP,
            queue_name=task.queue_name,
            priority=task.priority,
            run_after=task.run_after,
            workspace=workspace,
        )

    def enqueue(self, task: Task, args: Sequence[Any], kwargs: Mapping[str, Any]) -> TaskResult:
        """Write one job row (one INSERT, in the caller's transaction) and return its result."""
        self.validate_task(task)
        job = self._new_job(task, args, kwargs)
        job.save(force_insert=True)
        result = self.result_for(job, task=task)
        task_enqueued.send(type(self), task_result=result)
        return result

    async def aenqueue(
        self, task: Task, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> TaskResult:
        self.validate_task(task)
        job = self._new_job(task, args, kwargs)
        await job.asave(force_insert=True)
        result = self.result_for(job, task=task)
        await task_enqueued.asend(type(self), task_result=result)
        return result

    # --- results --------------------------------------------------------------------------

    def get_result(self, result_id: Any) -> TaskResult:
        from ..models import Job

        pk = _parse_id(result_id)
        try:
            job = Job.objects.get(pk=pk, name=JOB_NAME)
        except Job.DoesNotExist:
            raise TaskResultDoesNotExist(result_id) from None
        return self.result_for(job)

    async def aget_result(self, result_id: Any) -> TaskResult:
        from ..models import Job

        pk = _parse_id(result_id)
        try:
            job = await Job.objects.aget(pk=pk, name=JOB_NAME)
        except Job.DoesNotExist:
            raise TaskResultDoesNotExist(result_id) from None
        return self.result_for(job)

    def task_for(self, job: Any) -> Task:
        """The task a ``"django_dbq.tasks"`` job runs, as it was enqueued.

        Loaded from the row (see :meth:`load_task`) and given the row's queue,
        priority, ``run_after`` (after a retry: when the next attempt may start),
        backend and options.
        """
        workspace = job.workspace if isinstance(job.workspace, dict) else {}
        task = self.load_task(workspace.get("task"))
        changes: dict[str, Any] = {
            "priority": job.priority,
            "queue_name": job.queue_name,
            "run_after": job.run_after,
            "backend": _alias_of(workspace) or self.alias,
        }
        if isinstance(task, DatabaseTask):
            stored = _row_options(workspace)
            changes.update({key: stored.get(key) for key in TASK_OPTION_KEYS})
        if all(getattr(task, key) == value for key, value in changes.items()):
            return task  # as declared: no need to build (and validate) a copy
        return dataclasses.replace(task, **changes)

    def result_for(self, job: Any, *, task: Task | None = None) -> TaskResult:
        """The ``TaskResult`` of a ``"django_dbq.tasks"`` job, as the row stands."""
        workspace = job.workspace if isinstance(job.workspace, dict) else {}
        if task is None:
            task = self.task_for(job)
        status = _STATUS.get(job.state, TaskResultStatus.READY)
        finished = status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
        result = TaskResult(
            task=task,
            id=str(job.pk),
            status=status,
            enqueued_at=job.created,
            started_at=job.started_at,
            finished_at=job.finished_at if finished else None,
            last_attempted_at=job.started_at,
            args=_list(workspace.get("args")),
            kwargs=_dict(workspace.get("kwargs")),
            backend=_alias_of(workspace) or self.alias,
            errors=[_task_error(record) for record in _records(job)],
            worker_ids=_worker_ids(job),
        )
        if status == TaskResultStatus.SUCCESSFUL:
            object.__setattr__(result, "_return_value", workspace.get("return_value"))
        return result


# --- the worker side ----------------------------------------------------------------------


def run_task(job: Any) -> None:
    """The step of every ``"django_dbq.tasks"`` job: run the django.tasks task it names.

    Called by the worker's executor like any JOBS task. The return value goes to
    ``workspace["return_value"]``; an exception fails the attempt (retried per the
    job's options). A row that names no allowed task fails at once, without
    retries and without importing anything it names.
    """
    from ..models import validate_workspace

    workspace = job.workspace
    try:
        backend = _backend_of(workspace)
        task = backend.task_for(job)
        if not isinstance(workspace.get("args"), list) or not isinstance(
            workspace.get("kwargs"), dict
        ):
            raise TaskRefusedError("The job's args must be a list and its kwargs a dict.")
    except (TaskRefusedError, InvalidTask) as exc:
        # Never retried: the row cannot run as stored. (A task that cannot be imported
        # is an ordinary failure instead: the code may arrive with the next deploy.)
        raise PermanentJobError(f"Job {job.pk}: {exc}") from exc
    result = backend.result_for(job, task=task)

    _send(task_started, backend, result)
    timeout = _effective_options(backend, workspace).get("timeout")
    try:
        value = normalize_json(_call(task, result, timeout))
        if value is not None:  # None is what a result without one reports anyway
            workspace["return_value"] = value
            validate_workspace(workspace)
    except BaseException as exc:
        workspace.pop("return_value", None)
        job_type = job_types.job_type_for(job)
        if job.attempts >= (job_type.max_attempts if job_type else 1):
            failed = _evolve(
                result,
                status=TaskResultStatus.FAILED,
                finished_at=timezone.now(),
                errors=[*result.errors, _error_of(exc)],
            )
            _send(task_finished, backend, failed)  # inside the except, as Django's do
        if isinstance(exc, Exception):
            raise
        raise TaskExitError(exc) from exc
    done = _evolve(result, status=TaskResultStatus.SUCCESSFUL, finished_at=timezone.now())
    object.__setattr__(done, "_return_value", value)
    _send(task_finished, backend, done)


def job_options(job: Any) -> dict[str, Any]:
    """The ``job_options`` hook of the ``"django_dbq.tasks"`` job type.

    A job's retry and lease options: its backend's ``OPTIONS`` overridden by
    the task's own (stored in the row at enqueue). Each value is checked here, on
    the worker, and an invalid one is ignored: a row cannot name a backoff
    function to import, and a lease shorter than this worker's
    ``DBQ_LEASE_SECONDS`` (it renews leases at a third of that) does not apply.
    """
    workspace = job.workspace if isinstance(job.workspace, dict) else {}
    try:
        backend: DatabaseBackend | None = _backend_of(workspace)
    except TaskRefusedError:
        backend = None
    options = _effective_options(backend, workspace)
    return {k: v for k, v in options.items() if k in job_types.PER_JOB_OPTION_KEYS}


def _effective_options(backend: DatabaseBackend | None, workspace: Any) -> dict[str, Any]:
    """The backend's valid OPTIONS, overridden by the valid options stored in the row."""
    options: dict[str, Any] = {}
    if backend is not None and isinstance(backend.options, Mapping):
        options.update(_valid_options(backend.options, per_task=False))
    stored = workspace.get("options") if isinstance(workspace, dict) else None
    if isinstance(stored, dict):
        options.update(_valid_options(stored, per_task=True))
    return options


def _alias_of(workspace: Any) -> str | None:
    alias = workspace.get("backend") if isinstance(workspace, dict) else None
    return alias if isinstance(alias, str) and alias else None


def _backend_of(workspace: Any) -> DatabaseBackend:
    alias = _alias_of(workspace)
    if alias is None or alias not in task_backends.settings:
        raise TaskRefusedError(f"The job names the task backend {alias!r}, which TASKS lacks.")
    backend = task_backends[alias]
    if not isinstance(backend, DatabaseBackend):
        raise TaskRefusedError(
            f"TASKS[{alias!r}] is a {type(backend).__name__}, not a django_dbq DatabaseBackend."
        )
    return backend


def _call(task: Task, result: TaskResult, timeout: float | None) -> Any:
    args = list(result.args)
    if task.takes_context:
        args.insert(0, TaskContext(task_result=result))
    if iscoroutinefunction(task.func):

        async def main() -> Any:
            call = task.func(*args, **result.kwargs)
            return await (asyncio.wait_for(call, timeout) if timeout else call)

        return async_to_sync(main)()
    return task.func(*args, **result.kwargs)


def _send(signal: Any, backend: DatabaseBackend, result: TaskResult) -> None:
    """Send a django.tasks signal; a receiver that raises is logged, not the task's failure."""
    for receiver, response in signal.send_robust(type(backend), task_result=result):
        if isinstance(response, Exception):
            logger.error(
                "A %s receiver (%r) raised; ignored",
                "task_started" if signal is task_started else "task_finished",
                receiver,
                exc_info=response,
            )


def _on_job_failed(sender: Any, job: Any, exception: BaseException, **kwargs: Any) -> None:
    """Send ``task_finished`` for a task whose worker was lost and has no attempts left.

    Failures inside :func:`run_task` send it themselves.
    """
    if getattr(job, "name", None) != JOB_NAME or not isinstance(exception, WorkerLostError):
        return
    try:
        backend = _backend_of(job.workspace)
        _send(task_finished, backend, backend.result_for(job))
    except Exception:
        logger.exception("Could not send task_finished for lost job %s", job.pk)


signals.job_failed.connect(_on_job_failed, dispatch_uid="django_dbq.tasks.lost")


# --- helpers ------------------------------------------------------------------------------


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


_EXIT_PATH = _class_path(TaskExitError)


def _error_of(exc: BaseException) -> TaskError:
    return TaskError(
        exception_class_path=_class_path(type(exc)),
        traceback="".join(traceback.format_exception(exc)),
    )


def _task_error(record: dict[str, Any]) -> TaskError:
    path = str(record.get("type") or "builtins.Exception")
    if path == _EXIT_PATH:  # the message starts with the original class
        path = str(record.get("message", "")).partition(":")[0] or path
    return TaskError(exception_class_path=path, traceback=str(record.get("traceback") or ""))


def _records(job: Any) -> list[dict[str, Any]]:
    return [r for r in (job.errors if isinstance(job.errors, list) else []) if isinstance(r, dict)]


def _worker_ids(job: Any) -> list[str]:
    """One worker id per attempt: the failed ones from ``errors``, then the current one."""
    ids = [str(record.get("worker") or "") for record in _records(job)]
    if job.state in ("PROCESSING", "COMPLETED") and job.lease_owner:
        ids.append(job.lease_owner)
    missing = (job.attempts or 0) - len(ids)  # errors beyond DBQ_MAX_ERRORS_KEPT were dropped
    return [""] * missing + ids if missing > 0 else ids


def _evolve(result: TaskResult, **changes: Any) -> TaskResult:
    evolved = dataclasses.replace(result, **changes)
    object.__setattr__(evolved, "_return_value", result._return_value)
    return evolved


def _parse_id(result_id: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(result_id))
    except ValueError:
        raise TaskResultDoesNotExist(result_id) from None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _task_options(task: Task) -> dict[str, Any]:
    return task.dbq_options if isinstance(task, DatabaseTask) else {}


def _row_options(workspace: Any) -> dict[str, Any]:
    """The task options stored in a row, keeping only valid values (numbers, no paths)."""
    stored = workspace.get("options") if isinstance(workspace, dict) else None
    return _valid_options(stored, per_task=True) if isinstance(stored, dict) else {}


def _valid_options(options: Mapping[str, Any], *, per_task: bool) -> dict[str, Any]:
    return {
        key: value
        for key, value in options.items()
        if key in TASK_OPTION_KEYS and not _option_problems({key: value}, per_task=per_task)
    }


def _option_problems(options: Mapping[str, Any], *, per_task: bool) -> list[str]:
    """What is wrong with task options (``per_task``) or a backend's ``OPTIONS``.

    The rules are those of JOBS entries (:mod:`django_dbq.options`), except that a
    task may not name a backoff function (a row cannot name code to import), and a
    lease must be at least ``DBQ_LEASE_SECONDS`` (the worker renews every third).
    """
    rules = {
        "max_attempts": _options.MAX_ATTEMPTS,
        "backoff": _options.BACKOFF if per_task else _options.dotted_path_or(_options.BACKOFF),
        "backoff_max": _options.BACKOFF_MAX,
        "lease_seconds": _options.Rule(
            _options.seconds(_lease_minimum()).valid,
            f"a number of seconds of at least DBQ_LEASE_SECONDS ({_lease_minimum():g}) "
            f"and at most {_options.MAX_SECONDS} (a year)",
        ),
        "timeout": _options.TIMEOUT,
    }
    problems = []
    for key, rule in rules.items():
        hint = rule.problem(options[key]) if key in options else None
        if hint is not None:
            problems.append(f"{key} = {options[key]!r}: {hint}.")
    if not per_task and options.get("task_modules") is not None:
        value = options["task_modules"]
        if isinstance(value, str) or not (
            isinstance(value, (list, tuple)) and all(isinstance(m, str) and m for m in value)
        ):
            problems.append(f"task_modules = {value!r}: use a list of module names.")
    return problems


def _lease_minimum() -> float:
    try:
        return conf.lease_seconds() if settings.configured else 1.0
    except (TypeError, ValueError):
        return 1.0
