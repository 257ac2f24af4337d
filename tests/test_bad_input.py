"""The bad-input table, where the other test modules leave gaps.

Every row: a clear one-line error, and nothing written. Covered elsewhere and not
repeated here: create_job and delete_old_jobs garbage (management/test_commands.py),
their parsing (management/test_options.py), the Job API's validation (test_models.py),
every system check (test_checks.py), bad --concurrency/--grace/--poll-interval
(runtime/test_worker.py) and tampered rows in the executor (runtime/test_executor.py).

Here: queue names and the remaining worker options, workspaces too large for the
database, rows tampered in the database (run by a real worker, which must fail
them, go on, and never import a path that JOBS does not list) and states that do
not exist.
"""

from __future__ import annotations

import json
import sys
import types
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from django.db.models import JSONField, Value
from django.test import override_settings

from django_dbq import store
from django_dbq.exceptions import InvalidJobError, InvalidWorkspaceError
from django_dbq.management import options as command_options
from django_dbq.models import Job
from django_dbq.runtime import executor
from tests import tasks
from tests.conftest import run_command
from tests.models import Execution

LONG_QUEUE = "q" * 65
OWNER = "test-worker"


def one_line_command_error(*args: str) -> str:
    with pytest.raises(CommandError) as excinfo:
        call_command(*args, stdout=StringIO(), stderr=StringIO())
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# --- command options ---------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["worker", ""], "A queue name must be a non-empty string, not ''."),
        (["worker", "default", LONG_QUEUE], "is 65 characters long; the limit is 64."),
        (["worker", "--processes", "0"], "--processes must be at least 1, not '0'."),
        (["worker", "--processes", "two"], "--processes must be a whole number, not 'two'."),
        (["worker", "--rate_limit", "-1"], "--rate_limit must be at least 0, not '-1'."),
        (["worker", "--rate_limit", "fast"], "--rate_limit must be a number of seconds"),
        (["worker", "--poll-interval", "0"], "--poll-interval must be at least 0.01, not '0'."),
        (["worker", "--grace", "nan"], "--grace must be at least 0, not 'nan'."),
        (["queue_depth", ""], "A queue name must be a non-empty string, not ''."),
        (["queue_depth", "default", LONG_QUEUE], "is 65 characters long; the limit is 64."),
    ],
    ids=[
        "worker-empty-queue",
        "worker-queue-too-long",
        "worker-processes-zero",
        "worker-processes-word",
        "worker-rate-limit-negative",
        "worker-rate-limit-word",
        "worker-poll-interval-zero",
        "worker-grace-nan",
        "queue-depth-empty-queue",
        "queue-depth-queue-too-long",
    ],
)
def test_bad_command_options_are_one_line_errors_that_start_nothing(args, message):
    Job.objects.create(name="noop")

    assert message in one_line_command_error(*args)
    assert Job.objects.get().state == Job.STATES.NEW


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_bad_worker_queue_name_is_one_line_on_stderr_from_a_real_process():
    result = run_command("worker", LONG_QUEUE)

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "CommandError: Queue name 'qqqqqqqqqqqqqqqqqqqq'... is 65 characters long; the limit is 64."
    )


@pytest.mark.parametrize("names", [[""], ["ok", LONG_QUEUE]])
def test_parse_queue_names_rejects_what_a_job_could_not_have(names):
    with pytest.raises(InvalidJobError) as excinfo:
        command_options.parse_queue_names(names)
    assert "\n" not in str(excinfo.value)


# --- workspaces too large ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_workspace_over_the_default_limit_is_refused_and_nothing_written():
    huge = {"blob": "x" * (8 * 1024 * 1024)}

    with pytest.raises(InvalidWorkspaceError) as excinfo:
        Job.objects.create(name="noop", workspace=huge)

    assert str(excinfo.value) == (
        "The workspace is 8388620 bytes of JSON; the limit is 8388608 "
        "(the DBQ_MAX_WORKSPACE_BYTES setting)."
    )
    assert Job.objects.count() == 0


