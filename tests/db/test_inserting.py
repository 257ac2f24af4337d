"""django_dbq.db.inserting: new job rows written exactly as Django would write them
(Job.objects.create, save, bulk_create, bulk_create_jobs, bulk_enqueue), to the router's
write database, through execute wrappers and the connection's own cursor."""

from __future__ import annotations

import datetime

import pytest
from django.db import IntegrityError, connection, models, transaction
from django.db.transaction import TransactionManagementError
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_dbq.exceptions import InvalidJobError, InvalidWorkspaceError, UnknownJobError
from django_dbq.models import Job
from tests.support import hook_calls, inserts

pytestmark = pytest.mark.django_db


# --- rows as Django would write them: Job.objects.create, save, bulk_create ----------------------


STORED = [
    "name", "queue_name", "state", "next_task", "workspace", "priority", "run_after",
    "attempts", "errors", "started_at", "finished_at", "lease_owner", "lease_expires_at",
    "batch_key", "context_type_id", "context_id",
]

def test_bulk_create_jobs_writes_the_rows_django_would_write():
    from django.contrib.contenttypes.models import ContentType

    when = timezone.now() + datetime.timedelta(hours=1)
    target = ContentType.objects.get_for_model(Job)  # any saved object will do
    fields = {"workspace": {"n": [1, "é", None]}, "queue_name": "q", "priority": -3,
              "run_after": when}
    fast = Job.objects.bulk_create_jobs(
        [{"name": "noop", **fields}, {"name": "noop", "context_object": target}]
    )
    # The same jobs through Django's own QuerySet.bulk_create and INSERT compiler.
    orm = [Job(name="noop", **fields), Job(name="noop", context_object=target)]
    for job in orm:
        job.prepare_for_insert()
    with CaptureQueriesContext(connection) as queries:
        models.QuerySet.bulk_create(Job.objects.all(), orm)
    [insert] = [q["sql"] for q in queries.captured_queries if "INSERT" in q["sql"]]
    assert insert.startswith("INSERT")  # Django's multi-row INSERT, not executemany or COPY
    for ours, theirs in zip(fast, orm, strict=True):
        ours, theirs = Job.objects.get(pk=ours.pk), Job.objects.get(pk=theirs.pk)
        assert [getattr(ours, f) for f in STORED] == [getattr(theirs, f) for f in STORED]
    assert Job.objects.get(pk=fast[0].pk).run_after == when
    assert Job.objects.get(pk=fast[1].pk).context_object == target
    assert all(not job._state.adding and job._state.db == "default" for job in fast)

def test_create_writes_one_insert_and_the_row_django_would_write():
    when = timezone.now() + datetime.timedelta(minutes=5)
    with CaptureQueriesContext(connection) as queries:
        job = Job.objects.create(name="noop", workspace={"a": 1}, priority=2, run_after=when)
    assert len(inserts(queries)) == 1
    stored = Job.objects.get(pk=job.pk)
    assert [getattr(stored, f) for f in STORED] == [getattr(job, f) for f in STORED]
    assert stored.created == job.created and stored.modified == job.modified

def test_create_stores_quotes_backslashes_and_unicode_as_given():
    text = "it's \\ \"quoted\" %s %(x)s é\u2603\U0001f600"
    job = Job.objects.create(name="noop", workspace={text: [text]}, queue_name="o'brien")
    stored = Job.objects.get(pk=job.pk)
    assert stored.workspace == {text: [text]}
    assert stored.queue_name == "o'brien"
    assert Job.objects.filter(workspace={text: [text]}).get() == stored

def test_create_sends_pre_and_post_save_to_their_receivers():
    from django.db.models.signals import post_save, pre_save

    heard = []

    def before(sender, instance, **kwargs):
        heard.append(("pre", instance._state.adding, Job.objects.filter(pk=instance.pk).exists()))

    def after(sender, instance, created, **kwargs):
        heard.append(("post", created, Job.objects.filter(pk=instance.pk).exists()))

    pre_save.connect(before, sender=Job)
    post_save.connect(after, sender=Job)
    try:
        Job.objects.create(name="noop")
    finally:
        pre_save.disconnect(before, sender=Job)
        post_save.disconnect(after, sender=Job)
    assert heard == [("pre", True, False), ("post", True, True)]

