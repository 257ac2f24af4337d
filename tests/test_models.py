"""django_dbq.models: creating jobs (one and many) and their validation, queue depths,
pruning, the queryset methods and django-db-queue compatibility. The rows written are
checked in tests/db/test_inserting.py."""

from __future__ import annotations

import datetime
import math
import zoneinfo

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_dbq.exceptions import InvalidJobError, InvalidWorkspaceError, UnknownJobError
from django_dbq.models import Job
from tests import tasks
from tests.support import hook_calls, inserts, statements

pytestmark = pytest.mark.django_db

UTC = datetime.timezone.utc
TWO_HOURS = datetime.timedelta(hours=2)


# Hooks named by the extra job types below.
def record_whether_saved(job):
    job.workspace["saved_when_hook_ran"] = Job.objects.filter(pk=job.pk).exists()
    job.workspace["hook_saw"] = dict(job.workspace)


def replace_workspace(job):
    job.workspace = {"replaced": True}


def break_workspace(job):
    job.workspace["bad"] = object()


def raise_in_hook(job):
    raise RuntimeError("creation hook failed on purpose")


@pytest.fixture
def hook_jobs(settings):
    """The test JOBS plus job types whose creation hooks are defined in this module."""
    settings.JOBS = {
        **settings.JOBS,
        "records_saved": {
            "tasks": ["tests.tasks.noop"],
            "creation_hook": "tests.test_models.record_whether_saved",
        },
        "replaces": {
            "tasks": ["tests.tasks.noop"],
            "creation_hook": "tests.test_models.replace_workspace",
        },
        "breaks": {
            "tasks": ["tests.tasks.noop"],
            "creation_hook": "tests.test_models.break_workspace",
        },
        "raises": {
            "tasks": ["tests.tasks.noop"],
            "creation_hook": "tests.test_models.raise_in_hook",
        },
    }


def make_job(state=Job.STATES.NEW, *, age_hours=0.0, **fields):
    """Create a job, then set its state and age directly (as a worker would have)."""
    job = Job.objects.create(name=fields.pop("name", "noop"), **fields)
    created = timezone.now() - datetime.timedelta(hours=age_hours)
    Job.objects.filter(pk=job.pk).update(state=state, created=created)
    job.refresh_from_db()
    return job


# --- Job.objects.create ------------------------------------------------------------------


def test_create_fills_in_the_defaults():
    job = Job.objects.create(name="noop")
    job.refresh_from_db()

    assert job.state == Job.STATES.NEW
    assert job.next_task == "tests.tasks.noop"
    assert job.workspace == {}
    assert job.queue_name == "default"
    assert job.priority == 0
    assert job.run_after is None
    assert job.attempts == 0
    assert job.errors == []
    assert job.lease_owner == ""
    assert job.created is not None
    assert job.modified is not None


def test_create_stores_the_given_fields():
    run_after = datetime.datetime(2030, 1, 31, 9, 0, tzinfo=UTC)

    job = Job.objects.create(
        name="noop",
        workspace={"a": [1, 2], "b": {"c": None}},
        queue_name="emails",
        priority=-5,
        run_after=run_after,
    )
    job.refresh_from_db()

    assert job.workspace == {"a": [1, 2], "b": {"c": None}}
    assert job.queue_name == "emails"
    assert job.priority == -5
    assert job.run_after == run_after


def test_next_task_is_the_first_task_of_the_chain():
    assert Job.objects.create(name="chain").next_task == "tests.tasks.step_one"


def test_none_workspace_becomes_an_empty_dict():
    job = Job.objects.create(name="noop", workspace=None)
    job.refresh_from_db()

    assert job.workspace == {}


def test_creation_hook_of_a_dict_form_job_changes_the_workspace():
    job = Job.objects.create(name="chain", workspace={"given": 1})
    job.refresh_from_db()

    assert job.workspace == {"given": 1, "created_by_hook": True}
    assert hook_calls() == [str(job.pk)]


