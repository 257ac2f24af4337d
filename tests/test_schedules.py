"""django_dbq.schedules: the DBQ_SCHEDULES setting (validate, E013-E016 through the
checks) and the tick arithmetic (every N seconds, cron in a time zone across the
clock changes, ticks due now, ticks missed while no worker ran). Pure: nothing here
touches the database; the JOBS names come from the test settings."""

from __future__ import annotations

import datetime
import itertools

import pytest
from django.core import checks
from django.test import override_settings

from django_dbq import schedules
from django_dbq.schedules import LATE_SECONDS, MAX_LATE_TICKS, ScheduleSpec

UTC = datetime.timezone.utc
LONDON = "Europe/London"
SECOND = datetime.timedelta(seconds=1)
MINUTE = datetime.timedelta(minutes=1)
HOUR = datetime.timedelta(hours=1)
KNOWN_KEYS = "job, cron, every, timezone, workspace, queue, priority, missed, enabled"


def utc(*args: int) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=UTC)


def problems_of(entry: object, name: str = "nightly") -> list[schedules.Problem]:
    specs, problems = schedules.validate({name: entry})
    assert name not in specs, "an entry with a problem must not become a schedule"
    return problems


def only(problems: list[schedules.Problem], problem_id: str) -> schedules.Problem:
    found = [p for p in problems if p.id == problem_id]
    assert len(found) == 1, f"expected one {problem_id}, got {problems!r}"
    return found[0]


def between(
    start: datetime.datetime, end: datetime.datetime, **timing: object
) -> list[datetime.datetime]:
    """The ticks in [start, end)."""
    return list(
        itertools.takewhile(lambda t: t < end, schedules.ticks_after(start - SECOND, **timing))
    )


# --- validate(): good entries ----------------------------------------------------------


def test_no_setting_is_no_schedules_and_no_problems():
    assert schedules.validate(None) == ({}, [])
    assert schedules.validate({}) == ({}, [])


def test_a_cron_entry_gets_the_defaults():
    specs, problems = schedules.validate({"tidy": {"job": "noop", "cron": "*/5 * * * *"}})

    assert problems == []
    assert specs == {
        "tidy": ScheduleSpec(
            name="tidy",
            job="noop",
            cron="*/5 * * * *",
            every=None,
            timezone="UTC",
            workspace={},
            queue="default",
            priority=0,
            missed="once",
            enabled=True,
        )
    }
    assert specs["tidy"].describe() == "*/5 * * * * (UTC)"


def test_an_every_entry_with_every_key_given():
    entry = {
        "job": "record",
        "every": 30,
        "timezone": LONDON,
        "workspace": {"kind": "daily", "n": [1, 2]},
        "queue": "reports",
        "priority": -5,
        "missed": "skip",
        "enabled": False,
    }

    specs, problems = schedules.validate({"heartbeat": entry})

    assert problems == []
    spec = specs["heartbeat"]
    assert (spec.job, spec.cron, spec.every, spec.timezone) == ("record", "", 30, LONDON)
    assert spec.workspace == {"kind": "daily", "n": [1, 2]}
    assert spec.workspace is not entry["workspace"]  # the setting's dict is not shared
    assert (spec.queue, spec.priority, spec.missed, spec.enabled) == ("reports", -5, "skip", False)
    assert spec.describe() == "every 30 s"


@pytest.mark.parametrize("every", [1, 366 * 24 * 3600])
def test_every_from_one_second_to_a_year_is_valid(every):
    specs, problems = schedules.validate({"s": {"job": "noop", "every": every}})

    assert problems == []
    assert specs["s"].every == every


def test_an_empty_cron_with_every_is_the_every_form():
    specs, problems = schedules.validate({"s": {"job": "noop", "cron": "", "every": 60}})

    assert problems == []
    assert (specs["s"].cron, specs["s"].every) == ("", 60)


def test_a_valid_entry_is_kept_beside_an_invalid_one():
    specs, problems = schedules.validate(
        {"good": {"job": "noop", "every": 60}, "bad": {"job": "noop", "every": 0}}
    )

    assert list(specs) == ["good"]
    assert [p.id for p in problems] == ["django_dbq.E014"]
    assert "DBQ_SCHEDULES['bad']" in problems[0].msg


