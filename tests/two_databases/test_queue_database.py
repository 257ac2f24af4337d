"""The queue in a database of its own (DBQ_DATABASE = "queue", QueueRouter): the
tables, app code, a real worker process, the admin, the commands, the check, the
context object across databases, and what a transaction on one database does not
do for the other.

Run with tests.settings_two_databases (tests/test_two_databases.py does)."""

from __future__ import annotations

import datetime
import os
from io import StringIO

import django
import pytest
from django.contrib.contenttypes.models import ContentType
from django.core import checks
from django.core.management import call_command
from django.db import connections, transaction
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from django_dbq.integrations.synchronous import run_pending_jobs
from django_dbq.models import Job
from django_dbq.operations import pauses, registry, stats
from django_dbq.records import QueuePause, WorkerRecord
from django_dbq.states import JobStates
from tests.conftest import run_command
from tests.models import Document, Execution

pytestmark = pytest.mark.django_db(databases=["default", "queue"], transaction=True)

QUEUE_TABLES = {
    "django_dbq_job",
    "django_dbq_worker",
    "django_dbq_queue_pause",
    "django_dbq_minute_count",
    "django_dbq_schedule",
    "django_dbq_schedule_tick",
    "django_dbq_flow_limit",
    "django_dbq_cancel_request",
}


def tables(alias: str) -> set[str]:
    with connections[alias].cursor() as cursor:
        return set(connections[alias].introspection.table_names(cursor))


def two_database_env() -> dict[str, str]:
    """For a subprocess: these settings, and this run's two test databases."""
    return {
        "DJANGO_SETTINGS_MODULE": "tests.settings_two_databases",
        "DBQ_DATABASE_NAME": str(connections["default"].settings_dict["NAME"]),
        "DBQ_QUEUE_DATABASE_NAME": str(connections["queue"].settings_dict["NAME"]),
    }


