"""Unique jobs: one waiting or running job per job name and unique key, kept so by
the database (a unique index on ``active_key``), on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime
import time

import pytest
from django.core import checks
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from django_dbq import store
from django_dbq.exceptions import InvalidJobError
from django_dbq.integrations.synchronous import run_job
from django_dbq.models import Job
from django_dbq.states import JobStates
from tests import tasks
from tests.conftest import race

pytestmark = pytest.mark.django_db


def active(key: str) -> list[Job]:
    return list(Job.objects.filter(unique_key=key, active_key__isnull=False))


def test_a_second_create_with_the_key_returns_the_waiting_job():
    first = Job.objects.create(name="noop", unique_key="report:1")
    second = Job.objects.create(name="noop", unique_key="report:1", workspace={"x": 1})
    assert first.duplicate is False
    assert second.duplicate is True
    assert second.pk == first.pk
    assert second.workspace == {}  # the job that holds the key, as it is
    assert Job.objects.count() == 1


def test_keys_are_per_job_name_and_jobs_without_a_key_are_never_refused():
    Job.objects.create(name="noop", unique_key="k")
    Job.objects.create(name="record", unique_key="k")
    Job.objects.create(name="noop")
    Job.objects.create(name="noop")
    assert Job.objects.count() == 4


@pytest.mark.parametrize("outcome", ["completed", "failed", "cancelled"])
def test_a_finished_job_frees_its_key(outcome):
    name = "failing" if outcome == "failed" else "noop"
    first = Job.objects.create(name=name, unique_key="k")
    if outcome == "cancelled":
        store.cancel_waiting([first.pk], "test")
    else:
        run_job(first)
    first.refresh_from_db()
    assert first.state in (JobStates.COMPLETED, JobStates.FAILED)
    assert first.active_key is None
    assert first.unique_key == "k"  # still shown
    again = Job.objects.create(name=name, unique_key="k")
    assert again.duplicate is False
    assert again.pk != first.pk


def test_a_running_job_holds_its_key():
    first = Job.objects.create(name="noop", unique_key="k")
    claimed = store.claim("host:1:a", ["default"], 1, 30)
    assert [job.pk for job in claimed] == [first.pk]
    assert Job.objects.create(name="noop", unique_key="k").pk == first.pk


def test_retrying_a_failed_job_takes_its_key_back_unless_another_job_holds_it():
    failed = Job.objects.create(name="failing", unique_key="k")
    run_job(failed)
    result = store.retry_failed([failed.pk], "test")
    assert result.changed == [failed.pk]
    assert Job.objects.create(name="failing", unique_key="k").pk == failed.pk
    run_job(Job.objects.get(pk=failed.pk))
    newer = Job.objects.create(name="failing", unique_key="k")
    assert newer.duplicate is False
    result = store.retry_failed([failed.pk], "test")
    assert (result.changed, result.skipped) == ([], 1)
    assert Job.objects.get(pk=failed.pk).state == JobStates.FAILED


def test_a_jobs_rule_makes_the_key_from_the_workspace_and_skips_the_hook_of_a_duplicate():
    first = Job.objects.create(name="unique_invoice", workspace={"invoice_id": 42})
    assert first.unique_key == "invoice:42"
    hooks = [call for call in tasks.calls if call[0] == "creation_hook"]
    second = Job.objects.create(name="unique_invoice", workspace={"invoice_id": 42})
    assert second.duplicate and second.pk == first.pk
    assert [call for call in tasks.calls if call[0] == "creation_hook"] == hooks
    other = Job.objects.create(name="unique_invoice", workspace={"invoice_id": 43})
    assert other.duplicate is False


def test_a_workspace_without_the_rules_field_is_refused_and_writes_nothing():
    with pytest.raises(InvalidJobError, match=r"unique key of job type 'unique_invoice'.*"):
        Job.objects.create(name="unique_invoice", workspace={"invoice": 42})
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "key", ["", "x" * 201, "a\x00b", 42], ids=["empty", "too-long", "nul", "not-a-string"]
)
def test_a_bad_key_is_refused_and_writes_nothing(key):
    with pytest.raises(InvalidJobError, match="unique_key must be a non-empty string"):
        Job.objects.create(name="noop", unique_key=key)
    assert not Job.objects.exists()


def _finished_seconds_ago(job: Job, seconds: float) -> None:
    run_job(job)
    Job.objects.filter(pk=job.pk).update(
        finished_at=timezone.now() - datetime.timedelta(seconds=seconds)
    )


def test_unique_for_returns_a_job_that_finished_within_the_period():
    first = Job.objects.create(name="noop", unique_key="k")
    _finished_seconds_ago(first, 10)
    assert Job.objects.create(name="noop", unique_key="k", unique_for=60).pk == first.pk
    assert Job.objects.create(name="noop", unique_key="k", unique_for=5).pk != first.pk


def test_a_rules_period_debounces_without_being_asked():
    first = Job.objects.create(name="unique_debounced", workspace={"id": 7})
    _finished_seconds_ago(first, 30)
    again = Job.objects.create(name="unique_debounced", workspace={"id": 7})
    assert again.duplicate and again.pk == first.pk
    _finished_seconds_ago(first, 61)
    assert Job.objects.create(name="unique_debounced", workspace={"id": 7}).pk != first.pk


@pytest.mark.parametrize("period", [-1, "60", float("nan"), True])
def test_a_bad_unique_for_is_refused(period):
    with pytest.raises(InvalidJobError, match="unique_for must be"):
        Job.objects.create(name="noop", unique_key="k", unique_for=period)
    assert not Job.objects.exists()


def test_a_collision_inside_the_callers_transaction_leaves_it_usable():
    with transaction.atomic():
        first = Job.objects.create(name="noop", unique_key="k")
        assert Job.objects.create(name="noop", unique_key="k").pk == first.pk
        Job.objects.create(name="noop")  # the transaction goes on after the collision
    assert Job.objects.count() == 2


def test_bulk_create_keeps_the_first_of_a_key_and_returns_every_object_in_order():
    Job.objects.create(name="noop", unique_key="held")
    objs = [
        Job(name="noop", unique_key="a"),
        Job(name="noop"),
        Job(name="noop", unique_key="a"),
        Job(name="noop", unique_key="held"),
        Job(name="noop", unique_key="b"),
    ]
    made = Job.objects.bulk_create(objs)
    assert made == objs
    assert [job.duplicate for job in made] == [False, False, True, True, False]
    assert made[2].pk == made[0].pk
    assert Job.objects.count() == 4  # held, a, the plain one, b


def test_bulk_enqueue_of_a_unique_job_type_returns_the_holders_ids():
    ids = Job.objects.bulk_enqueue(
        "unique_invoice", [{"invoice_id": 1}, {"invoice_id": 2}, {"invoice_id": 1}]
    )
    assert ids[0] == ids[2] != ids[1]
    assert Job.objects.count() == 2


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"key": ""}, "has no key template"),
        ({"key": "x:{"}, "is malformed"),
        ({"key": "x", "for": -1}, "['unique']['for'] = -1 is invalid"),
        ({"key": "x", "every": 1}, "is invalid"),
        (42, "is invalid"),
    ],
)
def test_a_bad_unique_rule_is_check_e017(rule, message):
    jobs = {"noop": ["tests.tasks.noop"], "bad": {"tasks": ["tests.tasks.noop"], "unique": rule}}
    with override_settings(JOBS=jobs):
        found = [m for m in checks.run_checks() if m.id == "django_dbq.E017"]
    assert len(found) == 1
    assert message in found[0].msg


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_eight_processes_creating_one_key_at_once_leave_one_active_job():
    start_at = time.time() + 3
    outputs = race("tests.unique_race", [["race:1", "100", str(start_at)]] * 8)
    inserted = sum(int(out.strip()) for out in outputs)
    assert inserted == 1
    assert len(active("race:1")) == 1
    assert Job.objects.filter(unique_key="race:1").count() == 1