def test_field_problems_takes_the_known_job_names_from_its_caller():
    # The admin's form passes its own list; without one, the JOBS setting is used.
    timing = {"cron": "* * * * *", "every": None, "timezone": "UTC"}

    assert schedules.field_problems("x", job="custom", known_jobs=["custom"], **timing) == []
    assert [p.id for p in schedules.field_problems("x", job="custom", **timing)] == [
        "django_dbq.E016"
    ]


# --- validate(): each problem ------------------------------------------------------------


@pytest.mark.parametrize("raw", [["nightly"], "nightly", ("x",), 42])
def test_e013_the_setting_is_not_a_dict(raw):
    specs, problems = schedules.validate(raw)

    assert specs == {}
    [problem] = problems
    assert problem.id == "django_dbq.E013"
    assert problem.msg == f"The DBQ_SCHEDULES setting is a {type(raw).__name__}, not a dict."
    assert "DBQ_SCHEDULES = {" in problem.hint


@pytest.mark.parametrize("name", ["", 5, None, "x" * 101])
def test_e013_a_bad_schedule_name(name):
    specs, problems = schedules.validate({name: {"job": "noop", "every": 60}})

    assert specs == {}
    [problem] = problems
    assert problem.id == "django_dbq.E013"
    assert problem.msg == f"DBQ_SCHEDULES key {name!r} is not a valid schedule name."
    assert problem.hint == "Use a non-empty string of at most 100 characters."


def test_a_name_of_100_characters_is_valid():
    specs, problems = schedules.validate({"x" * 100: {"job": "noop", "every": 60}})

    assert problems == []
    assert list(specs) == ["x" * 100]


@pytest.mark.parametrize("entry", [["noop", "* * * * *"], "noop", None, 60])
def test_e013_an_entry_that_is_not_a_dict(entry):
    [problem] = problems_of(entry)

    assert problem.id == "django_dbq.E013"
    assert problem.msg == f"DBQ_SCHEDULES['nightly'] is a {type(entry).__name__}, not a dict."
    assert '"job": "<a JOBS name>"' in problem.hint


@pytest.mark.parametrize(
    ("key", "suggestion"), [("timezon", "timezone"), ("cronn", "cron"), ("queue_name", "queue")]
)
def test_e013_an_unknown_key_with_did_you_mean(key, suggestion):
    problems = problems_of({"job": "noop", "cron": "* * * * *", key: "x"})

    [problem] = problems
    assert problem.id == "django_dbq.E013"
    assert problem.msg == f"DBQ_SCHEDULES['nightly'] has an unknown key {key!r}."
    assert problem.hint == f"Did you mean {suggestion!r}? Known keys: {KNOWN_KEYS}."


def test_e013_an_unknown_key_like_no_other_lists_the_known_keys():
    [problem] = problems_of({"job": "noop", "every": 60, "zzzzzz": 1})

    assert problem.hint == f"Known keys: {KNOWN_KEYS}."


@pytest.mark.parametrize(
    ("job", "hint"),
    [
        ("nop", "Did you mean 'noop'? Use one of the names of the JOBS setting."),
        ("recrod", "Did you mean 'record'? Use one of the names of the JOBS setting."),
        ("zzzzzzzzzzzz", "Use one of the names of the JOBS setting."),
        (None, "Use one of the names of the JOBS setting."),
        (["noop"], "Did you mean 'noop'? Use one of the names of the JOBS setting."),
    ],
)
def test_e016_a_job_not_in_jobs_with_did_you_mean(job, hint):
    [problem] = problems_of({"job": job, "cron": "* * * * *"})

    assert problem.id == "django_dbq.E016"
    assert problem.msg == f"DBQ_SCHEDULES['nightly'] names the job {job!r}, which is not in JOBS."
    assert problem.hint == hint


