"""The admin in a real browser: headless Chromium from the operating system's packages
(``apt-get install chromium``), driven by Playwright for Python against pytest-django's
live server.

Skipped, with the reason, where Playwright or the browser is missing. Screenshots
go to the test's temporary directory, or to ``DBQ_SCREENSHOTS`` if set; the ones in
docs/_static/ were made with::

    DBQ_SCREENSHOTS=docs/_static pytest tests/admin/test_browser.py
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from django_dbq import store
from django_dbq.models import Job
from django_dbq.operations import pauses, registry
from django_dbq.records import QueuePause, WorkerRecord
from django_dbq.states import RUNNABLE_STATES, JobStates
from tests.admin.conftest import (
    add_url,
    change_url,
    changelist_url,
    completed_job,
    failed_job,
    later,
    processing_job,
)

CHROMIUM = os.environ.get("DBQ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="Playwright for Python is not installed (pip install playwright; the browser "
    "is the system's chromium, not one Playwright downloads)",
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),  # the live server reads what the test wrote
    pytest.mark.skipif(
        not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)),
        reason=f"no Chromium at {CHROMIUM} (apt-get install chromium, or set DBQ_CHROMIUM)",
    ),
]

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    # Playwright's synchronous API keeps an asyncio loop in this thread; Django refuses
    # ORM calls from a thread with a running loop unless told it is safe (the test's
    # queries and the browser never run at the same moment).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_api.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            yield chromium
            chromium.close()


@pytest.fixture
def page(browser, live_server, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1440, "height": 600})
    context.set_default_timeout(15_000)
    # The admin's navigation sidebar closed, as it remembers it: more room for the list.
    context.add_init_script("window.localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    folder = Path(os.environ.get("DBQ_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def staff(username: str, *codenames: str, superuser: bool = False) -> User:
    if superuser:
        return User.objects.create_superuser(username, password=PASSWORD)
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def log_in(page, username: str, then: str) -> None:
    page.goto(f"/admin/login/?next={then}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_load_state()


def run_action(page, action: str, jobs: list[Job], button: str) -> None:
    """Tick ``jobs`` in the list, choose ``action``, press Go, then confirm."""
    for job in jobs:
        page.check(f"input[name=_selected_action][value='{job.pk}']")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")
    sync_api.expect(page.locator("body.dbq-action-confirmation")).to_be_visible()
    page.click(f"input[type=submit][value='{button}']")
    sync_api.expect(page.locator("ul.messagelist")).to_be_visible()


def a_busy_queue() -> dict[str, Job]:
    """Jobs in every state, in a few queues, as an operator's list looks."""
    now = timezone.now()
    jobs = {
        "waiting": Job.objects.create(name="demo_greeting", workspace={"name": "Ada"}),
        "scheduled": Job.objects.create(
            name="chain", queue_name="mail", run_after=later(90), priority=5
        ),
        "completed": completed_job(),
        "failed": failed_job(workspace={"invoice": 1042}),
        "held": processing_job("reports"),
    }
    Job.objects.filter(pk=jobs["waiting"].pk).update(created=now - datetime.timedelta(minutes=4))
    return jobs


# --- operators at work ----------------------------------------------------------------------


def test_staff_retry_a_failed_job_and_cancel_a_waiting_one_through_the_actions(page, screenshots):
    staff("operator", superuser=True)
    jobs = a_busy_queue()
    log_in(page, "operator", changelist_url())
    sync_api.expect(page.locator("#result_list")).to_be_visible()
    page.screenshot(path=str(screenshots / "admin-job-list.png"))

    run_action(page, "retry_failed", [jobs["failed"]], "Retry")

    sync_api.expect(page.locator("ul.messagelist")).to_contain_text("Retried 1 job.")
    retried = Job.objects.get(pk=jobs["failed"].pk)
    assert (retried.state, retried.attempts, retried.run_after) == ("READY", 0, None)
    assert len(retried.errors) == 2

    run_action(page, "cancel_waiting", [jobs["waiting"], jobs["held"]], "Cancel jobs")

    sync_api.expect(page.locator("ul.messagelist")).to_contain_text("Cancelled 1 job. 1 skipped")
    cancelled = Job.objects.get(pk=jobs["waiting"].pk)
    assert cancelled.state == "FAILED"
    assert cancelled.errors[-1]["cancelled_by"] == "admin user operator"
    assert Job.objects.get(pk=jobs["held"].pk).state == "PROCESSING"


