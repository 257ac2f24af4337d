"""django_dbq.admin.jobs: the Job list (columns, filters, search), the add and change
pages, who may do what, and escaping, on every database (run this module with each
DATABASE_URL)."""

from __future__ import annotations

import html
import uuid

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from django_dbq import store
from django_dbq.models import Job
from tests.admin.conftest import (
    add_url,
    change_url,
    changelist_url,
    completed_job,
    delete_url,
    failed_job,
    history_url,
    later,
    processing_job,
)

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert('dbq')</script>"


def listed(response) -> set[str]:
    """The ids of the jobs a list page shows."""
    return {str(job.pk) for job in response.context["cl"].result_list}


# --- every page, every database --------------------------------------------------------------


@pytest.mark.parametrize("time_zone", ["UTC", "Europe/Berlin"])
def test_every_page_answers_on_this_database_whatever_the_time_zone(
    admin_client, jobs_in_every_state, settings, time_zone
):
    """MariaDB without time zone tables failed the list (date_hierarchy) outside UTC."""
    settings.TIME_ZONE = time_zone
    pages = [changelist_url(), add_url()]
    for query in (
        {"state__exact": "FAILED"},
        {"queue_name": "default"},
        {"name": "chain"},
        {"scheduled": "future"},
        {"scheduled": "due"},
        {"errors": "yes"},
        {"errors": "no"},
        {"q": "noop"},
        {"o": "-8"},
    ):
        pages.append(changelist_url(**query))
    for job in jobs_in_every_state.values():
        pages += [change_url(job), history_url(job)]
    pages.append(delete_url(jobs_in_every_state["completed"]))
    for url in pages:
        assert admin_client.get(url).status_code == 200, url


def test_the_list_has_no_date_hierarchy_which_needs_time_zone_support_in_the_database(
    admin_client,
):
    response = admin_client.get(changelist_url())
    assert response.context["cl"].date_hierarchy is None


# --- the list ---------------------------------------------------------------------------------


def test_the_list_shows_state_attempts_step_schedule_time_error_and_worker(
    admin_client, jobs_in_every_state
):
    response = admin_client.get(changelist_url())
    page = response.content.decode()

    for state in ("new", "ready", "processing", "completed", "failed"):
        assert f'class="dbq-state dbq-state-{state}"' in page or state == "ready"
    rows = {row["id"]: row for row in _rows(response)}
    failed = rows[str(jobs_in_every_state["failed"].pk)[:8]]
    assert failed["attempts"] == "2/2"
    assert failed["step"] == "2/2"
    assert failed["last error"] == "task failed on purpose"
    assert failed["time"].startswith("took ")
    scheduled = rows[str(jobs_in_every_state["scheduled"].pk)[:8]]
    assert scheduled["runs"] in ("in 59 min", "in 60 min")
    assert scheduled["time"] == "scheduled"
    assert scheduled["step"] == "1/3"
    assert rows[str(jobs_in_every_state["new"].pk)[:8]]["time"].startswith("waiting ")
    held = rows[str(jobs_in_every_state["processing"].pk)[:8]]
    assert held["worker"] == "host-1:4242:abcdef"
    assert held["time"].startswith("running ")
    assert rows[str(jobs_in_every_state["completed"].pk)[:8]]["step"] == "-"  # none


def _rows(response) -> list[dict[str, str]]:
    """The list's cells as text, by column header, from the rendered result table."""
    from django.contrib.admin.templatetags.admin_list import result_headers, results

    cl = response.context["cl"]
    headers = [h["text"] for h in result_headers(cl)]
    rows = []
    for row in results(cl):
        cells = [html.unescape(_strip_tags(str(cell))).strip() for cell in row]
        rows.append(dict(zip(headers[1:], cells[1:], strict=True)))  # [0]: the checkbox
    return rows


def _strip_tags(text: str) -> str:
    from django.utils.html import strip_tags

    return strip_tags(text)