@pytest.mark.django_db
@override_settings(DBQ_MAX_WORKSPACE_BYTES=1000)
@pytest.mark.parametrize(
    "create",
    [
        lambda ws: Job.objects.create(name="noop", workspace=ws),
        lambda ws: Job.objects.bulk_create_jobs(
            [{"name": "noop"}, {"name": "noop", "workspace": ws}]
        ),
        lambda ws: Job.objects.bulk_enqueue("noop", [{}, ws]),
        lambda ws: command_options.create_job("noop", workspace=json.dumps(ws)),
    ],
    ids=["create", "bulk_create_jobs", "bulk_enqueue", "create_job command"],
)
def test_a_workspace_over_the_limit_is_refused_by_every_api(create):
    with pytest.raises(InvalidWorkspaceError, match="the limit is 1000"):
        create({"blob": "é" * 500})  # 1000 characters, 1000+ bytes of UTF-8

    assert Job.objects.count() == 0


@pytest.mark.django_db
@override_settings(DBQ_MAX_WORKSPACE_BYTES=1000)
def test_create_job_with_a_workspace_over_the_limit_is_a_one_line_command_error():
    message = one_line_command_error(
        "create_job", "noop", "--workspace", json.dumps({"a": "x" * 1000})
    )

    assert message == (
        "The workspace is 1009 bytes of JSON; the limit is 1000 "
        "(the DBQ_MAX_WORKSPACE_BYTES setting)."
    )
    assert Job.objects.count() == 0


@pytest.mark.django_db
@override_settings(DBQ_MAX_WORKSPACE_BYTES=None)
def test_no_limit_when_the_setting_is_none():
    Job.objects.create(name="noop", workspace={"blob": "x" * 9_000_000})

    assert Job.objects.count() == 1


@pytest.mark.django_db
@override_settings(DBQ_MAX_WORKSPACE_BYTES=1000)
def test_a_task_that_leaves_a_workspace_over_the_limit_fails_its_job_clearly():
    job = Job.objects.create(name="grow", workspace={"bytes": 2000})
    [claimed] = store.claim(OWNER, ["default"], 1, 30)

    outcome = executor.run(claimed, OWNER, executor.snapshot(claimed))

    assert outcome.kind == "failed"
    job.refresh_from_db()
    assert job.state == Job.STATES.FAILED
    assert "the limit is 1000" in job.errors[0]["message"]
    assert job.workspace == {"bytes": 2000}  # the last workspace saved is kept


@pytest.mark.django_db
def test_completions_with_large_workspaces_are_written_in_statements_the_database_accepts():
    # 12 x 1.5 MB in one bulk UPDATE is more than MariaDB's default max_allowed_packet.
    Job.objects.bulk_create_jobs([{"name": "noop"} for _ in range(12)])
    claimed = store.claim(OWNER, ["default"], 12, 30)
    for job in claimed:
        job.workspace = {"blob": "x" * 1_500_000}

    outcomes = [store.Outcome(job, "completed", 0.0, workspace_changed=True) for job in claimed]
    assert store.complete(OWNER, outcomes) == 12
    assert Job.objects.filter(state=Job.STATES.COMPLETED).count() == 12


# --- rows tampered in the database --------------------------------------------------------------

# (field values written behind the ORM's back, fragment of the error recorded)
TAMPERED = [
    ({"name": "no_such_job"}, "Unknown job name 'no_such_job'"),
    ({"next_task": "tests.tamper_target.run"}, "which is not a task of job type 'noop'"),
    ({"next_task": "os.system"}, "which is not a task of job type 'noop'"),
    ({"next_task": ""}, "which is not a task of job type 'noop'"),
    ({"workspace": ["a", "list"]}, "has a workspace of type list"),
    ({"workspace": "text"}, "has a workspace of type str"),
    ({"workspace": 42}, "has a workspace of type int"),
    ({"workspace": None}, "has a workspace of type NoneType"),
]
TAMPERED_IDS = [
    "unknown-name",
    "importable-path-not-in-jobs",
    "os-system",
    "empty-next-task",
    "workspace-list",
    "workspace-string",
    "workspace-number",
    "workspace-json-null",
]


def tamper(job: Job, values: dict) -> None:
    if "workspace" in values:
        # A JSON value stored as is (a plain None would mean SQL NULL).
        values = {**values, "workspace": Value(values["workspace"], output_field=JSONField())}
    assert Job.objects.filter(pk=job.pk).update(**values) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(("values", "message"), TAMPERED, ids=TAMPERED_IDS)