def test_the_page_of_a_failed_job_shows_each_error_with_its_traceback(page, screenshots):
    staff("operator", superuser=True)
    job = failed_job(workspace={"invoice": 1042, "note": "<script>alert(1)</script>"})
    log_in(page, "operator", change_url(job))

    errors = page.locator(".dbq-error")
    sync_api.expect(errors).to_have_count(2)
    sync_api.expect(errors.first.locator(".dbq-traceback")).to_be_visible()
    sync_api.expect(errors.first).to_contain_text("ValueError")
    shown = page.locator("textarea[name=workspace]").input_value()
    assert json.loads(shown) == {"invoice": 1042, "note": "<script>alert(1)</script>"}
    assert shown.startswith('{\n  "')  # pretty-printed (PostgreSQL orders the keys)
    page.locator("fieldset", has_text="Errors, newest first").evaluate("e => e.scrollIntoView()")
    page.screenshot(path=str(screenshots / "admin-job-errors.png"))


def test_the_add_form_says_an_unknown_job_name_is_not_a_choice(page):
    staff("operator", superuser=True)
    log_in(page, "operator", add_url())
    # The name is a <select> of the JOBS names: an unknown one comes from a stale or
    # forged form, which the browser is made to send here.
    page.evaluate(
        """() => {
            const select = document.querySelector("select[name=name]");
            select.add(new Option("no_such_job", "no_such_job", true, true));
        }"""
    )
    page.fill("textarea[name=workspace]", '{"a": 1}')
    page.click("input[name=_save]")

    sync_api.expect(page.locator(".errorlist")).to_contain_text(
        "Select a valid choice. no_such_job is not one of the available choices."
    )
    assert not Job.objects.exists()


# --- who may do what ------------------------------------------------------------------------


def test_a_user_who_is_not_staff_is_refused(page):
    User.objects.create_user("visitor", password=PASSWORD)
    Job.objects.create(name="noop")

    log_in(page, "visitor", changelist_url())

    assert page.url.split("?")[0].endswith("/admin/login/")
    sync_api.expect(page.locator(".errornote")).to_contain_text("staff account")
    sync_api.expect(page.locator("#result_list")).to_have_count(0)


def test_a_view_only_user_sees_the_jobs_but_no_actions(page):
    staff("viewer", "view_job")
    job = Job.objects.create(name="noop")
    store.run_now([job.pk], by="test")

    log_in(page, "viewer", changelist_url())

    sync_api.expect(page.locator("#result_list")).to_contain_text("noop")
    sync_api.expect(page.locator("select[name=action]")).to_have_count(0)
    sync_api.expect(page.locator("input[name=_selected_action]")).to_have_count(0)
    page.goto(change_url(job))
    sync_api.expect(page.locator("input[name=_save]")).to_have_count(0)
    sync_api.expect(page.locator("textarea[name=workspace]")).to_have_count(0)


# --- the queue dashboard --------------------------------------------------------------------

#: Without ``live=0`` the page reloads itself every 10 s (a meta refresh).
STILL = "?live=0"


def dashboard_url() -> str:
    return reverse("admin:django_dbq_job_dashboard")


def finish(jobs: list[Job], at: datetime.datetime) -> None:
    """Say the jobs finished at ``at`` (they ran now, through the executor)."""
    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(finished_at=at, modified=at)