def test_the_step_of_a_job_whose_step_is_null_is_the_first_position_of_its_next_task(
    admin_client,
):
    job = Job.objects.create(name="chain")
    Job.objects.filter(pk=job.pk).update(step=None, next_task="tests.tasks.step_two")
    [row] = _rows(admin_client.get(changelist_url()))
    assert row["step"] == "2/3"


def test_the_worker_is_shown_only_while_it_holds_the_job(admin_client):
    processing_job()
    released = processing_job("other")
    store.release("host-1:4242:abcdef", [released.pk])

    rows = _rows(admin_client.get(changelist_url()))

    assert sorted(row["worker"] for row in rows) == ["-", "host-1:4242:abcdef"]


def test_filters_by_state_queue_name_schedule_errors_and_context_type(admin_client):
    user = User.objects.create_user("someone")
    failed = failed_job()
    scheduled = Job.objects.create(name="noop", queue_name="mail", run_after=later())
    plain = Job.objects.create(name="chain")
    with_context = Job.objects.create(name="noop", context_object=user)

    def shown(**query):
        return listed(admin_client.get(changelist_url(**query)))

    every = {str(j.pk) for j in (failed, scheduled, plain, with_context)}
    assert shown() == every
    assert shown(state__exact="FAILED") == {str(failed.pk)}
    assert shown(queue_name="mail") == {str(scheduled.pk)}
    assert shown(name="chain") == {str(plain.pk)}
    assert shown(scheduled="future") == {str(scheduled.pk)}
    assert shown(scheduled="due") == every - {str(scheduled.pk)}
    assert shown(errors="yes") == {str(failed.pk)}
    assert shown(errors="no") == every - {str(failed.pk)}
    user_type = ContentType.objects.get_for_model(User)
    assert shown(context_type__id__exact=str(user_type.pk)) == {str(with_context.pk)}


def test_the_job_name_filter_lists_the_jobs_names_without_reading_the_table(admin_client):
    response = admin_client.get(changelist_url())
    [name_filter] = [f for f in response.context["cl"].filter_specs if f.title == "job name"]
    names = [choice["display"] for choice in name_filter.choices(response.context["cl"])]
    assert "admin_flaky" in names and "django_dbq.tasks" in names


def test_search_finds_a_job_by_its_whole_id_its_name_or_its_context_id(admin_client):
    user = User.objects.create_user("someone")
    by_id = Job.objects.create(name="noop")
    by_name = Job.objects.create(name="demo_greeting", workspace={"name": "Ada"})
    by_context = Job.objects.create(name="noop", context_object=user)

    def found(term):
        return listed(admin_client.get(changelist_url(q=term)))

    assert found(str(by_id.pk)) == {str(by_id.pk)}
    assert found("greet") == {str(by_name.pk)}
    assert found(str(user.pk)) == {str(by_context.pk)}
    assert found("not-a-uuid") == set()
    assert found(str(uuid.uuid4())) == set()


# --- add ----------------------------------------------------------------------------------------