def test_list_form_job_has_no_creation_hook_and_keeps_the_workspace():
    job = Job.objects.create(name="noop", workspace={"given": 1})
    job.refresh_from_db()

    assert job.workspace == {"given": 1}
    assert tasks.calls == []


def test_creation_hook_runs_before_the_row_is_saved(hook_jobs):
    job = Job.objects.create(name="records_saved", workspace={"given": 1})
    job.refresh_from_db()

    assert job.workspace["saved_when_hook_ran"] is False
    assert job.workspace["hook_saw"] == {"given": 1, "saved_when_hook_ran": False}


def test_creation_hook_may_replace_the_workspace(hook_jobs):
    job = Job.objects.create(name="replaces", workspace={"given": 1})
    job.refresh_from_db()

    assert job.workspace == {"replaced": True}


def test_save_of_a_new_instance_also_validates_and_runs_the_hook():
    job = Job(name="chain")
    job.save()
    job.refresh_from_db()

    assert job.next_task == "tests.tasks.step_one"
    assert job.workspace == {"created_by_hook": True}

    with pytest.raises(UnknownJobError):
        Job(name="no_such_job").save()
    assert Job.objects.count() == 1


def test_saving_an_existing_job_does_not_run_the_creation_hook_again():
    job = Job.objects.create(name="chain")
    tasks.calls.clear()

    job.priority = 3
    job.save()

    assert hook_calls() == []
    assert Job.objects.get(pk=job.pk).priority == 3


def test_unknown_job_name_raises_and_writes_nothing(settings):
    with pytest.raises(UnknownJobError) as excinfo:
        Job.objects.create(name="no_such_job")

    assert excinfo.value.known == list(settings.JOBS)
    assert "noop" in str(excinfo.value)
    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    "workspace",
    [
        [],
        ["a"],
        "text",
        5,
        {"when": object()},
        {"a": {1, 2}},
        {"a": b"bytes"},
        {"a": float("nan")},
        {"a": [float("inf")]},
        {"a": "nul \x00 inside"},
        {"a\x00": 1},
        {"a": "lone \ud800 surrogate"},
    ],
    ids=[
        "empty-list",
        "list",
        "string",
        "number",
        "object",
        "set",
        "bytes",
        "nan",
        "infinity",
        "nul-in-value",
        "nul-in-key",
        "lone-surrogate",
    ],
)
def test_invalid_workspace_raises_and_writes_nothing(workspace):
    with pytest.raises(InvalidWorkspaceError) as excinfo:
        Job.objects.create(name="noop", workspace=workspace)

    assert "workspace" in str(excinfo.value)
    assert "\n" not in str(excinfo.value)
    assert Job.objects.count() == 0


def test_creation_hook_that_breaks_the_workspace_raises_and_writes_nothing(hook_jobs):
    with pytest.raises(InvalidWorkspaceError, match="not JSON-serialisable"):
        Job.objects.create(name="breaks")

    assert Job.objects.count() == 0


def test_creation_hook_exception_propagates_and_writes_nothing(hook_jobs):
    with pytest.raises(RuntimeError, match="creation hook failed on purpose"):
        Job.objects.create(name="raises")

    assert Job.objects.count() == 0


def test_a_large_valid_workspace_is_stored_whole():
    workspace = {"items": [{"n": i, "text": "x" * 100} for i in range(10_000)]}  # about 1.2 MB

    job = Job.objects.create(name="noop", workspace=workspace)

    assert Job.objects.get(pk=job.pk).workspace == workspace


def test_queue_name_of_64_characters_is_accepted():
    job = Job.objects.create(name="noop", queue_name="q" * 64)

    assert Job.objects.get(pk=job.pk).queue_name == "q" * 64


@pytest.mark.parametrize(
    ("queue_name", "message"),
    [
        ("q" * 65, "65 characters long; the limit is 64"),
        ("", "non-empty string"),
        (None, "non-empty string"),
        (5, "non-empty string"),
    ],
    ids=["65-chars", "empty", "none", "number"],
)
def test_bad_queue_name_raises_and_writes_nothing(queue_name, message):
    with pytest.raises(InvalidJobError, match=message):
        Job.objects.create(name="noop", queue_name=queue_name)

    assert Job.objects.count() == 0


