"""django_dbq.job_types: parsing the JOBS setting into frozen JobType definitions."""

from __future__ import annotations

import dataclasses
import random
from types import SimpleNamespace

import pytest
from django.test import override_settings

from django_dbq import job_types
from django_dbq.exceptions import JobConfigurationError, UnknownJobError
from django_dbq.job_types import JobType


def linear_backoff(attempt: int) -> float:
    """A custom backoff (named by dotted path in the tests below)."""
    return 10.0 * attempt


# --- parsing -----------------------------------------------------------------------------


def test_list_form_parses_into_a_job_type_with_default_options():
    parsed, problems = job_types.validate(
        {"short": ["tests.tasks.step_one", "tests.tasks.step_two"]}
    )

    assert problems == []
    assert parsed == {
        "short": JobType(name="short", tasks=("tests.tasks.step_one", "tests.tasks.step_two"))
    }
    job_type = parsed["short"]
    assert job_type.creation_hook is None
    assert job_type.pre_task_hook is None
    assert job_type.post_task_hook is None
    assert job_type.failure_hook is None
    assert job_type.max_attempts == 1
    assert job_type.lease_seconds is None


def test_dict_form_parses_tasks_hooks_and_options():
    raw = {
        "long": {
            "tasks": ["tests.tasks.step_one"],
            "creation_hook": "tests.tasks.creation_hook",
            "pre_task_hook": "tests.tasks.pre_task_hook",
            "post_task_hook": "tests.tasks.post_task_hook",
            "failure_hook": "tests.tasks.failure_hook",
            "max_attempts": 4,
            "backoff": 1.5,
            "backoff_max": 60,
            "lease_seconds": 120,
        }
    }

    parsed, problems = job_types.validate(raw)

    assert problems == []
    assert parsed["long"] == JobType(
        name="long",
        tasks=("tests.tasks.step_one",),
        creation_hook="tests.tasks.creation_hook",
        pre_task_hook="tests.tasks.pre_task_hook",
        post_task_hook="tests.tasks.post_task_hook",
        failure_hook="tests.tasks.failure_hook",
        max_attempts=4,
        backoff=1.5,
        backoff_max=60,
        lease_seconds=120,
    )


def test_tuple_of_tasks_is_accepted_like_a_list():
    parsed, problems = job_types.validate({"t": ("tests.tasks.noop",)})

    assert problems == []
    assert parsed["t"].tasks == ("tests.tasks.noop",)


@pytest.mark.parametrize("form", ["list", "dict"])
def test_job_type_is_frozen(form):
    raw = ["tests.tasks.noop"] if form == "list" else {"tasks": ["tests.tasks.noop"]}
    job_type = job_types.validate({"x": raw})[0]["x"]

    with pytest.raises(dataclasses.FrozenInstanceError):
        job_type.max_attempts = 10  # type: ignore[misc]
    assert isinstance(job_type.tasks, tuple)


def test_parsed_tasks_do_not_follow_later_changes_to_the_setting_list():
    tasks = ["tests.tasks.noop"]
    job_type = job_types.validate({"x": tasks})[0]["x"]

    tasks.append("tests.tasks.fail")

    assert job_type.tasks == ("tests.tasks.noop",)


def test_an_unknown_key_is_an_error_and_the_entry_is_left_out():
    parsed, problems = job_types.validate({"x": {"tasks": ["tests.tasks.noop"], "retries": 3}})

    assert [p.id for p in problems] == ["django_dbq.E012"]
    assert not problems[0].warning
    assert parsed == {}


def test_an_invalid_entry_is_left_out_and_valid_ones_kept():
    parsed, problems = job_types.validate({"good": ["tests.tasks.noop"], "bad": []})

    assert set(parsed) == {"good"}
    assert [p.id for p in problems] == ["django_dbq.E004"]


def test_validate_without_imports_does_not_import_task_paths():
    parsed, problems = job_types.validate({"x": ["no_such_module.task"]}, imports=False)

    assert problems == []
    assert parsed["x"].tasks == ("no_such_module.task",)


# --- task chains ---------------------------------------------------------------------------


def test_first_task_and_task_after_walk_the_chain():
    job_type = JobType(name="c", tasks=("a.one", "a.two", "a.three"))

    assert job_type.first_task == "a.one"
    assert job_type.task_after("a.one") == "a.two"
    assert job_type.task_after("a.two") == "a.three"
    assert job_type.task_after("a.three") is None


def test_task_after_a_task_not_in_the_chain_raises():
    job_type = JobType(name="c", tasks=("a.one",))

    with pytest.raises(ValueError):
        job_type.task_after("a.other")


