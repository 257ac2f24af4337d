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
from django.utils import timezone

from django_dbq import store
from django_dbq.models import Job
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
