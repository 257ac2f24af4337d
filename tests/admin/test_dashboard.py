"""The queue dashboard (admin/django_dbq/job/dashboard/) through Django's test client:
who may see it, that its figures are the jobs', the charts and the live workers, and
pausing and resuming a queue (a POST with the change permission and a CSRF token)."""

from __future__ import annotations

import datetime
import html
import os
import socket
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_dbq.admin import display
from django_dbq.models import Job
from django_dbq.operations import pauses, registry
from django_dbq.records import QueuePause, WorkerRecord
from tests.admin.conftest import (
    _staff,
    changelist_url,
    completed_job,
    failed_job,
    later,
    processing_job,
)

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"


def dashboard_url() -> str:
    return reverse("admin:django_dbq_job_dashboard")


def action_url() -> str:
    return reverse("admin:django_dbq_job_queue_action")


class _Page(HTMLParser):
    """What the tests read from the dashboard's HTML: the figures of each queue row
    (``tr[data-queue] td[data-figure]``), the bars of each chart, the worker rows and
    the pause/resume buttons."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.figures: dict[str, dict[str, str]] = {}
        self.bars: dict[str, int] = {}
        self.workers: dict[str, str] = {}
        self.buttons: list[tuple[str, str]] = []  # (queue, action)
        self._queue: str | None = None
        self._figure: str | None = None
        self._chart: str | None = None
        self._worker: str | None = None
        self._form_queue: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and "data-queue" in a:
            self._queue = a["data-queue"] or ""
            self.figures[self._queue] = {}
        elif tag == "tr" and "data-owner" in a:
            self._worker = a["data-owner"] or ""
            self.workers[self._worker] = ""
        elif tag == "td" and self._queue is not None and "data-figure" in a:
            self._figure = a["data-figure"]
            self.figures[self._queue][self._figure] = ""
        elif tag == "div" and (a.get("id") or "").startswith("dbq-chart-"):
            self._chart = a["id"]
            self.bars[self._chart] = 0
        elif tag == "g" and self._chart and "dbq-bar" in (a.get("class") or "").split():
            self.bars[self._chart] += 1
        elif tag == "input" and a.get("name") == "queue":
            self._form_queue = a.get("value")
        elif tag == "button" and a.get("name") == "action":
            self.buttons.append((self._form_queue or "", a.get("value") or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._figure = None
        elif tag == "tr":
            self._queue = self._worker = None
        elif tag == "div":
            self._chart = None

    def handle_data(self, data: str) -> None:
        if self._figure is not None and self._queue is not None:
            self.figures[self._queue][self._figure] += data.strip()
        if self._worker is not None:
            self.workers[self._worker] += " " + data.strip()


def read(response) -> _Page:
    assert response.status_code == 200, response.status_code
    page = _Page()
    page.feed(response.content.decode())
    return page


def numbers(page: _Page, queue: str) -> dict[str, int]:
    row = page.figures[queue]
    return {name: int(row[name]) for name in row if name != "lag"}


# --- who may see it -------------------------------------------------------------------------


def test_an_operator_and_a_view_only_user_see_the_dashboard(operator_client, viewer_client):
    Job.objects.create(name="noop")
    for client in (operator_client, viewer_client):
        response = client.get(dashboard_url())
        assert response.status_code == 200
        assert "Queue dashboard" in response.content.decode()
        assert "default" in read(response).figures


def test_an_anonymous_visitor_is_sent_to_the_login_page(client, db):
    response = client.get(dashboard_url())
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login") + "?next=")
    assert dashboard_url() in response["Location"]


def test_a_staff_user_without_the_view_permission_is_refused(client, db):
    client.force_login(_staff("clerk"))
    assert client.get(dashboard_url()).status_code == 403


# --- what it shows --------------------------------------------------------------------------


def test_the_figures_of_each_queue_are_those_of_its_jobs(operator_client):
    processing_job("reports")  # first: a claim takes the queue's oldest ready job
    processing_job("reports")
    Job.objects.create(name="noop", queue_name="mail")
    Job.objects.create(name="noop", queue_name="mail")
    Job.objects.create(name="noop", queue_name="mail", run_after=later(30))
    Job.objects.create(name="noop", queue_name="reports", run_after=later(-5))  # due: ready
    failed_job(queue_name="mail")
    completed_job()  # the default queue, finished now (counted from the jobs)
    old = completed_job()  # finished half an hour ago (counted from the minute counts)
    Job.objects.filter(pk=old.pk).update(
        finished_at=timezone.now() - datetime.timedelta(minutes=30)
    )
    gone = completed_job()  # finished two days ago: not in the last 24 hours
    Job.objects.filter(pk=gone.pk).update(finished_at=timezone.now() - datetime.timedelta(days=2))

    page = read(operator_client.get(dashboard_url()))

    fields = ("ready", "scheduled", "processing", "completed_24h", "failed_24h")
    expected = {
        "mail": dict(zip(fields, (2, 1, 0, 0, 1), strict=True)),
        "reports": dict(zip(fields, (1, 0, 2, 0, 0), strict=True)),
        "default": dict(zip(fields, (0, 0, 0, 2, 0), strict=True)),
        "": dict(zip(fields, (3, 1, 2, 2, 1), strict=True)),  # the row of all queues
    }
    assert {queue: numbers(page, queue) for queue in page.figures} == expected
    assert page.figures["mail"]["lag"] != display.NOTHING  # a ready job waits
    assert page.figures["default"]["lag"] == display.NOTHING  # none waits


def test_the_charts_have_a_bar_per_minute_of_the_hour_and_per_hour_of_the_day(operator_client):
    # Two jobs finished in the same minute, five minutes ago.
    minute = timezone.now().replace(second=0, microsecond=0) - datetime.timedelta(minutes=5)
    for job in (completed_job(), completed_job(), failed_job()):
        Job.objects.filter(pk=job.pk).update(finished_at=minute + datetime.timedelta(seconds=20))

    response = operator_client.get(dashboard_url())

    page = read(response)
    assert page.bars == {"dbq-chart-minutes": 60, "dbq-chart-hours": 24}
    content = response.content.decode()
    assert content.count('<svg class="dbq-chart"') == 2
    # The bar of that minute says what finished in it (its tooltip).
    label = timezone.localtime(minute).strftime("%Y-%m-%d %H:%M")
    assert f"{label} (minute): 2 completed, 1 failed" in content
    assert content.count("(minute): 0 completed, 0 failed") == 59


def test_a_live_worker_is_listed_with_its_host_and_pid(operator_client):
    registry.register("host-9:77:feed", queues=["mail", "reports"], concurrency=4, interval=5)
    dead = registry.register("host-9:78:dead", queues=["mail"], concurrency=1, interval=5)
    WorkerRecord.objects.filter(pk=dead.pk).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )

    page = read(operator_client.get(dashboard_url()))

    assert list(page.workers) == ["host-9:77:feed"]  # the expired one is not live
    cells = page.workers["host-9:77:feed"].split()
    assert socket.gethostname()[:255] in cells
    assert str(os.getpid()) in cells
    assert "mail," in cells and "reports" in cells
    # A worker's queues are listed even when no job is in them yet.
    assert {"mail", "reports"} <= set(page.figures)


def test_pause_and_resume_buttons_are_for_users_who_may_change_jobs(operator_client, viewer_client):
    Job.objects.create(name="noop", queue_name="mail")
    pauses.pause("reports", by="test")

    operator_page = read(operator_client.get(dashboard_url()))
    assert sorted(operator_page.buttons) == [("mail", "pause"), ("reports", "resume")]

    viewer = viewer_client.get(dashboard_url())
    assert read(viewer).buttons == []
    assert action_url() not in viewer.content.decode()
    assert "paused" in viewer.content.decode()  # the state is shown all the same


# --- pausing and resuming -------------------------------------------------------------------


def test_an_operator_pauses_and_resumes_a_queue(operator_client):
    Job.objects.create(name="noop", queue_name="mail")

    response = operator_client.post(action_url(), {"queue": "mail", "action": "pause"}, follow=True)

    assert response.redirect_chain == [(dashboard_url(), 302)]
    pause = QueuePause.objects.get()
    assert (pause.queue_name, pause.paused_by) == ("mail", "admin user operator")
    messages = [str(m) for m in response.context["messages"]]
    assert len(messages) == 1 and messages[0].startswith("Paused queue 'mail'")
    assert read(response).buttons == [("mail", "resume")]

    response = operator_client.post(
        action_url(), {"queue": "mail", "action": "resume"}, follow=True
    )

    assert not QueuePause.objects.exists()
    assert [str(m) for m in response.context["messages"]] == ["Resumed queue 'mail'."]
    assert read(response).buttons == [("mail", "pause")]


def test_pausing_a_paused_queue_says_so_and_keeps_the_first_pause(operator_client):
    pauses.pause("mail", by="someone else")
    response = operator_client.post(action_url(), {"queue": "mail", "action": "pause"}, follow=True)
    assert [str(m) for m in response.context["messages"]] == ["Queue 'mail' was already paused."]
    assert QueuePause.objects.get().paused_by == "someone else"


def test_an_unknown_action_or_an_empty_queue_changes_nothing(operator_client):
    for data, message in [
        ({"queue": "mail", "action": "drop"}, "Unknown action 'drop': pause or resume."),
        ({"queue": " ", "action": "pause"}, "A queue name must be a non-empty string."),
    ]:
        response = operator_client.post(action_url(), data, follow=True)
        assert [str(m) for m in response.context["messages"]] == [message]
    assert not QueuePause.objects.exists()


def test_a_view_only_user_may_not_pause_or_resume(viewer_client):
    pauses.pause("reports", by="test")
    assert viewer_client.post(action_url(), {"queue": "mail", "action": "pause"}).status_code == 403
    assert (
        viewer_client.post(action_url(), {"queue": "reports", "action": "resume"}).status_code
        == 403
    )
    assert list(QueuePause.objects.values_list("queue_name", flat=True)) == ["reports"]


def test_the_action_url_answers_only_post(operator_client):
    response = operator_client.get(action_url(), {"queue": "mail", "action": "pause"})
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert not QueuePause.objects.exists()


def test_a_pause_without_a_csrf_token_is_refused(db):
    client = Client(enforce_csrf_checks=True)
    client.force_login(_staff("operator", "view_job", "change_job"))

    response = client.post(action_url(), {"queue": "mail", "action": "pause"})

    assert response.status_code == 403
    assert b"CSRF" in response.content
    assert not QueuePause.objects.exists()


def test_a_pause_with_the_pages_csrf_token_is_accepted(db):
    client = Client(enforce_csrf_checks=True)
    client.force_login(_staff("operator", "view_job", "change_job"))
    Job.objects.create(name="noop", queue_name="mail")
    page = client.get(dashboard_url()).content.decode()
    token = page.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]

    response = client.post(
        action_url(), {"queue": "mail", "action": "pause", "csrfmiddlewaretoken": token}
    )

    assert response.status_code == 302
    assert QueuePause.objects.get().queue_name == "mail"


# --- escaping -------------------------------------------------------------------------------


def test_a_queue_name_and_texts_from_the_database_are_escaped(operator_client):
    job = failed_job(queue_name=SCRIPT)
    errors = [{**error, "message": SCRIPT} for error in job.errors]
    Job.objects.filter(pk=job.pk).update(errors=errors)
    Job.objects.create(name="noop", queue_name=SCRIPT)
    registry.register("host-1:1:a", queues=[SCRIPT], concurrency=1, interval=5)
    pauses.pause(SCRIPT, by=f"admin user {SCRIPT}")

    response = operator_client.get(dashboard_url())

    content = response.content.decode()
    assert SCRIPT not in content
    assert "<script>" not in content.lower()  # the page has no script of its own
    assert html.escape(SCRIPT, quote=False) in content
    page = read(response)
    assert numbers(page, SCRIPT) == {
        "ready": 1,
        "scheduled": 0,
        "processing": 0,
        "completed_24h": 0,
        "failed_24h": 1,
    }
    assert page.buttons == [(SCRIPT, "resume")]  # the hidden input holds the real name


def test_the_message_after_pausing_a_queue_with_markup_in_its_name_is_escaped(operator_client):
    response = operator_client.post(action_url(), {"queue": SCRIPT, "action": "pause"}, follow=True)
    content = response.content.decode()
    assert QueuePause.objects.get().queue_name == SCRIPT
    assert SCRIPT not in content
    assert html.escape(f"Paused queue {SCRIPT!r}", quote=True) in content


# --- the way in -----------------------------------------------------------------------------


def test_the_job_list_links_to_the_dashboard(viewer_client):
    content = viewer_client.get(changelist_url()).content.decode()
    assert f'href="{dashboard_url()}" class="dbq-dashboard-link"' in content


def test_the_app_index_links_to_the_dashboard(viewer_client):
    response = viewer_client.get(reverse("admin:app_list", kwargs={"app_label": "django_dbq"}))
    assert response.status_code == 200
    assert f'href="{dashboard_url()}" class="dbq-dashboard-link"' in response.content.decode()


def test_the_hour_labels_are_the_local_start_of_their_bars_in_a_half_hour_time_zone(
    operator_client,
):
    with timezone.override("Asia/Kolkata"):  # UTC+05:30
        content = operator_client.get(dashboard_url()).content.decode()
    chart = content.split('id="dbq-chart-hours"', 1)[1].split("</svg>", 1)[0]
    starts = {title.split(" ")[1] for title in chart.split("<title>")[1:]}  # "HH:MM"
    labels = [text.rsplit(">", 1)[1] for text in chart.split("</text>")[:-1]]
    bar_labels = [label for label in labels if ":" in label]  # not the axis' numbers
    assert len(bar_labels) == 6
    assert all(label.endswith(":30") for label in starts)
    assert set(bar_labels) <= starts