def a_day_of_work() -> None:
    """Five queues as a dashboard shows them on a working day: jobs finished over the
    last hour (run through the executor, some failing) and the last day (written as
    finished), jobs waiting, two workers holding jobs, and a paused queue."""
    now = timezone.now()
    queues = ["default", "mail", "reports", "thumbnails", "webhooks"]
    # Held by a worker; made first, as each claims its queue's oldest ready job.
    for queue in ["reports", "reports", "thumbnails", "thumbnails", "thumbnails"]:
        processing_job(queue)
    # The last hour, minute by minute (a busy spell 20-30 minutes ago, a burst of
    # failures 37 minutes ago).
    for minutes_ago in range(60):
        at = now - datetime.timedelta(minutes=minutes_ago, seconds=5)
        busy = 4 if 20 <= minutes_ago < 30 else 0
        done = [completed_job() for _ in range(2 + (minutes_ago * 7) % 5 + busy)]
        failures = 4 if minutes_ago == 37 else int(minutes_ago % 11 == 3)
        failed = [failed_job() for _ in range(failures)]
        for index, job in enumerate(done + failed):
            Job.objects.filter(pk=job.pk).update(queue_name=queues[(minutes_ago + index) % 4])
        finish(done + failed, at)
    # The 22 hours before: a night's lull, a day's peak (written as finished).
    per_hour = [60, 45, 40, 35, 30, 40, 70, 120, 180, 210, 230, 220, 200, 215, 240, 230, 210]
    per_hour += [180, 150, 120, 95, 75]
    for hours_ago, count in enumerate(per_hour, start=1):
        at = now - datetime.timedelta(hours=hours_ago, minutes=10)
        jobs = Job.objects.bulk_create(
            Job(name="noop", queue_name=queues[i % 5], created=at) for i in range(count)
        )
        failures = 2 + hours_ago % 4
        Job.objects.filter(pk__in=[job.pk for job in jobs[:failures]]).update(
            state=JobStates.FAILED, finished_at=at
        )
        Job.objects.filter(pk__in=[job.pk for job in jobs[failures:]]).update(
            state=JobStates.COMPLETED, finished_at=at
        )
    # Waiting: ready for a while (the lag), and scheduled for later.
    for queue, count, waited in [
        ("default", 4, 40),
        ("mail", 12, 95),
        ("thumbnails", 25, 380),
        ("webhooks", 7, 720),
    ]:
        jobs = Job.objects.bulk_create(Job(name="noop", queue_name=queue) for _ in range(count))
        Job.objects.filter(pk__in=[job.pk for job in jobs]).update(
            created=now - datetime.timedelta(seconds=waited)
        )
    for queue, count in [("default", 2), ("mail", 3), ("reports", 1)]:
        for _ in range(count):
            Job.objects.create(name="chain", queue_name=queue, run_after=later(90))
    # Two workers and a paused queue.
    for owner, host, pid, served, concurrency, held, done, minutes in [
        ("app-1:2811:9f3c", "app-1", 2811, ["default", "mail", "webhooks"], 8, 0, 1893, 190),
        ("app-2:3120:41aa", "app-2", 3120, ["reports", "thumbnails"], 4, 5, 977, 47),
    ]:
        registry.register(owner, queues=served, concurrency=concurrency, interval=5)
        WorkerRecord.objects.filter(owner=owner).update(
            host=host,
            pid=pid,
            jobs_held=held,
            jobs_done=done,
            started_at=now - datetime.timedelta(minutes=minutes),
        )
    pauses.pause("webhooks", by="admin user ada")
    QueuePause.objects.filter(queue_name="webhooks").update(
        paused_at=now - datetime.timedelta(minutes=12)
    )


def figures_on_the_page(page) -> dict[str, dict[str, int]]:
    """The numbers of the queue table: {queue: {figure: number}} ("" is all queues)."""
    shown = page.evaluate(
        """() => Object.fromEntries(
            [...document.querySelectorAll("#dbq-queues tr[data-queue]")].map(row => [
                row.dataset.queue,
                Object.fromEntries(
                    [...row.querySelectorAll("td[data-figure]")]
                        .filter(cell => cell.dataset.figure !== "lag")
                        .map(cell => [cell.dataset.figure, Number(cell.textContent.trim())])
                ),
            ])
        )"""
    )
    return shown


