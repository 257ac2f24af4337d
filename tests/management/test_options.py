"""django_dbq.management.options: parsing and validating the management commands' options."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest
from django.test import override_settings

from django_dbq.exceptions import (
    DbqError,
    InvalidJobError,
    InvalidWorkspaceError,
    UnknownJobError,
)
from django_dbq.management import options as command_options
from django_dbq.models import Job

UTC = datetime.timezone.utc
NOW = datetime.datetime(2030, 1, 31, 9, 0, 0, tzinfo=UTC)


# --- parse_when --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-02-01T10:30:00+00:00", datetime.datetime(2030, 2, 1, 10, 30, tzinfo=UTC)),
        ("2030-02-01T10:30:00Z", datetime.datetime(2030, 2, 1, 10, 30, tzinfo=UTC)),
        ("2030-02-01T12:30:00+02:00", datetime.datetime(2030, 2, 1, 10, 30, tzinfo=UTC)),
        ("2030-02-01T05:30:00-05:00", datetime.datetime(2030, 2, 1, 10, 30, tzinfo=UTC)),
        (
            "2030-02-01T10:30:00.250000+00:00",
            datetime.datetime(2030, 2, 1, 10, 30, 0, 250000, tzinfo=UTC),
        ),
        ("  2030-02-01T10:30:00+00:00  ", datetime.datetime(2030, 2, 1, 10, 30, tzinfo=UTC)),
    ],
)
def test_parse_when_iso_8601_with_an_offset(text, expected):
    when = command_options.parse_when(text, now=NOW)

    assert when == expected
    assert when.utcoffset() is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-02-01T10:30:00", datetime.datetime(2030, 2, 1, 10, 30)),
        ("2030-02-01T10:30", datetime.datetime(2030, 2, 1, 10, 30)),
        ("2030-02-01", datetime.datetime(2030, 2, 1, 0, 0)),
    ],
)
def test_parse_when_iso_8601_without_an_offset_is_in_the_current_time_zone(text, expected):
    assert command_options.parse_when(text, now=NOW) == expected.replace(tzinfo=UTC)

    paris = zoneinfo.ZoneInfo("Europe/Paris")
    with override_settings(TIME_ZONE="Europe/Paris"):
        when = command_options.parse_when(text, now=NOW)
    assert when == expected.replace(tzinfo=paris)
    assert when.utcoffset() == datetime.timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("+10m", datetime.timedelta(minutes=10)),
        ("10m", datetime.timedelta(minutes=10)),
        ("+ 10 min", datetime.timedelta(minutes=10)),
        ("2h", datetime.timedelta(hours=2)),
        ("2hrs", datetime.timedelta(hours=2)),
        ("+2H", datetime.timedelta(hours=2)),
        ("90s", datetime.timedelta(seconds=90)),
        ("90secs", datetime.timedelta(seconds=90)),
        ("1d", datetime.timedelta(days=1)),
        ("1.5d", datetime.timedelta(days=1, hours=12)),
        ("2w", datetime.timedelta(weeks=2)),
        ("0s", datetime.timedelta(0)),
        (" +1h ", datetime.timedelta(hours=1)),
    ],
)
def test_parse_when_relative(text, delta):
    assert command_options.parse_when(text, now=NOW) == NOW + delta


def test_parse_when_relative_defaults_to_now():
    before = datetime.datetime.now(UTC)
    when = command_options.parse_when("+1h")
    after = datetime.datetime.now(UTC)

    assert before + datetime.timedelta(hours=1) <= when <= after + datetime.timedelta(hours=1)


@pytest.mark.parametrize(
    "text",
    [
        "tomorrow",
        "",
        "   ",
        "soon",
        "10",
        "-10m",
        "+10x",
        "10 parsecs",
        "1e3m",
        "2030-13-45",
        "2030-02-30T10:00:00",
        "2030-02-01T25:00:00",
        "31/01/2030",
        "+99999999999w",
        "+9999999w",
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
        "2030-02-01T10:00:00\nrm -rf /",
    ],
)
def test_parse_when_garbage_raises_a_one_line_invalid_job_error(text):
    with pytest.raises(InvalidJobError) as excinfo:
        command_options.parse_when(text, now=NOW)

    message = str(excinfo.value)
    assert message.startswith("--run-after ")
    assert "\n" not in message


def test_parse_when_error_shows_the_accepted_forms():
    with pytest.raises(InvalidJobError, match=r"ISO-8601 .* relative time such as \+10m"):
        command_options.parse_when("next tuesday", now=NOW)


# --- parse_workspace -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, {}),
        ("{}", {}),
        (
            '{"a": 1, "b": [true, null, "x"], "c": {"d": 1.5}}',
            {"a": 1, "b": [True, None, "x"], "c": {"d": 1.5}},
        ),
        (' { "unicode": "h\\u00e9llo ✓" } ', {"unicode": "héllo ✓"}),
    ],
)
def test_parse_workspace_accepts_a_json_object(text, expected):
    assert command_options.parse_workspace(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json}", "--workspace is not valid JSON"),
        ("{'a': 1}", "--workspace is not valid JSON"),
        ('{"a": 1', "--workspace is not valid JSON"),
        ("", "--workspace is not valid JSON"),
        ('{"a": NaN}', "NaN is not a JSON value"),
        ('{"a": [Infinity]}', "Infinity is not a JSON value"),
        ('{"a": -Infinity}', "-Infinity is not a JSON value"),
        ("[" * 100_000 + "]" * 100_000, "--workspace is not valid JSON"),
        ("[1, 2]", "not a JSON list"),
        ("[]", "not a JSON list"),
        ('"text"', "not a JSON str"),
        ("42", "not a JSON int"),
        ("4.2", "not a JSON float"),
        ("true", "not a JSON bool"),
        ("null", "not a JSON NoneType"),
    ],
    ids=[
        "not-json",
        "single-quotes",
        "truncated",
        "empty",
        "nan",
        "infinity",
        "minus-infinity",
        "too-deep",
        "list",
        "empty-list",
        "string",
        "int",
        "float",
        "bool",
        "null",
    ],
)
def test_parse_workspace_rejects_anything_but_a_json_object(text, message):
    with pytest.raises(InvalidWorkspaceError) as excinfo:
        command_options.parse_workspace(text)

    assert message in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_parse_workspace_error_for_a_list_shows_an_example_object():
    with pytest.raises(InvalidWorkspaceError) as excinfo:
        command_options.parse_workspace('["a"]')

    assert """must be a JSON object such as '{"key": "value"}'""" in str(excinfo.value)


# --- parse_int and parse_hours -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"), [("5", 5), (" -3 ", -3), ("0", 0), (7, 7), ("+2", 2)]
)
def test_parse_int(text, expected):
    assert command_options.parse_int("--priority", text) == expected


@pytest.mark.parametrize("text", ["high", "1.5", "", "1e3", "0x10", "5 5", "NaN"])
def test_parse_int_rejects_non_integers_naming_the_option(text):
    with pytest.raises(InvalidJobError) as excinfo:
        command_options.parse_int("--priority", text)

    assert str(excinfo.value) == f"--priority must be a whole number, not {text!r}."


@pytest.mark.parametrize(
    ("text", "expected"),
    [("24", 24.0), ("0", 0.0), ("0.5", 0.5), (" 48 ", 48.0), (12, 12.0), ("1e3", 1000.0)],
)
def test_parse_hours(text, expected):
    assert command_options.parse_hours(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-1", "--hours must be zero or more, not '-1'."),
        ("-0.5", "--hours must be zero or more, not '-0.5'."),
        ("nan", "--hours must be zero or more, not 'nan'."),
        ("inf", "--hours must be zero or more, not 'inf'."),
        ("-inf", "--hours must be zero or more, not '-inf'."),
        ("abc", "--hours must be a number, not 'abc'."),
        ("", "--hours must be a number, not ''."),
        ("24h", "--hours must be a number, not '24h'."),
    ],
)
def test_parse_hours_rejects_negative_nan_and_garbage(text, message):
    with pytest.raises(InvalidJobError) as excinfo:
        command_options.parse_hours(text)

    assert str(excinfo.value) == message


# --- create_job ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_job_parses_every_option_and_inserts_one_job():
    job = command_options.create_job(
        "chain",
        queue_name="emails",
        workspace='{"to": "a@example.com"}',
        priority="7",
        run_after="2030-01-31T09:00:00+01:00",
    )

    stored = Job.objects.get()
    assert stored.pk == job.pk
    assert stored.name == "chain"
    assert stored.queue_name == "emails"
    assert stored.workspace == {"to": "a@example.com", "created_by_hook": True}
    assert stored.priority == 7
    assert stored.run_after == datetime.datetime(2030, 1, 31, 8, 0, tzinfo=UTC)
    assert stored.next_task == "tests.tasks.step_one"


@pytest.mark.django_db
def test_create_job_defaults():
    command_options.create_job("noop")

    stored = Job.objects.get()
    assert (stored.queue_name, stored.workspace, stored.priority, stored.run_after) == (
        "default",
        {},
        0,
        None,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "options", "error"),
    [
        ("no_such_job", {}, UnknownJobError),
        ("", {}, UnknownJobError),
        ("noop", {"workspace": "[1]"}, InvalidWorkspaceError),
        ("noop", {"workspace": "{oops"}, InvalidWorkspaceError),
        ("noop", {"queue_name": "q" * 65}, InvalidJobError),
        ("noop", {"queue_name": ""}, InvalidJobError),
        ("noop", {"priority": "high"}, InvalidJobError),
        ("noop", {"priority": "99999999999"}, InvalidJobError),
        ("noop", {"run_after": "whenever"}, InvalidJobError),
        ("noop", {"run_after": ""}, InvalidJobError),
    ],
    ids=[
        "unknown-name",
        "empty-name",
        "workspace-list",
        "workspace-invalid",
        "queue-too-long",
        "queue-empty",
        "priority-not-int",
        "priority-too-big",
        "run-after-garbage",
        "run-after-empty",
    ],
)
def test_create_job_bad_input_raises_a_dbq_error_and_writes_nothing(name, options, error):
    with pytest.raises(error) as excinfo:
        command_options.create_job(name, **options)

    assert isinstance(excinfo.value, DbqError)
    assert "\n" not in str(excinfo.value)
    assert Job.objects.count() == 0
