"""Helpers shared by the django.tasks backend tests (test_tasks_backend*.py), which
import this module only after their Django 6.0 check: it imports django.tasks."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from django_dbq import store
from django_dbq.integrations.tasks_backend import JOB_NAME
from django_dbq.models import Job
from django_dbq.runtime import executor

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