@pytest.mark.parametrize("priority", [2**31 - 1, -(2**31), 0, 7])
def test_priority_within_32_bits_is_stored(priority):
    job = Job.objects.create(name="noop", priority=priority)

    assert Job.objects.get(pk=job.pk).priority == priority


@pytest.mark.parametrize(
    ("priority", "message"),
    [
        ("5", "must be an integer"),
        (1.5, "must be an integer"),
        (None, "must be an integer"),
        (True, "must be an integer"),
        (2**31, "out of range"),
        (-(2**31) - 1, "out of range"),
    ],
)
def test_bad_priority_raises_and_writes_nothing(priority, message):
    with pytest.raises(InvalidJobError, match=message):
        Job.objects.create(name="noop", priority=priority)

    assert Job.objects.count() == 0


def test_naive_run_after_is_made_aware_in_the_current_time_zone():
    naive = datetime.datetime(2030, 1, 31, 9, 0)

    utc_job = Job.objects.create(name="noop", run_after=naive)
    with override_settings(TIME_ZONE="Europe/Paris"):
        paris_job = Job.objects.create(name="noop", run_after=naive)

    assert timezone.is_aware(utc_job.run_after)
    assert Job.objects.get(pk=utc_job.pk).run_after == naive.replace(tzinfo=UTC)
    assert Job.objects.get(pk=paris_job.pk).run_after == datetime.datetime(
        2030, 1, 31, 9, 0, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")
    )


@pytest.mark.parametrize(
    "run_after",
    [
        "2030-01-31T09:00:00",
        datetime.date(2030, 1, 31),
        1_900_000_000,
        datetime.datetime(9999, 12, 31, 23, 0, tzinfo=datetime.timezone(-TWO_HOURS)),
        datetime.datetime(1, 1, 1, 0, 0, tzinfo=datetime.timezone(TWO_HOURS)),
    ],
    ids=["string", "date", "number", "after-year-9999-in-utc", "before-year-1-in-utc"],
)
def test_bad_run_after_raises_and_writes_nothing(run_after):
    with pytest.raises(InvalidJobError, match="run_after"):
        Job.objects.create(name="noop", run_after=run_after)

    assert Job.objects.count() == 0


# --- bulk creation ----------------------------------------------------------------------------


def test_bulk_create_jobs_fills_next_task_and_runs_each_creation_hook_once():
    created = Job.objects.bulk_create_jobs(
        [
            {"name": "chain", "workspace": {"n": 1}},
            Job(name="chain", workspace={"n": 2}),
            {"name": "noop", "queue_name": "other", "priority": 4},
        ]
    )

    assert sorted(hook_calls()) == sorted(str(job.pk) for job in created[:2])
    rows = {job.pk: job for job in Job.objects.all()}
    assert set(rows) == {job.pk for job in created}
    first, second, third = (rows[job.pk] for job in created)
    assert first.next_task == second.next_task == "tests.tasks.step_one"
    assert first.workspace == {"n": 1, "created_by_hook": True}
    assert second.workspace == {"n": 2, "created_by_hook": True}
    assert (third.next_task, third.workspace) == ("tests.tasks.noop", {})
    assert (third.queue_name, third.priority, third.state) == ("other", 4, Job.STATES.NEW)


def test_bulk_create_jobs_uses_one_insert_per_batch():
    with CaptureQueriesContext(connection) as queries:
        Job.objects.bulk_create_jobs([{"name": "noop"} for _ in range(5)], batch_size=2)

    assert len(inserts(queries)) == 3
    assert Job.objects.count() == 5


def test_bulk_create_jobs_inserts_a_whole_batch_in_one_query():
    with CaptureQueriesContext(connection) as queries:
        Job.objects.bulk_create_jobs([{"name": "chain"} for _ in range(50)])

    assert len(inserts(queries)) == 1
    assert Job.objects.count() == 50


