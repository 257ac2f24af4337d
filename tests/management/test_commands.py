"""django_dbq.management.commands: create_job, delete_old_jobs and queue_depth.

Most cases go through ``call_command``; the user-visible contract (exit status,
one ``CommandError:`` line on stderr, no traceback) is checked with real
``manage.py`` subprocesses, which need committed data (``transaction=True``).
"""

from __future__ import annotations

import datetime
import json
import uuid
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from django_dbq.models import Job
from tests.conftest import run_command

UTC = datetime.timezone.utc
KNOWN_NAMES = ", ".join(sorted(settings.JOBS))

# create_job arguments that must fail, and a fragment of the one-line error.
BAD_CREATE_JOB = [
    pytest.param(
        ["noop", "--workspace", "{not json"],
        "--workspace is not valid JSON",
        id="workspace-invalid-json",
    ),
    pytest.param(["noop", "--workspace", '["a", "b"]'], "not a JSON list", id="workspace-list"),
    pytest.param(["noop", "--workspace", '"text"'], "not a JSON str", id="workspace-string"),
    pytest.param(
        ["noop", "--workspace", '{"a": NaN}'], "NaN is not a JSON value", id="workspace-nan"
    ),
    pytest.param(["noop", "--workspace", '{"a": "\\u0000"}'], "NUL character", id="workspace-nul"),
    pytest.param(
        ["noop", "--workspace", '{"a": "\\ud800"}'],
        "not JSON-serialisable",
        id="workspace-lone-surrogate",
    ),
    pytest.param(
        ["no_such_job"],
        f"Unknown job name 'no_such_job'. Known job names: {KNOWN_NAMES}.",
        id="unknown-name",
    ),
    pytest.param([""], f"Unknown job name ''. Known job names: {KNOWN_NAMES}.", id="empty-name"),
    pytest.param(
        ["noop", "--queue_name", "q" * 65],
        "65 characters long; the limit is 64",
        id="queue-name-65-chars",
    ),
    pytest.param(
        ["noop", "--queue_name", ""], "queue_name must be a non-empty string", id="queue-name-empty"
    ),
    pytest.param(
        ["noop", "--run-after", "tomorrow"],
        "--run-after 'tomorrow' is not a date-time",
        id="run-after-garbage",
    ),
    pytest.param(
        ["noop", "--run-after", "2030-02-30T09:00:00"],
        "is not a date-time",
        id="run-after-no-such-day",
    ),
    pytest.param(
        ["noop", "--run-after", ""], "--run-after '' is not a date-time", id="run-after-empty"
    ),
    pytest.param(
        ["noop", "--run-after", "+99999999999w"], "too far in the future", id="run-after-overflow"
    ),
    pytest.param(
        ["noop", "--priority", "high"],
        "--priority must be a whole number, not 'high'",
        id="priority-word",
    ),
    pytest.param(
        ["noop", "--priority", "1.5"],
        "--priority must be a whole number, not '1.5'",
        id="priority-fraction",
    ),
    pytest.param(["noop", "--priority", "99999999999"], "out of range", id="priority-too-big"),
]

BAD_HOURS = [
    pytest.param("-1", "--hours must be zero or more, not '-1'", id="negative"),
    pytest.param("abc", "--hours must be a number, not 'abc'", id="garbage"),
    pytest.param("nan", "--hours must be zero or more, not 'nan'", id="nan"),
    pytest.param("inf", "--hours must be zero or more, not 'inf'", id="infinity"),
    pytest.param("1e12", "reaches back before the year 1", id="too-large"),
]


def command(*args: str) -> str:
    """Run a command in-process; return its stdout."""
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def make_job(state, *, age_hours: float = 0, **fields) -> Job:
    job = Job.objects.create(name="noop", **fields)
    Job.objects.filter(pk=job.pk).update(
        state=state, created=timezone.now() - datetime.timedelta(hours=age_hours)
    )
    return job


def assert_command_error(result, fragment: str) -> None:
    """Exit status 1, and one ``CommandError: ...`` line on stderr, no traceback."""
    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("CommandError: ")
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr


# --- create_job ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_job_prints_the_new_jobs_id():
    out = command("create_job", "noop")

    job = Job.objects.get()
    assert out == f"{job.pk}\n"
    assert uuid.UUID(out.strip()) == job.pk
    assert (job.name, job.state, job.queue_name, job.priority, job.workspace, job.run_after) == (
        "noop",
        Job.STATES.NEW,
        "default",
        0,
        {},
        None,
    )


@pytest.mark.django_db
def test_create_job_with_every_option():
    out = command(
        "create_job",
        "chain",
        "--queue_name",
        "emails",
        "--workspace",
        '{"to": "a@example.com"}',
        "--priority",
        "-5",
        "--run-after",
        "2030-01-31T09:00:00+00:00",
    )

    job = Job.objects.get(pk=out.strip())
    assert job.queue_name == "emails"
    assert job.workspace == {"to": "a@example.com", "created_by_hook": True}
    assert job.priority == -5
    assert job.run_after == datetime.datetime(2030, 1, 31, 9, 0, tzinfo=UTC)
    assert job.next_task == "tests.tasks.step_one"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args",
    [
        ["--queue-name", "emails", "--run_after", "2030-01-31T09:00:00Z"],
        ["--queue_name=emails", "--run-after=2030-01-31T09:00:00Z"],
    ],
    ids=["dash-and-underscore-spellings", "equals-form"],
)
def test_create_job_option_spellings(args):
    out = command("create_job", "noop", *args)

    job = Job.objects.get(pk=out.strip())
    assert job.queue_name == "emails"
    assert job.run_after == datetime.datetime(2030, 1, 31, 9, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_create_job_relative_run_after():
    before = timezone.now()
    out = command("create_job", "noop", "--run-after", "+10m")
    after = timezone.now()

    run_after = Job.objects.get(pk=out.strip()).run_after
    ten = datetime.timedelta(minutes=10)
    assert before + ten <= run_after <= after + ten


@pytest.mark.django_db
def test_create_job_accepts_a_large_valid_workspace():
    """A big workspace is not bad input: any valid JSON object is stored whole."""
    workspace = {"rows": ["x" * 1000 for _ in range(2000)]}  # about 2 MB

    out = command("create_job", "noop", "--workspace", json.dumps(workspace))

    assert Job.objects.get(pk=out.strip()).workspace == workspace


@pytest.mark.django_db
@pytest.mark.parametrize(("args", "fragment"), BAD_CREATE_JOB)
def test_create_job_bad_input_is_a_one_line_command_error_and_writes_nothing(args, fragment):
    with pytest.raises(CommandError) as excinfo:
        command("create_job", *args)

    message = str(excinfo.value)
    assert fragment in message
    assert "\n" not in message
    assert Job.objects.count() == 0


# --- delete_old_jobs -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_delete_old_jobs_deletes_old_finished_jobs_and_prints_the_count():
    make_job(Job.STATES.COMPLETED, age_hours=25)
    make_job(Job.STATES.FAILED, age_hours=100)
    kept = {
        make_job(Job.STATES.COMPLETED, age_hours=23).pk,
        make_job(Job.STATES.NEW, age_hours=100).pk,
        make_job(Job.STATES.PROCESSING, age_hours=100).pk,
    }

    out = command("delete_old_jobs")

    assert out == "Deleted 2 job(s) finished and created more than 24h ago\n"
    assert set(Job.objects.values_list("pk", flat=True)) == kept


@pytest.mark.django_db
def test_delete_old_jobs_with_hours():
    make_job(Job.STATES.COMPLETED, age_hours=3)
    make_job(Job.STATES.FAILED, age_hours=1)

    assert command("delete_old_jobs", "--hours", "2.5") == (
        "Deleted 1 job(s) finished and created more than 2.5h ago\n"
    )
    assert command("delete_old_jobs", "--hours=0") == (
        "Deleted 1 job(s) finished and created more than 0h ago\n"
    )
    assert Job.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(("hours", "fragment"), BAD_HOURS)
def test_delete_old_jobs_bad_hours_is_a_command_error_and_deletes_nothing(hours, fragment):
    make_job(Job.STATES.COMPLETED, age_hours=100)

    with pytest.raises(CommandError) as excinfo:
        command("delete_old_jobs", "--hours", hours)

    assert fragment in str(excinfo.value)
    assert "\n" not in str(excinfo.value)
    assert Job.objects.count() == 1


# --- queue_depth ---------------------------------------------------------------------------------


@pytest.fixture
def queued_jobs():
    future = timezone.now() + datetime.timedelta(hours=1)
    make_job(Job.STATES.NEW)
    make_job(Job.STATES.READY)
    make_job(Job.STATES.NEW, run_after=future)
    make_job(Job.STATES.PROCESSING)
    make_job(Job.STATES.COMPLETED)
    make_job(Job.STATES.NEW, queue_name="emails")
    make_job(Job.STATES.FAILED, queue_name="reports")


@pytest.mark.django_db
def test_queue_depth_lists_every_waiting_queue_and_default(queued_jobs):
    assert command("queue_depth") == "event=queue_depths default=3 emails=1\n"


@pytest.mark.django_db
def test_queue_depth_of_an_empty_table_still_reports_default():
    assert command("queue_depth") == "event=queue_depths default=0\n"


@pytest.mark.django_db
def test_queue_depth_named_queues_appear_in_order_even_at_zero(queued_jobs):
    assert command("queue_depth", "other", "default", "reports") == (
        "event=queue_depths other=0 default=3 reports=0\n"
    )


@pytest.mark.django_db
@pytest.mark.parametrize("flag", ["--exclude_future_jobs", "--exclude-future-jobs"])
def test_queue_depth_exclude_future_jobs(queued_jobs, flag):
    assert command("queue_depth", "default", "emails", flag) == (
        "event=queue_depths default=2 emails=1\n"
    )


# --- real subprocesses: exit status, stdout and stderr as a user sees them -----------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_create_job_process_prints_the_id_and_exits_0():
    result = run_command("create_job", "noop", "--workspace", '{"n": 1}', "--queue_name", "emails")

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    job = Job.objects.get()
    assert result.stdout == f"{job.pk}\n"
    assert (job.workspace, job.queue_name) == ({"n": 1}, "emails")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_create_job_process_accepts_a_large_workspace():
    # An argument may be at most 128 KiB long on Linux; stay under it.
    workspace = {"rows": ["x" * 1000 for _ in range(100)]}

    result = run_command("create_job", "noop", "--workspace", json.dumps(workspace))

    assert result.returncode == 0, result.stderr
    assert Job.objects.get(pk=result.stdout.strip()).workspace == workspace


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("args", "fragment"), BAD_CREATE_JOB)
def test_create_job_process_bad_input_exits_1_with_one_line_and_writes_nothing(args, fragment):
    result = run_command("create_job", *args)

    assert_command_error(result, fragment)
    assert Job.objects.count() == 0


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_delete_old_jobs_process_prints_the_count():
    make_job(Job.STATES.COMPLETED, age_hours=30)
    make_job(Job.STATES.FAILED, age_hours=30)
    waiting = make_job(Job.STATES.NEW, age_hours=30)

    result = run_command("delete_old_jobs", "--hours", "24")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "Deleted 2 job(s) finished and created more than 24h ago\n"
    assert list(Job.objects.values_list("pk", flat=True)) == [waiting.pk]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("hours", "fragment"), BAD_HOURS)
def test_delete_old_jobs_process_bad_hours_exits_1_and_deletes_nothing(hours, fragment):
    make_job(Job.STATES.COMPLETED, age_hours=100)

    result = run_command("delete_old_jobs", "--hours", hours)

    assert_command_error(result, fragment)
    assert Job.objects.count() == 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_queue_depth_process_output(queued_jobs):
    result = run_command("queue_depth", "default", "other")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "event=queue_depths default=3 other=0\n"
    assert result.stderr == ""