def test_adding_a_job_with_an_unknown_name_is_a_form_error_not_a_server_error(admin_client):
    """It was HTTP 500 (UnknownJobError): the name was free text."""
    response = admin_client.post(
        add_url(),
        {"name": "no_such_job", "queue_name": "default", "priority": "0", "workspace": "{}"},
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "no_such_job is not one of the available choices" in str(errors["name"])
    assert not Job.objects.exists()


def test_the_job_name_is_a_choice_of_the_jobs_names(admin_client):
    form = admin_client.get(add_url()).context["adminform"].form
    names = [value for value, _ in form.fields["name"].choices]
    assert names[0] == ""
    assert {"noop", "chain", "admin_flaky"} <= set(names)
    assert "django_dbq.tasks" not in names  # built in: made by the tasks backend only


def test_adding_a_job_validates_it_and_runs_its_creation_hook_once(admin_client):
    response = admin_client.post(
        add_url(),
        {
            "name": "chain",
            "queue_name": "mail",
            "priority": "3",
            "workspace": '{"to": "ada@example.com"}',
        },
    )
    assert response.status_code == 302
    job = Job.objects.get()
    assert (job.name, job.queue_name, job.priority, job.state) == ("chain", "mail", 3, "NEW")
    assert job.workspace == {"to": "ada@example.com", "created_by_hook": True}
    assert (job.next_task, job.step) == ("tests.tasks.step_one", 0)
    assert LogEntry.objects.get().object_id == str(job.pk)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("workspace", "[1, 2]", "must be a dict"),
        ("workspace", "{'single': 'quotes'}", "Enter a valid JSON"),
        ("workspace", '{"x": NaN}', "not JSON-serialisable"),
        ("workspace", "[" * 100_000, "nested too deeply"),
        ("workspace", '{"deep": ' + "[" * 40 + "]" * 40 + "}", "levels deep"),
        ("queue_name", "", "This field is required"),
        ("priority", "99999999999", "out of range"),
    ],
)
def test_a_bad_value_on_the_add_page_is_a_form_error(admin_client, field, value, message):
    data = {"name": "noop", "queue_name": "default", "priority": "0", "workspace": "{}"}
    data[field] = value
    response = admin_client.post(add_url(), data)
    assert response.status_code == 200
    assert message in str(response.context["adminform"].form.errors[field])
    assert not Job.objects.exists()


def test_a_creation_hook_that_leaves_a_bad_workspace_is_a_message_not_a_server_error(
    admin_client, monkeypatch
):
    def bad_hook(job):
        job.workspace = {"bad": float("nan")}

    monkeypatch.setattr("tests.tasks.creation_hook", bad_hook)
    from django_dbq import job_types

    job_types.resolve.cache_clear()
    try:
        response = admin_client.post(
            add_url(),
            {"name": "chain", "queue_name": "default", "priority": "0", "workspace": "{}"},
            follow=True,
        )
    finally:
        job_types.resolve.cache_clear()
    assert response.status_code == 200
    assert "The job was not created" in response.content.decode()
    assert not Job.objects.exists()


# --- change -------------------------------------------------------------------------------------


def test_the_state_is_never_a_form_field():
    from django_dbq.admin.forms import JobAddForm, JobChangeForm

    assert "state" not in JobAddForm.base_fields
    assert "state" not in JobChangeForm.base_fields


def test_a_job_cannot_be_set_processing_by_hand(admin_client):
    job = Job.objects.create(name="noop")
    data = _change_data(admin_client, job, state="PROCESSING")

    response = admin_client.post(change_url(job), data)

    assert response.status_code == 302
    assert Job.objects.get(pk=job.pk).state == Job.STATES.NEW


def _change_data(client: Client, job: Job, **changes: str) -> dict[str, str]:
    """What the change page's form would post, as rendered, with ``changes``."""
    form = client.get(change_url(job)).context["adminform"].form
    data = {}
    for bound in form:
        for widget in bound.subwidgets:
            value = widget.data["value"]
            data[widget.data["name"]] = "" if value is None else value
    data.update(changes)
    return data


def test_a_waiting_job_is_edited_and_the_edit_is_in_its_history(admin_client):
    job = Job.objects.create(name="noop", workspace={"a": 1})
    data = _change_data(admin_client, job, priority="7", workspace='{"a": 2}')

    response = admin_client.post(change_url(job), data)

    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.priority, job.workspace, job.state) == (7, {"a": 2}, Job.STATES.NEW)
    entry = LogEntry.objects.get(action_flag=CHANGE)
    assert "Priority" in entry.get_change_message()


def test_the_workspace_is_edited_as_pretty_printed_json(admin_client):
    job = Job.objects.create(name="noop", workspace={"a": [1, 2], "b": "é"})
    page = admin_client.get(change_url(job)).content.decode()
    assert escape('{\n  "a": [\n    1,\n    2\n  ],\n  "b": "é"\n}') in page