def test_bulk_create_jobs_with_nothing_to_create():
    with CaptureQueriesContext(connection) as queries:
        assert Job.objects.bulk_create_jobs([]) == []

    assert inserts(queries) == []


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"name": "no_such_job"}, UnknownJobError),
        ({"name": "noop", "workspace": ["not", "a", "dict"]}, InvalidWorkspaceError),
        ({"name": "noop", "workspace": {"x": object()}}, InvalidWorkspaceError),
        ({"name": "noop", "queue_name": "q" * 65}, InvalidJobError),
        ({"name": "noop", "priority": "high"}, InvalidJobError),
    ],
    ids=[
        "unknown-name",
        "workspace-list",
        "workspace-unserialisable",
        "queue-too-long",
        "priority-not-int",
    ],
)
def test_bulk_create_jobs_validates_every_job_before_inserting_any(bad, error):
    batch = [{"name": "noop"}] * 3 + [bad]

    with CaptureQueriesContext(connection) as queries, pytest.raises(error):
        Job.objects.bulk_create_jobs(batch, batch_size=2)

    assert inserts(queries) == []
    assert Job.objects.count() == 0


def test_plain_bulk_create_also_validates_and_prepares():
    Job.objects.bulk_create([Job(name="chain")])

    assert Job.objects.get().next_task == "tests.tasks.step_one"
    with pytest.raises(UnknownJobError):
        Job.objects.bulk_create([Job(name="noop"), Job(name="no_such_job")])
    assert Job.objects.count() == 1


# --- queue depths ------------------------------------------------------------------------------


def test_get_queue_depths_counts_waiting_jobs_per_queue():
    future = timezone.now() + datetime.timedelta(hours=1)
    past = timezone.now() - datetime.timedelta(hours=1)
    make_job(Job.STATES.NEW)
    make_job(Job.STATES.READY)
    make_job(Job.STATES.NEW, run_after=past)
    make_job(Job.STATES.NEW, queue_name="other", run_after=future)
    make_job(Job.STATES.PROCESSING)
    make_job(Job.STATES.COMPLETED)
    make_job(Job.STATES.FAILED, queue_name="other")
    make_job(Job.STATES.COMPLETED, queue_name="done_only")

    assert Job.get_queue_depths() == {"default": 3, "other": 1}
    assert Job.get_queue_depths(exclude_future_jobs=True) == {"default": 3}


def test_get_queue_depths_of_an_empty_table():
    assert Job.get_queue_depths() == {}


# --- delete_old ----------------------------------------------------------------------------------


def test_delete_old_deletes_only_finished_jobs_older_than_the_cutoff_in_batches():
    old_finished = [make_job(Job.STATES.COMPLETED, age_hours=30) for _ in range(3)]
    old_finished += [make_job(Job.STATES.FAILED, age_hours=48) for _ in range(2)]
    kept = [
        make_job(state, age_hours=30)
        for state in (Job.STATES.NEW, Job.STATES.READY, Job.STATES.PROCESSING)
    ]
    kept += [make_job(Job.STATES.COMPLETED, age_hours=23), make_job(Job.STATES.FAILED, age_hours=1)]

    with CaptureQueriesContext(connection) as queries:
        deleted = Job.objects.delete_old(hours=24, batch_size=2)

    assert deleted == 5
    assert len(statements(queries, "DELETE")) == 3  # 2 + 2 + 1
    assert set(Job.objects.values_list("pk", flat=True)) == {job.pk for job in kept}
    assert not Job.objects.filter(pk__in=[job.pk for job in old_finished]).exists()


def test_delete_old_with_an_exact_multiple_of_the_batch_size():
    for _ in range(4):
        make_job(Job.STATES.COMPLETED, age_hours=30)

    assert Job.objects.delete_old(hours=24, batch_size=2) == 4
    assert Job.objects.count() == 0


def test_delete_old_defaults_to_24_hours():
    make_job(Job.STATES.COMPLETED, age_hours=25)
    recent = make_job(Job.STATES.COMPLETED, age_hours=23)

    assert Job.objects.delete_old() == 1
    assert list(Job.objects.values_list("pk", flat=True)) == [recent.pk]


