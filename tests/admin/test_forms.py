"""django_dbq.admin.forms: the workspace as pretty-printed JSON, validated like a new
job's; the job name a choice of the JOBS names."""

from __future__ import annotations

import pytest

from django_dbq.admin.forms import JobAddForm, WorkspaceField, job_name_choices


def test_the_workspace_is_shown_pretty_printed_and_unicode_kept():
    assert WorkspaceField().prepare_value({"a": [1], "é": "ü"}) == (
        '{\n  "a": [\n    1\n  ],\n  "é": "ü"\n}'
    )


@pytest.mark.parametrize("text", ["", "  ", "{}"])
def test_an_empty_workspace_is_an_empty_object(text):
    assert WorkspaceField().clean(text) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "must be a dict"),
        ('{"a": Infinity}', "not JSON-serialisable"),
        ('{"nul": "\\u0000"}', "NUL character"),
        ("{", "Enter a valid JSON"),
        ("[" * 50_000, "nested too deeply"),
    ],
)
def test_a_workspace_the_database_would_not_store_is_a_validation_error(text, message):
    form_field = WorkspaceField()
    with pytest.raises(Exception, match=message):
        form_field.clean(text)


def test_a_broken_jobs_setting_leaves_the_name_without_choices(settings):
    settings.JOBS = {"broken": {"tasks": []}}
    assert job_name_choices() == [("", "---------")]


@pytest.mark.django_db
def test_a_run_after_without_a_time_zone_is_taken_in_the_current_one():
    form = JobAddForm(
        data={
            "name": "noop",
            "queue_name": "default",
            "priority": "0",
            "run_after": "2030-01-01 10:00:00",
            "workspace": "{}",
        }
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["run_after"].tzinfo is not None
