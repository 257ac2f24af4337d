"""Fixtures of the admin's tests: staff users with different permissions, and jobs in
every state, made the way workers make them."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_dbq import store
from django_dbq.integrations.synchronous import run_job
from django_dbq.models import Job

WORKER = "host-1:4242:abcdef"


def changelist_url(**query: str) -> str:
    url = reverse("admin:django_dbq_job_changelist")
    if query:
        url += "?" + "&".join(f"{key}={value}" for key, value in query.items())
    return url


def change_url(job: Job) -> str:
    return reverse("admin:django_dbq_job_change", args=[job.pk])


def history_url(job: Job) -> str:
    return reverse("admin:django_dbq_job_history", args=[job.pk])


def delete_url(job: Job) -> str:
    return reverse("admin:django_dbq_job_delete", args=[job.pk])


def add_url() -> str:
    return reverse("admin:django_dbq_job_add")


def _staff(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def operator_client(db) -> Client:
    """A staff user who may view, add, change and delete jobs (not a superuser)."""
    client = Client()
    client.force_login(_staff("operator", "view_job", "add_job", "change_job", "delete_job"))
    return client


@pytest.fixture
def viewer_client(db) -> Client:
    """A staff user who may only view jobs."""
    client = Client()
    client.force_login(_staff("viewer", "view_job"))
    return client


def later(minutes: float = 60) -> datetime.datetime:
    return timezone.now() + datetime.timedelta(minutes=minutes)


def failed_job(name: str = "admin_flaky", **fields) -> Job:
    """A job the executor ran until it failed for good (real error records)."""
    job = run_job(Job.objects.create(name=name, **fields))
    assert job.state == Job.STATES.FAILED
    return job


def completed_job(name: str = "noop") -> Job:
    job = run_job(Job.objects.create(name=name))
    assert job.state == Job.STATES.COMPLETED
    return job


def processing_job(queue: str = "held") -> Job:
    """A job a worker holds (claimed, its task started)."""
    job = Job.objects.create(name="noop", queue_name=queue)
    [claimed] = store.claim(WORKER, [queue], 1, 30)
    claimed.started_at = timezone.now()
    store.mark_started(WORKER, [claimed])
    assert claimed.pk == job.pk
    return Job.objects.get(pk=job.pk)


@pytest.fixture
def jobs_in_every_state(db) -> dict[str, Job]:
    return {
        "new": Job.objects.create(name="noop"),
        "scheduled": Job.objects.create(name="chain", run_after=later()),
        "processing": processing_job(),
        "completed": completed_job(),
        "failed": failed_job(),
    }