def test_delete_old_with_zero_hours_deletes_every_finished_job():
    make_job(Job.STATES.COMPLETED)
    make_job(Job.STATES.FAILED)
    waiting = make_job(Job.STATES.NEW)

    assert Job.objects.delete_old(hours=0) == 2
    assert list(Job.objects.values_list("pk", flat=True)) == [waiting.pk]


def test_delete_old_with_nothing_to_delete():
    make_job(Job.STATES.NEW, age_hours=100)

    assert Job.objects.delete_old(hours=24) == 0
    assert Job.objects.count() == 1


def test_delete_old_batch_query_does_not_sort():
    """Each batch takes any old rows it finds: sorting a table of millions per batch
    would make pruning quadratic."""
    make_job(Job.STATES.COMPLETED, age_hours=30)

    with CaptureQueriesContext(connection) as queries:
        Job.objects.delete_old(hours=24)

    selects = statements(queries, "SELECT")
    assert selects
    assert all("ORDER BY" not in sql.upper() for sql in selects)


@pytest.mark.parametrize(
    "hours",
    [-1, -0.5, math.nan, math.inf, 1e12, "24", None],
    ids=["negative", "negative-fraction", "nan", "infinity", "too-large", "string", "none"],
)
def test_delete_old_rejects_bad_hours_and_deletes_nothing(hours):
    make_job(Job.STATES.COMPLETED, age_hours=30)

    with pytest.raises(InvalidJobError, match="hours"):
        Job.objects.delete_old(hours=hours)

    assert Job.objects.count() == 1


# --- queryset methods ----------------------------------------------------------------------------


def test_runnable_is_new_or_ready_and_not_deferred():
    now = timezone.now()
    new = make_job(Job.STATES.NEW)
    ready = make_job(Job.STATES.READY)
    due = make_job(Job.STATES.READY, run_after=now - datetime.timedelta(minutes=1))
    deferred = make_job(Job.STATES.NEW, run_after=now + datetime.timedelta(hours=1))
    for state in (Job.STATES.PROCESSING, Job.STATES.COMPLETED, Job.STATES.FAILED):
        make_job(state)

    assert set(Job.objects.runnable()) == {new, ready, due}
    later = now + datetime.timedelta(hours=2)
    assert set(Job.objects.runnable(now=later)) == {new, ready, due, deferred}


def test_waiting_includes_deferred_jobs():
    new = make_job(Job.STATES.NEW)
    ready = make_job(Job.STATES.READY)
    deferred = make_job(Job.STATES.NEW, run_after=timezone.now() + datetime.timedelta(hours=1))
    for state in (Job.STATES.PROCESSING, Job.STATES.COMPLETED, Job.STATES.FAILED):
        make_job(state)

    assert set(Job.objects.waiting()) == {new, ready, deferred}


def test_in_queues_filters_by_queue_name():
    default = make_job(queue_name="default")
    emails = make_job(queue_name="emails")
    make_job(queue_name="reports")

    assert set(Job.objects.in_queues(["default", "emails"])) == {default, emails}
    assert set(Job.objects.in_queues(iter(["emails"]))) == {emails}
    assert list(Job.objects.in_queues([])) == []


def test_finished_and_finished_before():
    cutoff = timezone.now() - datetime.timedelta(hours=10)
    old_completed = make_job(Job.STATES.COMPLETED, age_hours=11)
    old_failed = make_job(Job.STATES.FAILED, age_hours=12)
    new_completed = make_job(Job.STATES.COMPLETED, age_hours=1)
    make_job(Job.STATES.READY, age_hours=20)

    assert set(Job.objects.finished()) == {old_completed, old_failed, new_completed}
    assert set(Job.objects.finished_before(cutoff)) == {old_completed, old_failed}