@pytest.mark.parametrize(
    "entry",
    [
        {"job": "noop", "cron": "* * * * *", "every": 60},
        {"job": "noop"},
        {"job": "noop", "cron": "", "every": None},
    ],
    ids=["both", "neither", "both-empty"],
)
def test_e014_exactly_one_of_cron_and_every(entry):
    [problem] = problems_of(entry)

    assert problem.id == "django_dbq.E014"
    assert problem.msg == "DBQ_SCHEDULES['nightly'] needs exactly one of 'cron' and 'every'."
    assert '"cron"' in problem.hint and '"every"' in problem.hint


@pytest.mark.parametrize(
    ("cron", "why"),
    [
        ("61 * * * *", "bad minute"),
        ("* 24 * * *", "bad hour"),
        ("* * 32 * *", "bad day-of-month"),
        ("* * * 13 *", "bad month"),
        ("* * * * MONDAY", "bad day-of-week"),
        ("0 0 30 2 *", "bad day-of-month"),  # 30 February never comes
    ],
)
def test_e014_an_invalid_cron_expression(cron, why):
    [problem] = problems_of({"job": "noop", "cron": cron})

    assert problem.id == "django_dbq.E014"
    assert problem.msg == (
        f"DBQ_SCHEDULES['nightly'] has an invalid cron expression {cron!r}: {why}."
    )
    assert problem.hint.startswith("Use 5 fields: minute hour day-of-month month day-of-week")


def test_e014_a_six_field_cron_expression_says_there_is_no_seconds_field():
    [problem] = problems_of({"job": "noop", "cron": "0 */5 * * * *"})

    assert problem.id == "django_dbq.E014"
    assert problem.msg == (
        "DBQ_SCHEDULES['nightly'] has an invalid cron expression '0 */5 * * * *': "
        "6 fields, not 5 (there is no seconds field)."
    )


def test_e014_a_cron_that_is_not_a_string():
    [problem] = problems_of({"job": "noop", "cron": 5})

    assert problem.msg == (
        "DBQ_SCHEDULES['nightly'] has an invalid cron expression 5: a int, not a string."
    )


@pytest.mark.parametrize("every", [0, -60, 1.5, 60.0, True, False, "60", 366 * 24 * 3600 + 1])
def test_e014_every_is_a_whole_number_of_seconds(every):
    [problem] = problems_of({"job": "noop", "every": every})

    assert problem.id == "django_dbq.E014"
    assert problem.msg == f"DBQ_SCHEDULES['nightly'] has 'every' = {every!r}."
    assert problem.hint == "Use a whole number from 1 to 31622400 (seconds)."


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "../etc/passwd", 5, None])
def test_e015_an_unknown_time_zone(zone):
    [problem] = problems_of({"job": "noop", "cron": "* * * * *", "timezone": zone})

    assert problem.id == "django_dbq.E015"
    assert problem.msg == f"DBQ_SCHEDULES['nightly'] has an unknown time zone {zone!r}."
    assert "IANA time zone name" in problem.hint


@pytest.mark.parametrize("workspace", [["kind"], "daily", 5])
def test_e013_a_workspace_that_is_not_a_dict(workspace):
    [problem] = problems_of({"job": "noop", "every": 60, "workspace": workspace})

    assert problem.id == "django_dbq.E013"
    assert problem.msg == (
        f"DBQ_SCHEDULES['nightly'] has a workspace that is a {type(workspace).__name__}, "
        "not a dict."
    )
    assert problem.hint.startswith("Give a JSON object")


@pytest.mark.parametrize(
    "workspace", [{"at": datetime.date(2026, 1, 1)}, {"n": float("nan")}, {"s": {1, 2}}]
)
def test_e013_a_workspace_that_is_not_json(workspace):
    [problem] = problems_of({"job": "noop", "every": 60, "workspace": workspace})

    assert problem.id == "django_dbq.E013"
    assert problem.msg.startswith("DBQ_SCHEDULES['nightly'] has a workspace that is not JSON: ")
    assert problem.hint == "Use only dicts, lists, strings, numbers, booleans and None."