def test_an_edit_is_refused_when_a_worker_claimed_the_job_while_the_page_was_open(
    admin_client,
):
    job = Job.objects.create(name="noop")
    data = _change_data(admin_client, job, priority="7")
    store.claim("a-worker", ["default"], 1, 30)

    response = admin_client.post(change_url(job), data, follow=True)

    assert "This job is now PROCESSING" in response.content.decode()
    assert response.context["has_change_permission"] is False  # shown read-only
    job.refresh_from_db()
    assert (job.priority, job.state) == (0, Job.STATES.PROCESSING)


def test_an_edit_is_refused_when_the_job_changed_while_the_page_was_open(admin_client):
    job = failed_job()
    data = _change_data(admin_client, job, priority="7")
    store.retry_failed([job.pk], by="someone else")

    response = admin_client.post(change_url(job), data)

    assert response.status_code == 200
    assert "This job changed since you opened this page" in str(
        response.context["adminform"].form.errors
    )
    assert Job.objects.get(pk=job.pk).priority == 0


def test_an_edit_that_loses_the_race_after_validation_writes_nothing(admin_client, monkeypatch):
    job = Job.objects.create(name="noop")
    data = _change_data(admin_client, job, priority="7")
    real_edit = store.edit

    def claimed_first(*args, **kwargs):
        store.claim("a-worker", ["default"], 1, 30)
        return real_edit(*args, **kwargs)

    monkeypatch.setattr(store, "edit", claimed_first)
    response = admin_client.post(change_url(job), data, follow=True)

    assert "nothing was saved" in response.content.decode()
    assert Job.objects.get(pk=job.pk).priority == 0
    assert not LogEntry.objects.filter(action_flag=CHANGE).exists()


@pytest.mark.parametrize("state", ["processing", "completed"])
def test_a_job_a_worker_holds_or_completed_is_shown_read_only(
    admin_client, jobs_in_every_state, state
):
    job = jobs_in_every_state[state]
    response = admin_client.get(change_url(job))
    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    response = admin_client.post(change_url(job), {"priority": "5"}, follow=True)
    assert f"This job is now {job.state}: it can no longer be changed here" in (
        response.content.decode()
    )
    assert Job.objects.get(pk=job.pk).priority == 0


def test_the_change_page_shows_each_error_as_its_own_block_with_its_traceback(admin_client):
    job = failed_job()
    page = admin_client.get(change_url(job)).content.decode()

    assert page.count('class="dbq-error"') == 2
    for text in (
        "attempt 2",
        "attempt 1",
        "builtins.ValueError",
        "task failed on purpose",
        "tests.tasks.fail",
        'class="dbq-traceback"',
        "Traceback (most recent call last)",
    ):
        assert text in page
    assert "\\n" not in page.split('class="dbq-errors"')[1]  # real line breaks


def test_the_change_page_shows_the_timeline(admin_client):
    job = failed_job()
    page = admin_client.get(change_url(job)).content.decode()
    for label in (
        "Created",
        "Last attempt started",
        "Finished",
        "Last attempt ran",
        "Created to finished",
    ):
        assert f'<th scope="row">{label}</th>' in page


def test_the_change_page_links_to_the_context_object(admin_client):
    user = User.objects.create_user("ada")
    job = Job.objects.create(name="noop", context_object=user)
    page = admin_client.get(change_url(job)).content.decode()
    assert f'href="/admin/auth/user/{user.pk}/change/"' in page


def test_a_missing_context_object_is_said_to_be_missing(admin_client):
    user = User.objects.create_user("ada")
    job = Job.objects.create(name="noop", context_object=user)
    Job.objects.filter(pk=job.pk).update(context_id="not-a-number")
    page = admin_client.get(change_url(job)).content.decode()
    assert "(not found)" in page


# --- delete -------------------------------------------------------------------------------------