def test_a_tampered_row_is_failed_by_the_executor_and_nothing_is_imported(values, message):
    sys.modules.pop("tests.tamper_target", None)
    job = Job.objects.create(name="noop")
    tamper(job, values)
    [claimed] = store.claim(OWNER, ["default"], 1, 30)

    outcome = executor.run(claimed, OWNER, executor.snapshot(claimed))

    assert outcome.kind == "failed"
    job.refresh_from_db()
    assert job.state == Job.STATES.FAILED
    assert len(job.errors) == 1
    assert message in job.errors[0]["message"]
    assert "\n" not in job.errors[0]["message_line"]
    assert "tests.tamper_target" not in sys.modules
    assert tasks.calls == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_real_worker_fails_tampered_rows_goes_on_and_never_imports_their_paths(
    start_worker, tmp_path
):
    marker = tmp_path / "imported"
    bad = []
    for values, _ in TAMPERED:
        job = Job.objects.create(name="noop")
        tamper(job, values)
        bad.append(job)
    good = Job.objects.bulk_create_jobs([{"name": "record"} for _ in range(3)])

    worker = start_worker("--burst", "--concurrency", "2", DBQ_TAMPER_MARKER=str(marker))
    assert worker.wait(timeout=60) == 0, worker.output()

    for job, (_, message) in zip(bad, TAMPERED, strict=True):
        job.refresh_from_db()
        assert job.state == Job.STATES.FAILED, job
        assert message in job.errors[0]["message"]
    assert set(Job.objects.filter(pk__in=[j.pk for j in good]).values_list("state", flat=True)) == {
        Job.STATES.COMPLETED
    }
    assert Execution.objects.count() == 3
    assert not marker.exists(), "the worker imported a task path that JOBS does not list"
    assert worker.output().count("Job failed") == len(TAMPERED)
    for trouble in ("Could not record", "Giving up", "Heartbeat failed"):
        assert trouble not in worker.output()


# --- states that do not exist ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("state", ["BOGUS", "", "new", "CANCELLED"])
def test_a_state_that_does_not_exist_cannot_be_stored(state):
    if state == "new" and connection.vendor == "mysql":
        pytest.skip("MySQL's case-insensitive collations take 'new' for 'NEW' (so do claims)")
    job = Job.objects.create(name="noop")

    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.filter(pk=job.pk).update(state=state)

    assert Job.objects.get(pk=job.pk).state == Job.STATES.NEW


def _without_the_state_check():
    """Let rows with an unknown state be written (as before migration 0009), if we can."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE django_dbq_job DROP CONSTRAINT django_dbq_job_state_known")
        elif connection.vendor == "sqlite":
            cursor.execute("PRAGMA ignore_check_constraints = ON")
        elif connection.mysql_is_mariadb:
            cursor.execute("SET SESSION check_constraint_checks = 0")
        else:
            pytest.skip("MySQL cannot switch a CHECK constraint off for one session")


def _with_the_state_check():
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA ignore_check_constraints = OFF")
        elif connection.vendor == "mysql":
            cursor.execute("SET SESSION check_constraint_checks = 1")


@pytest.mark.django_db
def test_migration_0008_fails_rows_whose_state_does_not_exist():
    from importlib import import_module

    from django.apps import apps

    migration = import_module("django_dbq.migrations.0008_convert_rows")
    _without_the_state_check()  # first: PostgreSQL alters no table with pending FK checks
    kept = Job.objects.create(name="noop")
    job = Job.objects.create(name="noop")
    try:
        Job.objects.filter(pk=job.pk).update(state="CANCELLED")
        migration.fail_unknown_states(apps, types.SimpleNamespace(connection=connection))
    finally:
        _with_the_state_check()

    job.refresh_from_db()
    assert job.state == Job.STATES.FAILED
    assert job.finished_at is not None
    assert job.errors[0]["message"] == (
        "The job's state 'CANCELLED' is not one of NEW, READY, PROCESSING, COMPLETED, FAILED; "
        "marked FAILED by migration django_dbq 0008."
    )
    assert Job.objects.get(pk=kept.pk).state == Job.STATES.NEW