@pytest.mark.parametrize("queue", ["", 5, None, "q" * 65])
def test_e013_a_bad_queue(queue):
    [problem] = problems_of({"job": "noop", "every": 60, "queue": queue})

    assert problem.id == "django_dbq.E013"
    assert problem.msg == f"DBQ_SCHEDULES['nightly'] has queue {queue!r}."
    assert problem.hint == "Use a non-empty string of at most 64 characters."


@pytest.mark.parametrize("priority", [1.5, True, "1", None, 2**31, -(2**31) - 1])
def test_e013_a_bad_priority(priority):
    [problem] = problems_of({"job": "noop", "every": 60, "priority": priority})

    assert problem.id == "django_dbq.E013"
    assert problem.msg == f"DBQ_SCHEDULES['nightly'] has priority {priority!r}."
    assert problem.hint == "Use an integer."


@pytest.mark.parametrize("priority", [2**31 - 1, -(2**31)])
def test_the_priority_bounds_are_those_of_the_column(priority):
    specs, problems = schedules.validate({"s": {"job": "noop", "every": 60, "priority": priority}})

    assert problems == []
    assert specs["s"].priority == priority


@pytest.mark.parametrize("missed", ["always", "ONCE", None, True])
def test_e013_a_bad_missed_policy(missed):
    [problem] = problems_of({"job": "noop", "every": 60, "missed": missed})

    assert problem.id == "django_dbq.E013"
    assert problem.msg == f"DBQ_SCHEDULES['nightly'] has 'missed' = {missed!r}."
    assert "'once'" in problem.hint and "'skip'" in problem.hint


@pytest.mark.parametrize("enabled", [1, 0, "yes", None])
def test_e013_enabled_is_not_a_bool(enabled):
    [problem] = problems_of({"job": "noop", "every": 60, "enabled": enabled})

    assert problem.id == "django_dbq.E013"
    assert problem.msg == f"DBQ_SCHEDULES['nightly'] has 'enabled' = {enabled!r}."
    assert problem.hint == "Use True or False."


def test_every_problem_of_one_entry_is_reported_at_once():
    problems = problems_of(
        {
            "job": "nop",
            "cron": "61 * * * *",
            "timezone": "Nowhere",
            "queue": "",
            "priority": 1.5,
            "missed": "always",
            "enabled": "yes",
            "workspace": [],
        }
    )

    assert sorted(p.id for p in problems) == [
        "django_dbq.E013",  # workspace
        "django_dbq.E013",  # queue
        "django_dbq.E013",  # priority
        "django_dbq.E013",  # missed
        "django_dbq.E013",  # enabled
        "django_dbq.E014",
        "django_dbq.E015",
        "django_dbq.E016",
    ]


# --- the same problems through Django's checks -----------------------------------------


def dbq_messages() -> list[checks.CheckMessage]:
    return checks.run_checks(tags=["django_dbq"])


def test_the_test_settings_have_no_schedule_problems():
    assert [m for m in dbq_messages() if m.id in CHECK_IDS] == []


def test_good_schedules_pass_the_checks():
    good = {
        "tidy": {"job": "noop", "cron": "*/5 * * * *", "timezone": LONDON},
        "beat": {"job": "noop", "every": 30, "missed": "skip", "enabled": False},
    }
    with override_settings(DBQ_SCHEDULES=good):
        assert dbq_messages() == []


