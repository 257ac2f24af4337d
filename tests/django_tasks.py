"""django.tasks tasks for tests/integrations/test_tasks_backend*.py (Django 6.0+; imported
only there).

Several mirror the test tasks of django-tasks-db, whose backend tests
tests/integrations/test_tasks_backend.py ports.
"""

import asyncio
import os
import threading
import time

import django
from asgiref.sync import sync_to_async
from django.tasks import task

from tests.models import Execution


@task
def noop_task(*args, **kwargs):
    return None


@task
async def noop_task_async(*args, **kwargs):
    return None


@task(queue_name="queue-1")
def noop_task_queue_1(*args, **kwargs):
    return None


@task
def calculate_meaning_of_life():
    return 42


@task
def add(a, b):
    return a + b


@task
def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}


@task
def failing_task_value_error():
    raise ValueError("This task failed due to ValueError")


@task
def complex_exception():
    raise ValueError(ValueError("This task failed"))


@task
def complex_return_value():
    return {"when": object()}


@task
def exit_task():
    raise SystemExit(1)


@task
def failing_task_keyboard_interrupt():
    raise KeyboardInterrupt


@task(takes_context=True)
def get_task_id(context):
    return context.task_result.id


@task(takes_context=True)
def context_details(context, expected_attempt):
    result = context.task_result
    assert context.attempt == expected_attempt, context.attempt
    assert result.status == "RUNNING", result.status
    assert result.started_at is not None
    return {"attempt": context.attempt, "worker_ids": result.worker_ids, "id": result.id}


@task
def sleep_for(seconds, started_marker=None):
    """Sleep; with ``started_marker``, first append a line to that file (it started)."""
    if started_marker:
        with open(started_marker, "a") as handle:
            handle.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return seconds


@task
def record(marker=""):
    """Write an Execution row whose ``thread`` is ``marker`` (or the thread's name)."""
    now = time.time()
    Execution.objects.create(
        job_id="00000000-0000-0000-0000-000000000000",
        pid=os.getpid(),
        thread=marker or threading.current_thread().name,
        started=now,
        finished=now,
    )


@task
async def async_add(a, b):
    await asyncio.sleep(0.01)
    return a + b


@task
async def async_record(marker):
    """An async task that uses the ORM (through sync_to_async)."""
    await asyncio.sleep(0.01)
    await sync_to_async(record.func)(marker)
    return marker


if django.VERSION >= (6, 1):  # @task passes extra options to the task class

    @task(takes_context=True, max_attempts=3, backoff=0)
    def flaky(context, succeed_on):
        """Fails until its attempt number reaches ``succeed_on``."""
        if context.attempt < succeed_on:
            raise ValueError(f"attempt {context.attempt} fails")
        return context.attempt

else:  # Django 6.0: set them with .using()

    @task(takes_context=True)
    def flaky(context, succeed_on):
        """Fails until its attempt number reaches ``succeed_on``."""
        if context.attempt < succeed_on:
            raise ValueError(f"attempt {context.attempt} fails")
        return context.attempt

    flaky = flaky.using(max_attempts=3, backoff=0)


@task(takes_context=True, backend="retrying")
def flaky_backend_options(context, succeed_on):
    """Like ``flaky``, retried by the "retrying" backend's OPTIONS instead."""
    if context.attempt < succeed_on:
        raise ValueError(f"attempt {context.attempt} fails")
    return context.attempt


@task
def fail_then_wait():
    raise ValueError("fails, and retries in ten minutes")


# Options set with .using() (any Django 6): the attribute keeps the function's name.
fail_then_wait = fail_then_wait.using(max_attempts=2, backoff=600)


@task
async def too_slow():
    await asyncio.sleep(30)


too_slow = too_slow.using(timeout=0.2)


@task
def nan_return():
    return float("nan")
