"""django_dbq.admin.actions: retry, run now, cancel and delete from the Job list, each
confirmed on its own page, race-safe, counted in its message and kept in the admin's
history; only for users with the permission, only through a POST with CSRF."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client

from django_dbq import store
from django_dbq.models import CancelRequest, Job
from tests import tasks
from tests.admin.conftest import (
    changelist_url,
    completed_job,
    failed_job,
    later,
    processing_job,
)

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert('dbq')</script>"


def choose(client: Client, action: str, jobs, **extra):
    """The first step: the action chosen in the list's action bar ("Go")."""
    data = {"action": action, "_selected_action": [str(j.pk) for j in jobs], "index": "0"}
    return client.post(changelist_url(**extra.pop("query", {})), {**data, **extra})


def confirm(client: Client, action: str, jobs, **extra):
    """The second step: "Yes" on the confirmation page."""
    data = {"action": action, "_selected_action": [str(j.pk) for j in jobs], "post": "yes"}
    return client.post(changelist_url(**extra.pop("query", {})), {**data, **extra})


def message(response) -> str:
    """The last message the response left for the user."""
    return [str(m) for m in get_messages(response.wsgi_request)][-1]


def state(job: Job) -> str:
    return Job.objects.get(pk=job.pk).state


# --- the confirmation page ----------------------------------------------------------------------


def test_choosing_an_action_shows_a_confirmation_page_and_changes_nothing(admin_client):
    failed = failed_job()
    waiting = Job.objects.create(name="noop")

    response = choose(admin_client, "retry_failed", [failed, waiting])

    assert response.status_code == 200
    assert response.templates[0].name == "admin/django_dbq/job/action_confirmation.html"
    page = response.content.decode()
    assert "2 jobs selected" in page
    assert "<strong>1</strong> will be changed now" in page
    assert "<strong>1</strong> will be left alone" in page
    assert page.count('name="_selected_action"') == 2
    assert 'name="post" value="yes"' in page
    assert 'name="csrfmiddlewaretoken"' in page
    assert (state(failed), state(waiting)) == ("FAILED", "NEW")


def test_the_confirmation_page_escapes_what_it_shows(admin_client):
    job = Job.objects.create(name="noop", queue_name=SCRIPT)
    page = choose(admin_client, "cancel_waiting", [job]).content.decode()
    assert "<script>alert" not in page
    assert "&lt;script&gt;" in page


def test_selecting_every_job_that_matches_the_filter_is_confirmed_as_such(admin_client):
    failed = [failed_job("failing") for _ in range(3)]
    Job.objects.create(name="noop")

    query = {"state__exact": "FAILED"}
    page = choose(
        admin_client, "retry_failed", failed[:1], select_across="1", query=query
    ).content.decode()
    assert "All 3 jobs that match the list" in page
    assert 'name="select_across" value="1"' in page

    response = confirm(admin_client, "retry_failed", failed[:1], select_across="1", query=query)

    assert Job.objects.filter(state=Job.STATES.READY).count() == 3
    assert "Retried 3 jobs." in message(response)


# --- each action --------------------------------------------------------------------------------


def test_retry_puts_failed_jobs_back_to_run_now_and_records_it(admin_client):
    failed = failed_job()
    waiting = Job.objects.create(name="noop")

    response = confirm(admin_client, "retry_failed", [failed, waiting])

    assert response.status_code == 302
    failed.refresh_from_db()
    assert (failed.state, failed.attempts, failed.run_after) == ("READY", 0, None)
    assert len(failed.errors) == 2
    assert message(response) == (
        "Retried 1 job. 1 skipped: not FAILED (or a tracked operation, which cannot run "
        "again) when the action ran (a worker may have taken them meanwhile)."
    )
    entry = LogEntry.objects.get()
    assert (entry.object_id, entry.action_flag) == (str(failed.pk), CHANGE)
    assert entry.user.username == "admin"
    assert "Retried from the admin" in entry.get_change_message()


def test_run_now_clears_run_after_of_scheduled_jobs(admin_client):
    scheduled = Job.objects.create(name="noop", run_after=later())

    response = confirm(admin_client, "run_now", [scheduled])

    assert Job.objects.get(pk=scheduled.pk).run_after is None
    assert message(response) == "Cleared the run_after of 1 job."
    assert LogEntry.objects.get().object_id == str(scheduled.pk)