def test_only_a_finished_job_can_be_deleted(admin_client, jobs_in_every_state):
    for state in ("new", "scheduled", "processing"):
        job = jobs_in_every_state[state]
        assert admin_client.get(delete_url(job)).status_code == 403
        response = admin_client.post(delete_url(job), {"post": "yes"}, follow=True)
        assert "it can no longer be deleted here" in response.content.decode()
        assert Job.objects.filter(pk=job.pk).exists()
    done = jobs_in_every_state["completed"]
    assert admin_client.post(delete_url(done), {"post": "yes"}).status_code == 302
    assert not Job.objects.filter(pk=done.pk).exists()


def test_a_job_retried_while_its_delete_page_was_open_is_not_deleted(admin_client):
    job = failed_job()
    assert admin_client.get(delete_url(job)).status_code == 200
    store.retry_failed([job.pk], by="someone else")

    response = admin_client.post(delete_url(job), {"post": "yes"}, follow=True)

    assert "This job is now READY" in response.content.decode()
    assert Job.objects.get(pk=job.pk).state == Job.STATES.READY


# --- who may do what ----------------------------------------------------------------------------


def test_a_user_who_is_not_staff_is_sent_to_the_login_page(client):
    client.force_login(User.objects.create_user("visitor"))
    response = client.get(changelist_url())
    assert response.status_code == 302
    assert response.url.startswith("/admin/login/")


def test_a_view_only_user_sees_jobs_but_no_actions_and_cannot_change_them(
    viewer_client, jobs_in_every_state
):
    response = viewer_client.get(changelist_url())
    assert response.status_code == 200
    assert response.context["action_form"] is None
    assert 'name="_selected_action"' not in response.content.decode()
    job = jobs_in_every_state["new"]
    assert viewer_client.get(change_url(job)).context["has_change_permission"] is False
    assert viewer_client.post(change_url(job), {"priority": "5"}).status_code == 403
    assert viewer_client.get(add_url()).status_code == 403


def test_an_operator_sees_the_five_actions_and_not_djangos_delete_selected(operator_client):
    response = operator_client.get(changelist_url())
    choices = [name for name, _ in response.context["action_form"].fields["action"].choices]
    assert choices == [
        "",
        "retry_failed",
        "run_now",
        "cancel_waiting",
        "request_stop",
        "delete_finished",
    ]


# --- escaping -----------------------------------------------------------------------------------


def test_a_script_in_a_workspace_or_an_error_is_shown_escaped_everywhere(admin_client):
    waiting = Job.objects.create(name="noop", workspace={"html": SCRIPT}, queue_name="q")
    job = failed_job(workspace={"html": SCRIPT})
    Job.objects.filter(pk=job.pk).update(
        errors=[
            {
                "attempt": 1,
                "type": SCRIPT,
                "message": SCRIPT,
                "message_line": SCRIPT,
                "traceback": SCRIPT,
                "worker": SCRIPT,
                "task": SCRIPT,
                "at": SCRIPT,
            },
            SCRIPT,
        ],
        lease_owner=SCRIPT,
    )
    pages = [
        changelist_url(),
        change_url(job),
        change_url(waiting),
        changelist_url(q=SCRIPT),
    ]
    for url in pages:
        page = admin_client.get(url).content.decode()
        assert "<script>alert" not in page, url
    list_page = admin_client.get(changelist_url()).content.decode()
    assert "&lt;script&gt;alert(&#x27;dbq&#x27;)&lt;/script&gt;" in list_page
    completed = completed_job()
    Job.objects.filter(pk=completed.pk).update(workspace={"html": SCRIPT})
    assert "<script>alert" not in admin_client.get(change_url(completed)).content.decode()


def test_times_in_the_list_do_not_depend_on_the_database_clock(admin_client):
    job = Job.objects.create(name="noop")
    Job.objects.filter(pk=job.pk).update(created=timezone.now() - timezone.timedelta(hours=3))
    [row] = _rows(admin_client.get(changelist_url()))
    assert row["time"] == "waiting 3 h"