# --- leases and retry delays ---------------------------------------------------------------


@override_settings(DBQ_LEASE_SECONDS=45)
def test_lease_defaults_to_the_setting_and_can_be_overridden_per_type():
    assert JobType(name="a", tasks=("x.y",)).lease() == 45.0
    assert JobType(name="b", tasks=("x.y",), lease_seconds=7).lease() == 7


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(0, 2.0), (1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0)],
)
def test_retry_delay_is_exponential_with_jitter_between_half_and_all(monkeypatch, attempt, ceiling):
    job_type = JobType(name="r", tasks=("x.y",), backoff=2.0, backoff_max=3600)

    monkeypatch.setattr(job_types, "random", SimpleNamespace(uniform=lambda low, high: low))
    assert job_type.retry_delay(attempt) == ceiling / 2
    monkeypatch.setattr(job_types, "random", SimpleNamespace(uniform=lambda low, high: high))
    assert job_type.retry_delay(attempt) == ceiling


def test_retry_delay_jitters_within_its_bounds(monkeypatch):
    monkeypatch.setattr(job_types, "random", random.Random(1234))
    job_type = JobType(name="r", tasks=("x.y",), backoff=2.0, backoff_max=3600)

    delays = [job_type.retry_delay(4) for _ in range(200)]

    assert all(8.0 <= delay <= 16.0 for delay in delays)
    assert len(set(delays)) > 100  # jittered, not a fixed delay


@pytest.mark.parametrize("attempt", [7, 10, 60])
def test_retry_delay_is_capped_at_backoff_max(monkeypatch, attempt):
    job_type = JobType(name="r", tasks=("x.y",), backoff=2.0, backoff_max=100)

    monkeypatch.setattr(job_types, "random", SimpleNamespace(uniform=lambda low, high: (low, high)))
    assert job_type.retry_delay(attempt) == (50.0, 100)


def test_retry_delay_of_zero_backoff_is_zero():
    assert JobType(name="r", tasks=("x.y",), backoff=0).retry_delay(3) == 0


def test_retry_delay_with_a_dotted_path_calls_it_with_the_attempt():
    job_type = JobType(name="r", tasks=("x.y",), backoff="tests.test_job_types.linear_backoff")

    assert job_type.retry_delay(1) == 10.0
    assert job_type.retry_delay(3) == 30.0


def test_dotted_path_backoff_parses_from_the_setting():
    raw = {"r": {"tasks": ["tests.tasks.noop"], "backoff": "tests.test_job_types.linear_backoff"}}

    parsed, problems = job_types.validate(raw)

    assert problems == []
    assert parsed["r"].retry_delay(2) == 20.0


# --- job_types() and get_job_type() ---------------------------------------------------------


def test_job_types_parses_the_current_setting(settings):
    types = job_types.job_types()

    assert set(types) == set(settings.JOBS)
    assert types["chain"].tasks == tuple(settings.JOBS["chain"]["tasks"])
    assert types["noop"].tasks == ("tests.tasks.noop",)


def test_job_types_is_cached_for_one_setting_value():
    assert job_types.job_types() is job_types.job_types()


def test_job_types_cache_follows_override_settings():
    before = job_types.job_types()
    assert "only_here" not in before

    with override_settings(JOBS={"only_here": ["tests.tasks.noop"]}):
        inside = job_types.job_types()
        assert set(inside) == {"only_here"}
        assert job_types.get_job_type("only_here").tasks == ("tests.tasks.noop",)
        with pytest.raises(UnknownJobError):
            job_types.get_job_type("noop")

    after = job_types.job_types()
    assert "only_here" not in after
    assert set(after) == set(before)


@pytest.mark.parametrize(
    ("raw", "check_id"),
    [
        (["tests.tasks.noop"], "django_dbq.E002"),
        ({"x": []}, "django_dbq.E004"),
        ({"x": "tests.tasks.noop"}, "django_dbq.E003"),
        ({"x": {"tasks": ["tests.tasks.noop"], "max_attempts": 0}}, "django_dbq.E009"),
        ({"x": {"tasks": ["tests.tasks.noop"], "failure_hook": 5}}, "django_dbq.E007"),
    ],
    ids=["not-a-dict", "no-tasks", "entry-a-string", "bad-option", "hook-not-a-string"],
)
def test_job_types_raises_on_a_malformed_setting(raw, check_id):
    with override_settings(JOBS=raw), pytest.raises(JobConfigurationError) as excinfo:
        job_types.job_types()

    assert check_id in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_job_types_raises_when_jobs_is_missing(settings):
    del settings.JOBS
    settings.TASKS = {}

    with pytest.raises(JobConfigurationError, match=r"JOBS setting is missing.*E001"):
        job_types.job_types()