def test_processing_held_by_and_lease_expired():
    now = timezone.now()
    mine = make_job(Job.STATES.PROCESSING)
    theirs = make_job(Job.STATES.PROCESSING)
    second = datetime.timedelta(seconds=1)
    Job.objects.filter(pk=mine.pk).update(lease_owner="me", lease_expires_at=now + 30 * second)
    Job.objects.filter(pk=theirs.pk).update(lease_owner="them", lease_expires_at=now - second)
    make_job(Job.STATES.READY)

    assert set(Job.objects.processing()) == {mine, theirs}
    assert list(Job.objects.held_by("me")) == [mine]
    assert list(Job.objects.lease_expired()) == [theirs]
    assert set(Job.objects.lease_expired(now=now + datetime.timedelta(minutes=1))) == {mine, theirs}


def test_default_ordering_is_priority_descending_then_created():
    base = timezone.now() - datetime.timedelta(hours=1)
    specs = [
        ("low-old", 0, 0),
        ("high-new", 10, 30),
        ("high-old", 10, 10),
        ("low-new", 0, 20),
        ("negative", -5, 5),
    ]
    for label, priority, minutes in specs:
        job = Job.objects.create(name="noop", workspace={"label": label}, priority=priority)
        Job.objects.filter(pk=job.pk).update(created=base + datetime.timedelta(minutes=minutes))

    labels = [job.workspace["label"] for job in Job.objects.all()]

    assert labels == ["high-old", "high-new", "low-old", "low-new", "negative"]


def test_context_objects_are_served_by_one_composite_index():
    from django.contrib.contenttypes.models import ContentType

    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Job._meta.db_table)
    assert constraints["django_dbq_context"]["columns"] == ["context_type_id", "context_id"]
    # The foreign key has no index of its own: one index fewer to write on every insert.
    assert not [
        name for name, info in constraints.items()
        if info["index"] and info["columns"] == ["context_type_id"]
    ]
    target = ContentType.objects.get_for_model(Job)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table is read whole
    plan = Job.objects.for_object(target).filter(name="noop").explain()
    assert "django_dbq_context" in plan, plan


# --- compatibility with django-db-queue ----------------------------------------------------------


def test_states_values():
    assert Job.STATES.NEW == "NEW"
    assert Job.STATES.READY == "READY"
    assert Job.STATES.PROCESSING == "PROCESSING"
    assert Job.STATES.COMPLETED == "COMPLETED"
    assert Job.STATES.FAILED == "FAILED"
    assert [value for value, _ in Job.STATES.choices] == [
        "NEW",
        "READY",
        "PROCESSING",
        "COMPLETED",
        "FAILED",
    ]


def test_complete_is_django_db_queues_alias_of_completed_not_a_sixth_state():
    assert Job.STATES.COMPLETE is Job.STATES.COMPLETED
    assert Job.STATES["COMPLETE"] is Job.STATES.COMPLETED
    assert len(list(Job.STATES)) == 5
    job = Job.objects.create(name="noop")
    Job.objects.filter(pk=job.pk).update(state=Job.STATES.COMPLETE)
    assert Job.objects.filter(state="COMPLETED").count() == 1


def test_update_next_task_walks_the_chain_to_the_end():
    job = Job.objects.create(name="chain")

    seen = [job.next_task]
    for _ in range(3):
        job.update_next_task()
        seen.append(job.next_task)

    assert seen == ["tests.tasks.step_one", "tests.tasks.step_two", "tests.tasks.step_three", ""]


def test_hook_name_getters():
    job = Job.objects.create(name="chain")

    assert job.get_creation_hook_name() == "tests.tasks.creation_hook"
    assert job.get_pre_task_hook_name() == "tests.tasks.pre_task_hook"
    assert job.get_post_task_hook_name() == "tests.tasks.post_task_hook"
    assert job.get_failure_hook_name() == "tests.tasks.failure_hook"
    assert Job.objects.create(name="noop").get_failure_hook_name() is None


def test_job_type_of_a_job_whose_name_left_jobs_raises_unknown_job_error():
    job = Job.objects.create(name="noop")
    Job.objects.filter(pk=job.pk).update(name="gone")
    job.refresh_from_db()

    with pytest.raises(UnknownJobError, match="'gone'"):
        _ = job.job_type