CHECK_IDS = {"django_dbq.E013", "django_dbq.E014", "django_dbq.E015", "django_dbq.E016"}
CHECKED = [
    ("not-a-dict", ["x"], "django_dbq.E013", "setting is a list, not a dict"),
    ("bad-name", {"": {"job": "noop", "every": 60}}, "django_dbq.E013", "not a valid schedule"),
    ("entry", {"s": "noop"}, "django_dbq.E013", "is a str, not a dict"),
    ("key", {"s": {"job": "noop", "every": 60, "cronn": 1}}, "django_dbq.E013", "unknown key"),
    ("job", {"s": {"job": "nop", "every": 60}}, "django_dbq.E016", "which is not in JOBS"),
    ("both", {"s": {"job": "noop", "every": 60, "cron": "* * * * *"}}, "django_dbq.E014", "one of"),
    ("cron", {"s": {"job": "noop", "cron": "61 * * * *"}}, "django_dbq.E014", "bad minute"),
    ("6-field", {"s": {"job": "noop", "cron": "0 * * * * *"}}, "django_dbq.E014", "no seconds"),
    ("every", {"s": {"job": "noop", "every": 1.5}}, "django_dbq.E014", "'every' = 1.5"),
    (
        "zone",
        {"s": {"job": "noop", "every": 60, "timezone": "Mars/Base"}},
        "django_dbq.E015",
        "unknown time zone",
    ),
    (
        "workspace",
        {"s": {"job": "noop", "every": 60, "workspace": {"n": float("inf")}}},
        "django_dbq.E013",
        "not JSON",
    ),
    ("queue", {"s": {"job": "noop", "every": 60, "queue": ""}}, "django_dbq.E013", "queue ''"),
    ("priority", {"s": {"job": "noop", "every": 60, "priority": "1"}}, "django_dbq.E013", "prio"),
    ("missed", {"s": {"job": "noop", "every": 60, "missed": "x"}}, "django_dbq.E013", "'missed'"),
    ("enabled", {"s": {"job": "noop", "every": 60, "enabled": 1}}, "django_dbq.E013", "'enabled'"),
]


@pytest.mark.parametrize(
    ("raw", "check_id", "fragment"), [c[1:] for c in CHECKED], ids=[c[0] for c in CHECKED]
)
def test_the_checks_report_each_problem_with_its_id(raw, check_id, fragment):
    [expected] = schedules.validate(raw)[1]

    with override_settings(DBQ_SCHEDULES=raw):
        messages = dbq_messages()

    [message] = messages
    assert message.level == checks.ERROR
    assert message.id == check_id
    assert fragment in message.msg
    assert (message.msg, message.hint) == (expected.msg, expected.hint)


# --- ticks: every N seconds, cron in a zone, next_tick ----------------------------------


@pytest.mark.parametrize("every", [1, 7, 30, 60, 3600, 86400])
def test_every_ticks_are_multiples_of_n_seconds_since_the_epoch(every):
    after = utc(2026, 5, 17, 13, 21, 9) + datetime.timedelta(microseconds=123)

    ticks = list(itertools.islice(schedules.ticks_after(after, every=every), 5))

    assert all(int(t.timestamp()) % every == 0 and t.microsecond == 0 for t in ticks)
    assert all(t.tzinfo == UTC for t in ticks)
    assert ticks[0] > after and ticks[0] - after <= datetime.timedelta(seconds=every)
    assert [b - a for a, b in itertools.pairwise(ticks)] == [datetime.timedelta(seconds=every)] * 4


def test_every_ticks_are_strictly_after_and_ignore_the_time_zone():
    on_a_tick = utc(2026, 1, 1, 12, 0)

    assert schedules.next_tick(on_a_tick, every=60) == utc(2026, 1, 1, 12, 1)
    assert schedules.next_tick(on_a_tick, every=60, timezone="Asia/Kolkata") == utc(
        2026, 1, 1, 12, 1
    )
    # An aware datetime in another zone is the same instant.
    kolkata = on_a_tick.astimezone(datetime.timezone(datetime.timedelta(hours=5, minutes=30)))
    assert schedules.next_tick(kolkata, every=3600) == utc(2026, 1, 1, 13, 0)


def test_cron_ticks_are_read_in_the_schedules_time_zone():
    # 09:00 on weekdays in New York: 14:00 UTC in winter (EST), 13:00 UTC in summer (EDT).
    timing = {"cron": "0 9 * * MON-FRI", "timezone": "America/New_York"}

    winter = list(itertools.islice(schedules.ticks_after(utc(2026, 1, 9, 15), **timing), 2))
    summer = list(itertools.islice(schedules.ticks_after(utc(2026, 7, 1, 0), **timing), 3))

    assert winter == [utc(2026, 1, 12, 14), utc(2026, 1, 13, 14)]  # Friday 9th done: Monday
    assert summer == [utc(2026, 7, 1, 13), utc(2026, 7, 2, 13), utc(2026, 7, 3, 13)]
    assert all(t.tzinfo == UTC for t in winter + summer)
    # A half-hour zone: 09:00 in Kolkata is 03:30 UTC.
    assert schedules.next_tick(utc(2026, 1, 1), cron="0 9 * * *", timezone="Asia/Kolkata") == utc(
        2026, 1, 1, 3, 30
    )