def manage(*args: str) -> str:
    result = run_command(*args, **two_database_env())
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def command(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# --- tables and routing ----------------------------------------------------------------


def test_migrate_puts_the_queue_tables_in_the_queue_database_only():
    assert tables("queue") >= QUEUE_TABLES
    assert not {t for t in tables("default") if t.startswith("django_dbq")}
    # The jobs' foreign key to content types points to the queue database's own table.
    assert "django_content_type" in tables("queue")


def test_a_job_created_by_app_code_lands_in_the_queue_database():
    job = Job.objects.create(name="noop", workspace={"n": 1})

    assert job._state.db == "queue"
    assert Job.objects.using("queue").filter(pk=job.pk).exists()
    assert Job.objects.get(pk=job.pk).workspace == {"n": 1}  # reads follow the router
    assert "django_dbq_job" not in tables("default")


def test_bulk_enqueue_and_bulk_create_jobs_write_to_the_queue_database():
    ids = Job.objects.bulk_enqueue("noop", [{"i": i} for i in range(3)])
    Job.objects.bulk_create_jobs([{"name": "noop"}, {"name": "noop"}])

    assert Job.objects.using("queue").filter(pk__in=ids).count() == 3
    assert Job.objects.using("queue").count() == 5


# --- the context object: a model of the default database -------------------------------


@pytest.fixture
def skewed_content_types():
    """Content type ids that differ between the two databases, as they do in real life
    (the queue's table was filled in another order): a stray row takes ids first."""
    for n in range(3):
        ContentType.objects.db_manager("queue").create(app_label="stray", model=f"m{n}")
    ContentType.objects.db_manager("queue").filter(app_label="tests").delete()
    ContentType.objects.clear_cache()
    yield
    ContentType.objects.clear_cache()


def test_the_context_object_is_kept_with_the_queue_databases_content_type(
    skewed_content_types,
):
    document = Document.objects.create()
    in_default = ContentType.objects.db_manager("default").get_for_model(Document)

    job = Job.objects.create(name="noop", context_object=document)

    assert job.context_type._state.db == "queue"
    in_queue = ContentType.objects.db_manager("queue").get(app_label="tests", model="document")
    assert job.context_type_id == in_queue.pk != in_default.pk
    again = Job.objects.get(pk=job.pk)
    assert again.context_type.model_class() is Document
    assert again.context_object == document  # read from the default database
    assert list(Job.objects.for_object(document)) == [job]
    assert Job.objects.latest_for(document, "noop") == job
    assert Job.objects.for_object(Document.objects.create()).count() == 0


def test_a_context_object_deleted_since_reads_as_none(skewed_content_types):
    document = Document.objects.create()
    job = Job.objects.create(name="noop", context_object=document)
    document.delete()

    assert Job.objects.get(pk=job.pk).context_object is None


def test_a_content_type_of_the_other_database_is_refused_not_mixed_up():
    in_default = ContentType.objects.db_manager("default").get_for_model(Document)

    with pytest.raises(ValueError, match="router prevents this relation"):
        Job(name="noop", context_type=in_default)


def test_a_tracked_operation_keeps_its_context_object_too(skewed_content_types):
    document = Document.objects.create()

    with Job.objects.track("import", context_object=document) as job:
        pass

    assert Job.objects.get(pk=job.pk).context_object == document
    assert Job.objects.for_object(document).get().state == JobStates.COMPLETED


# --- a real worker ---------------------------------------------------------------------


@pytest.mark.worker
def test_a_worker_process_runs_the_job_in_the_queue_database():
    job = Job.objects.create(name="record")

    manage("worker", "--burst")

    assert Job.objects.using("queue").get(pk=job.pk).state == JobStates.COMPLETED
    # The task's own rows went where their model lives: the default database.
    assert Execution.objects.using("default").filter(job_id=job.pk).count() == 1
    assert not WorkerRecord.objects.using("queue").exists()  # unregistered on exit


def test_the_synchronous_helpers_run_jobs_of_the_queue_database():
    job = Job.objects.create(name="noop")

    assert run_pending_jobs() == 1
    assert Job.objects.get(pk=job.pk).state == JobStates.COMPLETED


# --- the admin -------------------------------------------------------------------------


def test_the_admin_lists_filters_and_shows_jobs_of_the_queue_database(
    admin_client, skewed_content_types
):
    document = Document.objects.create()
    job = Job.objects.create(name="noop", context_object=document)
    Job.objects.create(name="record")
    changelist = reverse("admin:django_dbq_job_changelist")

    response = admin_client.get(changelist)
    assert response.status_code == 200
    assert str(job.pk)[:8] in response.content.decode()

    response = admin_client.get(changelist, {"context_type__id__exact": job.context_type_id})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1
    assert str(job.context_type) in response.content.decode()  # the filter's choice
    assert str(job.context_type) == "Tests | document"

    response = admin_client.get(reverse("admin:django_dbq_job_change", args=[job.pk]))
    assert response.status_code == 200
    assert str(document) in response.content.decode()  # the context object, from default


def test_the_dashboard_reads_the_queue_database(admin_client):
    Job.objects.create(name="noop", queue_name="mail")

    response = admin_client.get(reverse("admin:django_dbq_job_dashboard"))

    assert response.status_code == 200
    assert "mail" in response.content.decode()
    assert [(q.queue, q.ready) for q in stats.snapshot().queues] == [("mail", 1)]


# --- the commands ----------------------------------------------------------------------


@pytest.mark.worker
def test_create_job_in_a_new_process_writes_to_the_queue_database():
    manage("create_job", "noop", "--workspace", '{"from": "cli"}')

    assert Job.objects.using("queue").get().workspace == {"from": "cli"}


def test_queue_depth_queue_health_and_delete_old_jobs_use_the_queue_database():
    Job.objects.create(name="noop", queue_name="mail")
    Job.objects.create(name="noop", queue_name="mail")
    assert "event=queue_depths mail=2" in command("queue_depth", "mail")

    command("queue", "pause", "mail")
    assert list(QueuePause.objects.using("queue").values_list("queue_name", flat=True)) == [
        "mail"
    ]
    assert pauses.paused_queues() == {"mail"}
    assert "mail: paused since" in command("queue", "list")
    command("queue", "resume", "mail")
    assert not QueuePause.objects.using("queue").exists()

    registry.register("w1", queues=["mail"], concurrency=1, interval=10)
    assert WorkerRecord.objects.using("queue").count() == 1
    assert command("health", "--max-heartbeat-age", "60").startswith("ok")

    old = Job.objects.create(name="noop")
    Job.objects.filter(pk=old.pk).update(
        state=JobStates.COMPLETED, created=timezone.now() - datetime.timedelta(days=3)
    )
    command("delete_old_jobs", "--hours", "24")
    assert not Job.objects.filter(pk=old.pk).exists()
    assert Job.objects.count() == 2


@pytest.fixture
def empty_queue_database(tmp_path):
    """A new, empty database for the queue alias of a subprocess: its name."""
    connection = connections["default"]
    if connection.vendor == "sqlite":
        yield str(tmp_path / "empty-queue.sqlite3")
        return
    name = f"dbq_empty{os.environ.get('DBQ_TEST_SUFFIX', '')}_2db"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        cursor.execute(f"CREATE DATABASE {name}")
    yield name
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name}")