def test_cancel_fails_waiting_jobs_saying_who_cancelled_them_without_the_failure_hook(
    admin_client,
):
    waiting = Job.objects.create(name="failing")
    scheduled = Job.objects.create(name="failing", run_after=later())
    running = processing_job()

    response = confirm(admin_client, "cancel_waiting", [waiting, scheduled, running])

    for job in (waiting, scheduled):
        job.refresh_from_db()
        assert job.state == "FAILED"
        assert job.errors[-1]["cancelled_by"] == "admin user admin"
        assert "Cancelled by admin user admin" in job.errors[-1]["message"]
    assert state(running) == "PROCESSING"
    assert "Cancelled 2 jobs. 1 skipped: not waiting (NEW or READY)" in message(response)
    assert not [call for call in tasks.calls if call[0] == "failure_hook"]
    assert LogEntry.objects.filter(action_flag=CHANGE).count() == 2


def test_stop_asks_running_jobs_to_stop_and_leaves_the_others(admin_client):
    waiting = Job.objects.create(name="noop")
    running = processing_job()

    response = confirm(admin_client, "request_stop", [waiting, running])

    assert state(running) == "PROCESSING"  # its worker ends it (tests/runtime/test_flow.py)
    assert state(waiting) == "NEW"
    request = CancelRequest.objects.get()
    assert (request.job_id, request.requested_by) == (running.pk, "admin user admin")
    assert "Asked to stop: 1 job. 1 skipped: not running (PROCESSING)" in message(response)
    assert LogEntry.objects.filter(action_flag=CHANGE).count() == 1


def test_delete_removes_finished_jobs_and_records_each_deletion(admin_client):
    done = completed_job()
    failed = failed_job()
    waiting = Job.objects.create(name="noop")

    response = confirm(admin_client, "delete_finished", [done, failed, waiting])

    assert list(Job.objects.all()) == [waiting]
    assert "Deleted 2 jobs. 1 skipped" in message(response)
    deletions = LogEntry.objects.filter(action_flag=DELETION)
    assert {e.object_id for e in deletions} == {str(done.pk), str(failed.pk)}


# --- races --------------------------------------------------------------------------------------


def test_a_job_a_worker_claimed_after_the_confirmation_page_is_left_alone(admin_client):
    waiting = Job.objects.create(name="noop", queue_name="busy")
    other = Job.objects.create(name="noop")
    choose(admin_client, "cancel_waiting", [waiting, other])
    store.claim("a-worker", ["busy"], 1, 30)  # before the operator confirms

    response = confirm(admin_client, "cancel_waiting", [waiting, other])

    assert (state(waiting), state(other)) == ("PROCESSING", "FAILED")
    assert Job.objects.get(pk=waiting.pk).errors == []
    assert message(response).startswith("Cancelled 1 job. 1 skipped")
    assert [e.object_id for e in LogEntry.objects.all()] == [str(other.pk)]


def test_a_job_retried_twice_at_once_is_retried_once(admin_client):
    failed = failed_job()
    confirm(admin_client, "retry_failed", [failed])

    response = confirm(admin_client, "retry_failed", [failed])

    assert message(response).startswith("Retried 0 jobs. 1 skipped")
    assert LogEntry.objects.count() == 1


# --- who may act, and how -----------------------------------------------------------------------


def test_a_view_only_user_cannot_run_an_action_even_by_posting_it(viewer_client):
    waiting = Job.objects.create(name="noop")
    confirm(viewer_client, "cancel_waiting", [waiting])
    assert state(waiting) == "NEW"


def test_deleting_needs_the_delete_permission(client):
    from django.contrib.auth.models import Permission

    user = User.objects.create_user("changer", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_job", "change_job"]))
    client.force_login(user)
    done = completed_job()

    response = client.get(changelist_url())
    choices = [name for name, _ in response.context["action_form"].fields["action"].choices]
    assert "delete_finished" not in choices and "retry_failed" in choices
    confirm(client, "delete_finished", [done])
    assert Job.objects.filter(pk=done.pk).exists()


def test_an_action_posted_without_the_csrf_token_is_refused():
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_superuser("boss"))
    waiting = Job.objects.create(name="noop")

    response = confirm(client, "cancel_waiting", [waiting])

    assert response.status_code == 403
    assert state(waiting) == "NEW"


def test_a_get_never_runs_an_action(admin_client):
    waiting = Job.objects.create(name="noop")
    url = changelist_url(action="cancel_waiting", _selected_action=str(waiting.pk), post="yes")
    assert admin_client.get(url).status_code in (200, 302)
    assert state(waiting) == "NEW"