def test_cron_ticks_are_strictly_after():
    assert schedules.next_tick(utc(2026, 1, 1, 12, 0), cron="*/15 * * * *") == utc(
        2026, 1, 1, 12, 15
    )
    assert schedules.next_tick(utc(2026, 1, 1, 11, 59, 59, 999999), cron="*/15 * * * *") == utc(
        2026, 1, 1, 12, 0
    )
    assert schedules.next_tick(utc(2026, 1, 1, 12, 0, 30), cron="* * * * *") == utc(
        2026, 1, 1, 12, 1
    )


def test_an_expression_or_interval_that_is_not_understood_is_a_value_error():
    # A row of the schedule table can hold what a check would have refused.
    with pytest.raises(ValueError, match="invalid cron expression '61 \\* \\* \\* \\*'"):
        schedules.next_tick(utc(2026, 1, 1), cron="61 * * * *")
    with pytest.raises(ValueError, match="every must be"):
        schedules.next_tick(utc(2026, 1, 1), every=0)


def test_cron_problem():
    assert schedules.cron_problem("30 2 * * MON-FRI") is None
    assert schedules.cron_problem("61 * * * *") == "bad minute"
    assert schedules.cron_problem("* * * *") == "4 fields, not 5"
    assert schedules.cron_problem("0 * * * * *") == "6 fields, not 5 (there is no seconds field)"
    assert schedules.cron_problem(None) == "a NoneType, not a string"


# --- the clock changes in Europe/London (2026-03-29 and 2026-10-25) ---------------------

# Local days, in UTC: 29 March 2026 is 23 hours long (GMT 00:00 to BST 24:00); 25
# October 2026 is 25 hours long (BST 00:00 to GMT 24:00).
SPRING_DAY = (utc(2026, 3, 29, 0), utc(2026, 3, 29, 23))
AUTUMN_DAY = (utc(2026, 10, 24, 23), utc(2026, 10, 26, 0))


def test_0130_on_the_spring_change_fires_once_right_after_it():
    # 01:00 GMT becomes 02:00 BST: 01:30 does not exist; it fires at 02:00 BST (01:00 UTC).
    timing = {"cron": "30 1 * * *", "timezone": LONDON}

    assert between(*SPRING_DAY, **timing) == [utc(2026, 3, 29, 1, 0)]
    assert between(utc(2026, 3, 28), utc(2026, 3, 31), **timing) == [
        utc(2026, 3, 28, 1, 30),  # GMT
        utc(2026, 3, 29, 1, 0),  # 02:00 BST
        utc(2026, 3, 30, 0, 30),  # 01:30 BST
    ]


def test_0130_on_the_autumn_change_fires_once_at_the_first():
    # 02:00 BST becomes 01:00 GMT: 01:30 happens twice; it fires at the first (BST).
    timing = {"cron": "30 1 * * *", "timezone": LONDON}

    assert between(*AUTUMN_DAY, **timing) == [utc(2026, 10, 25, 0, 30)]
    assert between(utc(2026, 10, 24), utc(2026, 10, 27), **timing) == [
        utc(2026, 10, 24, 0, 30),  # BST
        utc(2026, 10, 25, 0, 30),  # the first 01:30 (BST) ...
        utc(2026, 10, 26, 1, 30),  # ... not the second (01:30 UTC on the 25th): GMT
    ]
    # From just after the first 01:30, or inside the repeated hour, the next is the 26th.
    for after in (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 1, 29)):
        assert schedules.next_tick(after, **timing) == utc(2026, 10, 26, 1, 30)


def test_0230_fires_once_on_both_change_days():
    timing = {"cron": "30 2 * * *", "timezone": LONDON}

    assert between(*SPRING_DAY, **timing) == [utc(2026, 3, 29, 1, 30)]  # 02:30 BST
    assert between(*AUTUMN_DAY, **timing) == [utc(2026, 10, 25, 2, 30)]  # 02:30 GMT