@pytest.mark.worker
def test_a_command_on_an_unmigrated_queue_database_says_which_migrate_to_run(
    empty_queue_database,
):
    env = {**two_database_env(), "DBQ_QUEUE_DATABASE_NAME": empty_queue_database}
    result = run_command("worker", "--burst", **env)

    assert result.returncode == 1
    assert "run `python manage.py migrate --database=queue` first" in result.stderr


# --- the check -------------------------------------------------------------------------


def _e019() -> list[checks.CheckMessage]:
    return [m for m in checks.run_checks() if m.id == "django_dbq.E019"]


def test_the_check_passes_with_the_router_installed():
    assert _e019() == []


def test_the_check_fires_without_the_router():
    with override_settings(DATABASE_ROUTERS=[]):
        (error,) = _e019()
    assert "'queue'" in error.msg and "'default'" in error.msg
    assert "django_dbq.routers.QueueRouter" in error.hint


def test_the_check_fires_for_an_alias_that_is_not_in_databases():
    with override_settings(DBQ_DATABASE="queues"):
        (error,) = _e019()
    assert "'queues'" in error.msg and "'queue'" in error.msg


# --- transactions: the queue's database is not the caller's ----------------------------


class Rollback(Exception):
    pass


def test_a_rolled_back_atomic_on_default_does_not_remove_a_job_of_the_queue_database():
    with pytest.raises(Rollback), transaction.atomic():
        Document.objects.create()
        Job.objects.create(name="noop")
        raise Rollback

    assert not Document.objects.exists()  # the caller's row is gone ...
    assert Job.objects.count() == 1  # ... the job is not: it was committed on its own


def test_an_atomic_on_the_queue_database_rolls_the_job_back():
    with pytest.raises(Rollback), transaction.atomic(using="queue"):
        Job.objects.create(name="noop")
        raise Rollback

    assert Job.objects.count() == 0


def test_on_commit_enqueues_only_once_the_callers_transaction_committed():
    with transaction.atomic():
        document = Document.objects.create()
        transaction.on_commit(
            lambda: Job.objects.create(name="noop", context_object=document)
        )
        assert Job.objects.count() == 0  # not before the commit
    assert Job.objects.for_object(document).count() == 1

    with pytest.raises(Rollback), transaction.atomic():
        Document.objects.create()
        transaction.on_commit(lambda: Job.objects.create(name="noop"))
        raise Rollback
    assert Job.objects.count() == 1  # rolled back: never enqueued


# --- the django.tasks backend ----------------------------------------------------------


@pytest.mark.skipif(django.VERSION < (6, 0), reason="django.tasks is Django 6.0+")
def test_the_tasks_backend_enqueues_into_the_queue_database():
    from tests.django_tasks import add

    result = add.enqueue(2, 3)

    assert Job.objects.using("queue").filter(pk=result.id).exists()
    assert add.get_result(result.id).id == result.id