def figures_of_the_jobs() -> dict[str, dict[str, int]]:
    """The same numbers, counted from the job table."""
    now = timezone.now()
    day = now.replace(minute=0, second=0, microsecond=0) - datetime.timedelta(hours=23)
    runnable = Q(state__in=RUNNABLE_STATES)
    names = sorted(set(Job.objects.values_list("queue_name", flat=True)))
    figures = {}
    for name in [*names, ""]:
        jobs = Job.objects.filter(queue_name=name) if name else Job.objects.all()
        figures[name] = {
            "ready": jobs.filter(
                runnable, Q(run_after__isnull=True) | Q(run_after__lte=now)
            ).count(),
            "scheduled": jobs.filter(runnable, run_after__gt=now).count(),
            "processing": jobs.filter(state=JobStates.PROCESSING).count(),
            "completed_24h": jobs.filter(state=JobStates.COMPLETED, finished_at__gte=day).count(),
            "failed_24h": jobs.filter(state=JobStates.FAILED, finished_at__gte=day).count(),
        }
    return figures


def test_staff_read_the_dashboard_and_pause_and_resume_a_queue(page, screenshots):
    staff("operator", superuser=True)
    a_day_of_work()

    log_in(page, "operator", dashboard_url() + STILL)

    sync_api.expect(page.locator("#dbq-queues")).to_be_visible()
    expected = figures_of_the_jobs()
    assert set(expected) == {"default", "mail", "reports", "thumbnails", "webhooks", ""}
    assert figures_on_the_page(page) == expected
    sync_api.expect(page.locator("#dbq-chart-minutes g.dbq-bar")).to_have_count(60)
    sync_api.expect(page.locator("#dbq-chart-hours g.dbq-bar")).to_have_count(24)
    sync_api.expect(page.locator("#dbq-workers tbody tr")).to_have_count(2)
    sync_api.expect(page.locator("tr[data-owner='app-2:3120:41aa']")).to_contain_text("3120")
    sync_api.expect(page.locator("tr[data-queue=webhooks] .dbq-state")).to_have_text("paused")
    page.screenshot(path=str(screenshots / "dashboard.png"), full_page=True)

    mail = page.locator("tr[data-queue=mail]")
    sync_api.expect(mail.locator(".dbq-state")).to_have_text("running")
    mail.locator("button[value=pause]").click()

    sync_api.expect(page.locator("ul.messagelist")).to_contain_text("Paused queue 'mail'")
    sync_api.expect(mail.locator(".dbq-state")).to_have_text("paused")
    pause = QueuePause.objects.get(queue_name="mail")
    assert pause.paused_by == "admin user operator"
    assert (timezone.now() - pause.paused_at).total_seconds() < 60

    page.goto(dashboard_url() + STILL)  # the action sends back to the live page
    mail.locator("button[value=resume]").click()

    sync_api.expect(page.locator("ul.messagelist")).to_contain_text("Resumed queue 'mail'.")
    sync_api.expect(mail.locator(".dbq-state")).to_have_text("running")
    sync_api.expect(mail.locator("button[value=pause]")).to_be_visible()
    assert list(QueuePause.objects.values_list("queue_name", flat=True)) == ["webhooks"]


def test_a_user_who_is_not_staff_is_refused_the_dashboard(page):
    User.objects.create_user("visitor", password=PASSWORD)
    Job.objects.create(name="noop")

    log_in(page, "visitor", dashboard_url())

    assert page.url.split("?")[0].endswith("/admin/login/")
    sync_api.expect(page.locator(".errornote")).to_contain_text("staff account")
    sync_api.expect(page.locator("#dbq-queues")).to_have_count(0)


def test_a_view_only_user_sees_the_dashboard_but_no_pause_buttons(page):
    staff("viewer", "view_job")
    Job.objects.create(name="noop", queue_name="mail")
    Job.objects.create(name="noop", queue_name="webhooks")
    pauses.pause("webhooks", by="admin user ada")

    log_in(page, "viewer", changelist_url())
    page.click("a.dbq-dashboard-link")  # the link among the list's object tools

    sync_api.expect(page.locator("#dbq-queues")).to_be_visible()
    assert page.url.split("?")[0].endswith(dashboard_url())
    sync_api.expect(page.locator("tr[data-queue=mail] td[data-figure=ready]")).to_have_text("1")
    sync_api.expect(page.locator("tr[data-queue=webhooks] .dbq-state")).to_have_text("paused")
    sync_api.expect(page.locator("tr[data-queue=mail] .dbq-state")).to_have_text("running")
    sync_api.expect(page.locator("#dbq-queues button")).to_have_count(0)
    sync_api.expect(page.locator("#dbq-queues form")).to_have_count(0)