def test_hourly_fires_every_real_hour_across_both_changes():
    timing = {"cron": "0 * * * *", "timezone": LONDON}

    spring = between(*SPRING_DAY, **timing)
    autumn = between(*AUTUMN_DAY, **timing)

    assert len(spring) == 23
    assert spring == [utc(2026, 3, 29, 0) + n * HOUR for n in range(23)]
    assert len(autumn) == 25
    assert autumn == [utc(2026, 10, 24, 23) + n * HOUR for n in range(25)]


def test_hourly_chained_from_each_tick_inside_the_repeated_hour():
    # The scheduler asks for the tick after its last one: inside the repeated hour
    # (01:00 GMT is a second 01:00 local) it must go on to 02:00 GMT, not back.
    timing = {"cron": "0 * * * *", "timezone": LONDON}
    tick, chain = utc(2026, 10, 24, 23), []
    for _ in range(5):
        tick = schedules.next_tick(tick, **timing)
        chain.append(tick)

    assert chain == [utc(2026, 10, 25, h) for h in range(5)]


def test_a_worker_polling_through_the_autumn_night_fires_each_tick_once():
    # Poll every 20 s from 22:00 UTC to 04:00 UTC, as the scheduler does, each time
    # from the last tick handled.
    fired: dict[str, list[datetime.datetime]] = {}
    for cron in ("30 1 * * *", "0 * * * *", "*/20 * * * *"):
        after, now, ticks = utc(2026, 10, 24, 22), utc(2026, 10, 24, 22), []
        while now <= utc(2026, 10, 25, 4):
            due = schedules.due_ticks(after, now, cron=cron, timezone=LONDON)
            ticks += due
            after = max([after, *due])
            now += 20 * SECOND
        fired[cron] = ticks

    assert fired["30 1 * * *"] == [utc(2026, 10, 25, 0, 30)]
    assert fired["0 * * * *"] == [utc(2026, 10, 24, 23)] + [utc(2026, 10, 25, h) for h in range(5)]
    assert fired["*/20 * * * *"] == [utc(2026, 10, 24, 22, 20) + n * 20 * MINUTE for n in range(18)]


# --- due_ticks() and latest_missed() ----------------------------------------------------

T = utc(2026, 1, 5, 12, 0)  # a multiple of every period used below


@pytest.mark.parametrize("missed", ["once", "skip"])
def test_a_tick_just_due_fires(missed):
    assert schedules.due_ticks(T, T + MINUTE, every=60, missed=missed) == [T + MINUTE]
    assert schedules.due_ticks(T, T + MINUTE, cron="* * * * *", missed=missed) == [T + MINUTE]


@pytest.mark.parametrize("missed", ["once", "skip"])
def test_nothing_is_due_before_the_next_tick(missed):
    just_before = T + MINUTE - datetime.timedelta(microseconds=1)

    assert schedules.due_ticks(T, just_before, every=60, missed=missed) == []
    assert schedules.due_ticks(T, T, every=60, missed=missed) == []  # T is handled
    assert schedules.latest_missed(T, just_before, every=60) is None


@pytest.mark.parametrize("missed", ["once", "skip"])
def test_a_tick_a_few_seconds_late_still_fires(missed):
    now = T + MINUTE + (LATE_SECONDS - 1) * SECOND

    assert schedules.due_ticks(T, now, every=60, missed=missed) == [T + MINUTE]
    assert schedules.latest_missed(T, now, every=60) is None


@pytest.mark.parametrize("missed", ["once", "skip"])
def test_several_ticks_within_late_seconds_each_fire_in_order(missed):
    now = T + 9 * SECOND

    assert schedules.due_ticks(T, now, every=3, missed=missed) == [
        T + 3 * SECOND,
        T + 6 * SECOND,
        T + 9 * SECOND,
    ]