def test_a_failed_create_inside_atomic_breaks_the_block_as_in_django():
    existing = Job.objects.create(name="noop")
    with transaction.atomic():
        with pytest.raises(IntegrityError):
            Job.objects.create(pk=existing.pk, name="noop")
        with pytest.raises(TransactionManagementError):
            Job.objects.count()

def test_save_of_a_new_job_without_a_primary_key_gets_one_as_in_django():
    job = Job(name="noop")
    job.pk = None
    job.save()
    assert job.pk is not None
    assert not job._state.adding and job._state.db == "default"
    assert Job.objects.get(pk=job.pk).name == "noop"

def test_saving_a_created_job_again_updates_it():
    job = Job.objects.create(name="noop")
    job.priority = 9
    job.save()
    assert Job.objects.count() == 1
    assert Job.objects.get(pk=job.pk).priority == 9

@pytest.mark.parametrize("force_insert", [(int,), "yes"])
def test_save_refuses_a_force_insert_django_refuses(force_insert):
    with pytest.raises(TypeError), transaction.atomic():
        Job(name="noop").save(force_insert=force_insert)
    assert not Job.objects.exists()

def test_bulk_create_of_a_job_without_a_primary_key_gets_one_as_in_django():
    job = Job(name="noop")
    job.pk = None
    [created] = Job.objects.bulk_create([job])
    assert created.pk is not None
    assert Job.objects.filter(pk=created.pk).exists()

@pytest.mark.parametrize("batch_size", [0, -1])
def test_bulk_create_refuses_a_batch_size_django_refuses(batch_size):
    with pytest.raises(ValueError):
        Job.objects.bulk_create([Job(name="noop")], batch_size=batch_size)
    assert Job.objects.count() == 0


# --- Job.objects.bulk_enqueue --------------------------------------------------------------------


def test_bulk_enqueue_writes_the_rows_bulk_create_jobs_would_write_in_order():
    when = timezone.now() + datetime.timedelta(hours=1)
    options = {"queue_name": "q", "priority": 7, "run_after": when}
    workspaces = [{"n": n, "text": "é\u2603", "list": [1.5, None, True]} for n in range(3)]

    ids = Job.objects.bulk_enqueue("noop", workspaces, **options)
    made = Job.objects.bulk_create_jobs(
        [{"name": "noop", "workspace": ws, **options} for ws in workspaces]
    )

    ours = [Job.objects.get(pk=pk) for pk in ids]
    theirs = [Job.objects.get(pk=job.pk) for job in made]
    for mine, reference in zip(ours, theirs, strict=True):
        assert [getattr(mine, f) for f in STORED] == [getattr(reference, f) for f in STORED]
    assert [job.workspace["n"] for job in ours] == [0, 1, 2]
    assert ours[0].created < ours[1].created < ours[2].created  # claimed in this order
    assert all(job.created == job.modified for job in ours)

def test_bulk_enqueue_writes_one_statement_per_batch():
    with CaptureQueriesContext(connection) as queries:
        ids = Job.objects.bulk_enqueue("noop", [{"n": n} for n in range(5)], batch_size=2)

    assert len(inserts(queries)) == 3
    assert len(set(ids)) == 5
    assert set(Job.objects.values_list("pk", flat=True)) == set(ids)

def test_bulk_enqueue_of_a_batch_job_type_sets_the_batch_key():
    [default, keyed] = [
        Job.objects.get(pk=pk)
        for pk in Job.objects.bulk_enqueue("count_clicks", [{}])
        + Job.objects.bulk_enqueue("count_clicks", [{}], batch_key="user-1")
    ]
    assert (default.batch_key, keyed.batch_key) == ("", "user-1")

def test_bulk_enqueue_runs_a_creation_hook_for_each_job():
    ids = Job.objects.bulk_enqueue("chain", [{"n": 1}, {"n": 2}])

    assert sorted(hook_calls()) == sorted(str(pk) for pk in ids)
    assert [Job.objects.get(pk=pk).workspace for pk in ids] == [
        {"n": 1, "created_by_hook": True},
        {"n": 2, "created_by_hook": True},
    ]

