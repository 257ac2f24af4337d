"""``manage.py schedules``: the periodic jobs with their next and last fire."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from django_dbq.models import Job, Schedule

pytestmark = pytest.mark.django_db

SCHEDULES = {
    "nightly": {"job": "noop", "cron": "30 2 * * *", "timezone": "Europe/London"},
    "often": {"job": "noop", "every": 30, "missed": "skip"},
}


def call(*args: str) -> str:
    out = StringIO()
    call_command("schedules", *args, stdout=out)
    return out.getvalue()


def test_no_schedules_says_how_to_declare_them():
    assert "No schedules (declare them in DBQ_SCHEDULES" in call()


@override_settings(DBQ_SCHEDULES=SCHEDULES)
def test_lists_the_settings_schedules_after_bringing_the_table_in_step():
    lines = call().splitlines()
    assert lines[0].split()[:3] == ["name", "job", "when"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert "30 2 * * * (Europe/London)" in rows["nightly"]
    assert "every 30s" in rows["often"]
    assert "settings" in rows["nightly"]
    assert set(Schedule.objects.values_list("name", flat=True)) == {"nightly", "often"}


@override_settings(DBQ_SCHEDULES=SCHEDULES)
def test_json_has_next_fire_last_tick_and_the_last_jobs_state():
    call()
    job = Job.objects.create(name="noop")
    Schedule.objects.filter(name="often").update(last_tick=timezone.now(), last_job_id=job.pk)
    listed = {item["name"]: item for item in json.loads(call("--format", "json"))}
    assert listed["often"]["last_job_state"] == "NEW"
    assert listed["often"]["last_tick"] is not None
    assert listed["nightly"]["last_job_state"] is None
    assert listed["nightly"]["next_fire"].endswith(":30:00+00:00")  # 02:30 London