def test_after_an_outage_once_fires_the_latest_missed_tick_alone():
    now = T + 3 * HOUR + 30 * SECOND  # no tick in the last LATE_SECONDS

    assert schedules.latest_missed(T, now, every=60) == T + 3 * HOUR
    assert schedules.due_ticks(T, now, every=60, missed="once") == [T + 3 * HOUR]
    assert schedules.due_ticks(T, now, cron="* * * * *", missed="once") == [T + 3 * HOUR]


def test_after_an_outage_once_fires_the_latest_missed_and_the_late_ticks():
    now = T + 3 * HOUR + 5 * SECOND  # 15:00 is 5 s late, 14:59 was missed

    expected = [T + 3 * HOUR - MINUTE, T + 3 * HOUR]
    assert schedules.due_ticks(T, now, every=60, missed="once") == expected
    assert schedules.due_ticks(T, now, cron="* * * * *", missed="once") == expected


def test_after_an_outage_skip_fires_none_of_the_missed_ticks():
    assert schedules.due_ticks(T, T + 3 * HOUR + 30 * SECOND, every=60, missed="skip") == []
    assert schedules.due_ticks(T, T + 3 * HOUR + 30 * SECOND, cron="* * * * *", missed="skip") == []
    # ... only one late by at most LATE_SECONDS.
    assert schedules.due_ticks(T, T + 3 * HOUR + 5 * SECOND, every=60, missed="skip") == [
        T + 3 * HOUR
    ]


def test_a_tick_exactly_late_seconds_old_fires_on_its_own():
    now = T + MINUTE + LATE_SECONDS * SECOND

    assert schedules.due_ticks(T, now, every=60, missed="skip") == [T + MINUTE]


def test_never_more_than_max_late_ticks():
    # Every second, back after an hour: 10 ticks are late by at most LATE_SECONDS,
    # and one was missed; the latest MAX_LATE_TICKS fire.
    now = T + HOUR

    for missed in ("once", "skip"):
        ticks = schedules.due_ticks(T, now, every=1, missed=missed)

        assert len(ticks) == MAX_LATE_TICKS
        assert ticks == [now - n * SECOND for n in reversed(range(MAX_LATE_TICKS))]


def test_a_months_long_outage_on_an_every_minute_cron_is_not_walked_tick_by_tick(monkeypatch):
    after, now = utc(2026, 1, 1), utc(2026, 6, 1, 0, 0, 30)  # 151 days: 217,440 ticks
    walked = 0
    real = schedules.ticks_after

    def counting(*args, **kwargs):
        nonlocal walked
        for tick in real(*args, **kwargs):
            walked += 1
            yield tick

    monkeypatch.setattr(schedules, "ticks_after", counting)

    assert schedules.latest_missed(after, now, cron="* * * * *") == utc(2026, 6, 1, 0, 0)
    assert schedules.due_ticks(after, now, cron="* * * * *") == [utc(2026, 6, 1, 0, 0)]
    assert walked < 3 * 24 * 60  # a day's ticks for each call, not five months'


def test_a_sparse_schedule_finds_its_latest_missed_tick_after_400_days():
    after, now = utc(2025, 1, 1, 3), utc(2026, 2, 5)  # the tick of 2025 handled; 400 days
    timing = {"cron": "0 3 1 1 *", "timezone": LONDON}  # 03:00 on 1 January (GMT = UTC)

    assert schedules.latest_missed(after, now, **timing) == utc(2026, 1, 1, 3)
    assert schedules.due_ticks(after, now, missed="once", **timing) == [utc(2026, 1, 1, 3)]
    assert schedules.due_ticks(after, now, missed="skip", **timing) == []
    assert schedules.next_tick(now, **timing) == utc(2027, 1, 1, 3)


def test_latest_missed_is_none_when_nothing_was_missed():
    assert schedules.latest_missed(T, T + 5 * SECOND, every=60) is None  # too soon to miss
    # The only tick since was handled: nothing after it is missed.
    assert schedules.latest_missed(T + HOUR, T + HOUR + 50 * SECOND, every=60) is None
    assert schedules.latest_missed(utc(2026, 1, 1, 3), utc(2026, 6, 1), cron="0 3 1 1 *") is None