def test_job_types_refuses_an_unknown_key_with_a_one_line_error():
    with (
        override_settings(JOBS={"x": {"tasks": ["tests.tasks.noop"], "max_attempt": 3}}),
        pytest.raises(JobConfigurationError) as excinfo,
    ):
        job_types.job_types()
    assert "Did you mean 'max_attempts'?" in str(excinfo.value)
    assert "django_dbq.E012" in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_get_job_type_returns_the_definition():
    job_type = job_types.get_job_type("chain")

    assert job_type.name == "chain"
    assert job_type.creation_hook == "tests.tasks.creation_hook"


@pytest.mark.parametrize("name", ["no_such_job", "", "NOOP", ["noop"]])
def test_get_job_type_unknown_name_lists_the_known_names(settings, name):
    with pytest.raises(UnknownJobError) as excinfo:
        job_types.get_job_type(name)

    message = str(excinfo.value)
    assert repr(name) in message
    assert ", ".join(sorted(settings.JOBS)) in message
    assert excinfo.value.known == list(settings.JOBS)
    assert isinstance(excinfo.value, ValueError)


def test_get_job_type_with_an_empty_jobs_setting_says_so():
    with override_settings(JOBS={}), pytest.raises(UnknownJobError, match="JOBS is empty"):
        job_types.get_job_type("noop")


def test_resolve_imports_the_dotted_path():
    from tests import tasks

    assert job_types.resolve("tests.tasks.noop") is tasks.noop


# --- built-in job types and per-job options ------------------------------------------------


def per_job_options(job) -> dict:
    """A job_options function (named by dotted path below): options from the workspace."""
    return {**job.workspace.get("options", {}), "tasks": ("ignored",)}


def broken_options(job) -> dict:
    raise RuntimeError("bad row")


@pytest.fixture
def builtin(monkeypatch):
    """A built-in job type "dbq.test" whose jobs carry their own options."""
    job_type = JobType(
        name="dbq.test",
        tasks=("tests.tasks.noop",),
        max_attempts=2,
        job_options="tests.test_job_types.per_job_options",
    )
    monkeypatch.setitem(job_types.BUILTIN_JOB_TYPES, "dbq.test", job_type)
    return job_type


def test_a_builtin_job_type_is_known_but_not_part_of_jobs(builtin, settings):
    assert job_types.get_job_type("dbq.test") is builtin
    assert "dbq.test" not in job_types.job_types()
    with pytest.raises(UnknownJobError) as excinfo:
        job_types.get_job_type("no_such_job")
    assert "dbq.test" not in excinfo.value.known
    del settings.JOBS
    assert job_types.get_job_type("dbq.test") is builtin


def test_the_django_tasks_job_type_is_built_in():
    job_type = job_types.get_job_type(job_types.TASKS_JOB_NAME)
    assert job_type.tasks == ("django_dbq.integrations.tasks_backend.run_task",)
    assert job_type.job_options == "django_dbq.integrations.tasks_backend.job_options"


def test_a_jobs_entry_cannot_take_a_builtin_name():
    _, problems = job_types.validate({job_types.TASKS_JOB_NAME: ["tests.tasks.noop"]})
    [problem] = problems
    assert problem.id == "django_dbq.E003"
    assert "reserved" in problem.msg


def test_job_type_for_applies_the_jobs_own_options(builtin):
    job = SimpleNamespace(name="dbq.test", pk=1, workspace={"options": {"max_attempts": 5}})
    job_type = job_types.job_type_for(job)
    assert job_type.max_attempts == 5
    assert job_type.tasks == builtin.tasks  # only PER_JOB_OPTION_KEYS are taken
    plain = SimpleNamespace(name="dbq.test", pk=2, workspace={})
    assert job_types.job_type_for(plain) == builtin


def test_job_type_for_a_jobs_type_or_an_unknown_name():
    noop = job_types.get_job_type("noop")
    assert job_types.job_type_for(SimpleNamespace(name="noop", pk=1)) is noop
    assert job_types.job_type_for(SimpleNamespace(name="gone", pk=1)) is None


def test_job_type_for_falls_back_when_job_options_fails(builtin, monkeypatch, caplog):
    monkeypatch.setitem(
        job_types.BUILTIN_JOB_TYPES,
        "dbq.test",
        dataclasses.replace(builtin, job_options="tests.test_job_types.broken_options"),
    )
    job = SimpleNamespace(name="dbq.test", pk=7, workspace={})
    assert job_types.job_type_for(job).max_attempts == 2
    assert "Could not read the options of job 7" in caplog.text