@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: Job.objects.bulk_enqueue("nope", [{}]), UnknownJobError),
        (lambda: Job.objects.bulk_enqueue("noop", [{}, []]), InvalidWorkspaceError),
        (lambda: Job.objects.bulk_enqueue("noop", [{}, {"x": float("nan")}]),
         InvalidWorkspaceError),
        (lambda: Job.objects.bulk_enqueue("noop", [{}], queue_name=""), InvalidJobError),
        (lambda: Job.objects.bulk_enqueue("noop", [{}], priority="1"), InvalidJobError),
        (lambda: Job.objects.bulk_enqueue("noop", [{}], batch_key="k"), InvalidJobError),
    ],
    ids=["unknown name", "not a dict", "NaN", "empty queue", "priority", "batch key"],
)
def test_bulk_enqueue_refuses_bad_input_and_writes_nothing(call, error):
    with pytest.raises(error):
        call()
    assert Job.objects.count() == 0

def test_bulk_enqueue_with_nothing_to_create():
    with CaptureQueriesContext(connection) as queries:
        assert Job.objects.bulk_enqueue("noop", []) == []
    assert inserts(queries) == []

def test_bulk_enqueue_stores_json_as_the_orm_does():
    workspace = {"a": "é\u2603", "b": [1, None]}
    Job.objects.bulk_enqueue("noop", [workspace])
    Job.objects.create(name="noop", workspace=workspace)

    # An exact JSON lookup compares stored text on SQLite: both rows must match.
    assert Job.objects.filter(workspace=workspace).count() == 2


# --- database routers ----------------------------------------------------------------------------


class ReadsElsewhere:
    """A router that sends reads to a database that does not exist, writes to default."""

    def db_for_read(self, model, **hints):
        return "replica"

    def db_for_write(self, model, **hints):
        return "default"

@override_settings(DATABASE_ROUTERS=[ReadsElsewhere()])
@pytest.mark.parametrize(
    "create",
    [
        lambda: Job.objects.bulk_enqueue("noop", [{}, {}]),
        lambda: Job.objects.bulk_create_jobs([{"name": "noop"}, {"name": "noop"}]),
        lambda: Job.objects.bulk_create([Job(name="noop"), Job(name="noop")]),
        lambda: [Job(name="noop").save() for _ in range(2)],
    ],
    ids=["bulk_enqueue", "bulk_create_jobs", "bulk_create", "save"],
)
def test_bulk_writes_go_to_the_write_database(create):
    create()
    assert Job.objects.using("default").count() == 2

class RecordsWrites:
    """A router that records which instances it was asked to route for writing."""

    def __init__(self):
        self.asked = []

    def db_for_write(self, model, **hints):
        self.asked.append((model, hints.get("instance")))
        return "default"

def test_save_of_a_new_job_asks_the_router_with_the_instance():
    router = RecordsWrites()
    with override_settings(DATABASE_ROUTERS=[router]):
        job = Job(name="noop")
        job.save()
    assert (Job, job) in router.asked


# --- the connection's cursor: execute wrappers, prepared statements, cursor factories ------------


def test_create_runs_execute_wrapper_hooks_and_is_logged():
    seen = []

    def hook(execute, sql, params, many, context):
        seen.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(hook), CaptureQueriesContext(connection) as queries:
        job = Job.objects.create(name="noop")
    [(sql, params)] = [(sql, params) for sql, params in seen if sql.startswith("INSERT")]
    assert Job._meta.db_table in sql
    assert job.pk.hex in [str(value).replace("-", "") for value in params]
    [logged] = inserts(queries)
    assert job.pk.hex in logged.replace("-", "")  # the statement as sent, with its values
    assert Job.objects.filter(pk=job.pk).exists()

@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements")
def test_create_prepares_nothing_even_with_a_prepare_threshold():
    connection.ensure_connection()
    raw = connection.connection
    before = raw.prepare_threshold
    raw.prepare_threshold = 1  # as OPTIONS["prepare_threshold"] would set it
    try:
        for _ in range(4):
            Job.objects.create(name="noop")
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            assert cursor.fetchone()[0] == 0  # Django's client-side cursor never prepares
    finally:
        raw.prepare_threshold = before

@pytest.mark.skipif(connection.vendor != "postgresql", reason="psycopg's cursor_factory")
def test_create_goes_through_a_custom_cursor_factory():
    from django.db.backends.postgresql.base import Cursor

    seen = []

    class Traced(Cursor):
        def execute(self, query, params=None, **kwargs):
            seen.append(str(query))
            return super().execute(query, params, **kwargs)

    connection.ensure_connection()
    raw = connection.connection
    before = raw.cursor_factory
    raw.cursor_factory = Traced
    try:
        Job.objects.create(name="noop")
    finally:
        raw.cursor_factory = before
    assert [sql for sql in seen if sql.startswith("INSERT")] != []
