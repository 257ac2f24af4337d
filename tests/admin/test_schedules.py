"""The admin of periodic jobs, and the unique key on the Job list."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_dbq.models import Job, Schedule
from django_dbq.schedules import ScheduleSpec
from django_dbq.scheduling import firing
from tests.admin.conftest import changelist_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def scheduler_client(db) -> Client:
    user = User.objects.create_user("planner", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_schedule", "add_schedule", "change_schedule", "delete_schedule"]
        )
    )
    client = Client()
    client.force_login(user)
    return client


def schedule(name: str = "nightly", **fields) -> Schedule:
    now = timezone.now()
    values = {"job_name": "noop", "cron": "30 2 * * *", "created": now, "modified": now}
    return Schedule.objects.create(name=name, **{**values, **fields})


FORM = {
    "name": "reports",
    "job_name": "noop",
    "cron": "*/15 * * * *",
    "every_seconds": "",
    "timezone": "Europe/London",
    "workspace": '{"kind": "quarter-hourly"}',
    "queue_name": "default",
    "priority": "0",
    "missed": "once",
    "enabled": "on",
}


def test_the_list_shows_expression_source_next_and_last_fire_and_the_last_jobs_state(
    scheduler_client,
):
    job = Job.objects.create(name="noop")
    schedule("nightly", timezone="Europe/London", last_tick=timezone.now(), last_job_id=job.pk)
    firing.sync_settings({"pinger": ScheduleSpec(name="pinger", job="noop", every=30)})
    content = scheduler_client.get(reverse("admin:django_dbq_schedule_changelist")).content
    page = content.decode()
    assert "30 2 * * * (Europe/London)" in page
    assert "every 30 s" in page
    assert "DBQ_SCHEDULES" in page and ">admin<" in page
    assert 'class="dbq-state dbq-state-new"' in page  # the last job's state


def test_a_schedule_from_the_setting_is_read_only(scheduler_client):
    firing.sync_settings({"pinger": ScheduleSpec(name="pinger", job="noop", every=30)})
    row = Schedule.objects.get(name="pinger")
    url = reverse("admin:django_dbq_schedule_change", args=[row.pk])
    page = scheduler_client.get(url).content.decode()
    assert 'name="cron"' not in page and 'name="_save"' not in page
    response = scheduler_client.post(url, {**FORM, "name": "pinger"})
    assert response.status_code == 403
    assert Schedule.objects.get(pk=row.pk).every_seconds == 30


def test_adding_a_schedule_validates_it_as_the_setting_is(scheduler_client):
    url = reverse("admin:django_dbq_schedule_add")
    bad = scheduler_client.post(url, {**FORM, "cron": "61 * * * *"})
    assert bad.status_code == 200
    assert "invalid cron expression" in bad.content.decode()
    both = scheduler_client.post(url, {**FORM, "every_seconds": "10"})
    assert "exactly one of" in both.content.decode()
    assert not Schedule.objects.exists()
    good = scheduler_client.post(url, FORM)
    assert good.status_code == 302
    row = Schedule.objects.get()
    assert (row.cron, row.timezone, row.workspace, row.from_settings) == (
        "*/15 * * * *",
        "Europe/London",
        {"kind": "quarter-hourly"},
        False,
    )


def test_disable_and_enable_actions_leave_settings_schedules_alone(scheduler_client):
    mine = schedule("mine")
    firing.sync_settings({"pinger": ScheduleSpec(name="pinger", job="noop", every=30)})
    url = reverse("admin:django_dbq_schedule_changelist")
    ids = [str(pk) for pk in Schedule.objects.values_list("pk", flat=True)]
    scheduler_client.post(url, {"action": "disable", "_selected_action": ids})
    assert not Schedule.objects.get(pk=mine.pk).enabled
    assert Schedule.objects.get(name="pinger").enabled
    before = timezone.now()
    scheduler_client.post(url, {"action": "enable", "_selected_action": ids})
    mine.refresh_from_db()
    assert mine.enabled
    assert mine.last_tick >= before  # the ticks while it was off are not missed ones


def test_the_job_list_shows_filters_and_searches_unique_keys(admin_client):
    keyed = Job.objects.create(name="noop", unique_key="invoice:<b>42</b>")
    Job.objects.create(name="noop")
    page = admin_client.get(changelist_url()).content.decode()
    assert "key invoice:&lt;b&gt;42&lt;/b&gt;" in page
    holding = admin_client.get(changelist_url(unique="holds")).context["cl"].result_list
    assert [job.pk for job in holding] == [keyed.pk]
    none = admin_client.get(changelist_url(unique="none")).context["cl"].result_list
    assert keyed.pk not in [job.pk for job in none] and len(none) == 1
    found = admin_client.get(changelist_url(q="invoice:<b>42</b>")).context["cl"].result_list
    assert [job.pk for job in found] == [keyed.pk]
