"""django_dbq.admin.display: durations, relative times, steps and attempts as the list
shows them."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from django_dbq.admin import display
from django_dbq.models import Job

NOW = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.25, "250 ms"),
        (3.25, "3.2 s"),
        (42, "42 s"),
        (300, "5 min"),
        (3600 * 3 + 600, "3 h 10 min"),
        (3600 * 5, "5 h"),
        (86400 * 2 + 3600 * 4, "2 d 4 h"),
        (-5, "0 ms"),
    ],
)
def test_durations_are_short(seconds, text):
    assert display.duration(seconds) == text


def test_moments_are_relative_to_now():
    assert display.relative(NOW + datetime.timedelta(minutes=5), NOW) == "in 5 min"
    assert display.relative(NOW - datetime.timedelta(hours=2), NOW) == "2 h ago"
    assert display.relative(NOW, NOW) == "now"
    assert display.relative(None, NOW) == ""


def test_an_unknown_state_still_gets_a_badge():
    assert "dbq-state-stopping" in display.state_badge("STOPPING")


def test_the_step_and_attempts_of_a_job_whose_type_jobs_no_longer_lists():
    job = Job(name="gone", next_task="app.tasks.x", attempts=1)
    assert display.step(job) == "?"
    assert display.attempts(job) == "1/?"


def test_the_step_of_a_task_its_chain_no_longer_lists():
    job = Job(name="chain", next_task="tests.tasks.removed", step=1)
    assert display.step(job) == "?/3"


def test_a_broken_jobs_setting_does_not_break_the_list(settings):
    settings.JOBS = {"broken": {"tasks": []}}
    job = Job(name="broken", next_task="x")
    assert display.attempts(job) == "0/?"
    assert display.step(job) == "?"


def test_the_last_error_is_one_short_line():
    job = Job(errors=[{"message": "first line\nsecond line"}])
    assert display.last_error(job) == "first line"
    job = Job(errors=[{"message_line": "x" * 200}])
    assert display.last_error(job) == "x" * 89 + "…"
    assert display.last_error(Job(errors=["not a record"])) == "not a record"
    assert display.last_error(Job(errors=None)) == ""


def test_how_long_a_job_waited_ran_or_took():
    created = NOW - datetime.timedelta(minutes=10)
    assert display.elapsed(Job(state="NEW", created=created), NOW) == "waiting 10 min"
    scheduled = Job(state="READY", created=created, run_after=NOW + datetime.timedelta(hours=1))
    assert display.elapsed(scheduled, NOW) == "scheduled"
    running = Job(
        state="PROCESSING", created=created, started_at=NOW - datetime.timedelta(seconds=30)
    )
    assert display.elapsed(running, NOW) == "running 30 s"
    done = Job(
        state="COMPLETED",
        created=created,
        started_at=created,
        finished_at=created + datetime.timedelta(seconds=2),
    )
    assert display.elapsed(done, NOW) == "took 2.0 s"


def test_error_records_are_shown_newest_first_with_their_notes():
    job = Job(
        errors=[
            {"attempt": 1, "message": "lost", "rescued_by": "w2", "charged": False},
            {
                "attempt": 1,
                "message": "no",
                "cancelled_by": "admin user ada",
                "at": timezone.now().isoformat(),
            },
        ]
    )
    first, second = display.error_records(job)
    assert (first["number"], first["notes"]) == (2, ["cancelled by admin user ada"])
    assert second["notes"] == ["rescued by worker w2", "the attempt was not counted"]
