"""django_dbq.checks: every system check id, and ``check`` / ``makemigrations`` on the project."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core import checks
from django.core.management import call_command
from django.test import override_settings

GOOD = ["tests.tasks.noop"]


def dbq_messages() -> list[checks.CheckMessage]:
    """Run django_dbq's registered checks (through Django's registry)."""
    return checks.run_checks(tags=["django_dbq"])


def only(messages: list[checks.CheckMessage], check_id: str) -> checks.CheckMessage:
    found = [m for m in messages if m.id == check_id]
    assert len(found) == 1, f"expected one {check_id}, got {messages!r}"
    return found[0]


def test_the_test_settings_pass_every_django_dbq_check():
    assert dbq_messages() == []


# Model checks ask the database whether it supports JSONField (SQLite).
@pytest.mark.django_db
def test_check_command_passes_with_the_test_settings():
    out = StringIO()

    call_command("check", stdout=out, stderr=StringIO())

    assert "System check identified no issues" in out.getvalue()


@pytest.mark.django_db
def test_makemigrations_reports_no_changes_for_django_dbq():
    out = StringIO()

    # --check exits with status 1 if the models and migrations disagree.
    call_command("makemigrations", "django_dbq", "--check", "--dry-run", stdout=out)

    assert "No changes detected" in out.getvalue()


def test_w002_jobs_missing_is_a_warning_so_that_migrate_runs(settings):
    del settings.JOBS
    settings.TASKS = {}

    message = only(dbq_messages(), "django_dbq.W002")

    assert message.level == checks.WARNING
    assert "JOBS setting is missing" in message.msg
    assert "django_dbq.E001" in message.hint  # what the worker and create_job say


def test_no_e001_when_only_django_tasks_are_run_by_our_backend(settings):
    del settings.JOBS
    settings.TASKS = {
        "default": {"BACKEND": "django_dbq.integrations.tasks_backend.DatabaseBackend"}
    }

    assert not [m for m in dbq_messages() if m.id == "django_dbq.E001"]


@pytest.mark.parametrize("raw", [["tests.tasks.noop"], "tests.tasks.noop", ("x",), 42])
def test_e002_jobs_not_a_dict(raw):
    with override_settings(JOBS=raw):
        messages = dbq_messages()

    message = only(messages, "django_dbq.E002")
    assert message.level == checks.ERROR
    assert f"JOBS setting is a {type(raw).__name__}" in message.msg
    assert [m.id for m in messages] == ["django_dbq.E002"]


@pytest.mark.parametrize(
    ("name", "entry", "named"),
    [
        ("", GOOD, "''"),
        ("x" * 101, GOOD, "x" * 101),
        (7, GOOD, "7"),
        ("stringy", "tests.tasks.noop", "'stringy'"),
        ("numeric", 3, "'numeric'"),
        ("nothing", None, "'nothing'"),
    ],
    ids=[
        "empty-name",
        "name-too-long",
        "name-not-a-string",
        "entry-a-string",
        "entry-a-number",
        "entry-none",
    ],
)
def test_e003_bad_job_name_or_entry(name, entry, named):
    with override_settings(JOBS={"noop": GOOD, name: entry}):
        messages = dbq_messages()

    message = only(messages, "django_dbq.E003")
    assert message.level == checks.ERROR
    assert named in message.msg
    assert [m.id for m in messages] == ["django_dbq.E003"]


def test_a_name_of_exactly_100_characters_is_valid():
    with override_settings(JOBS={"x" * 100: GOOD}):
        assert dbq_messages() == []


@pytest.mark.parametrize(
    "entry",
    [
        [],
        {},
        {"tasks": []},
        {"tasks": "tests.tasks.noop"},
        {"tasks": [""]},
        {"tasks": ["tests.tasks.noop", 5]},
        {"creation_hook": "tests.tasks.creation_hook"},
    ],
    ids=[
        "empty-list",
        "empty-dict",
        "empty-tasks",
        "tasks-a-string",
        "empty-path",
        "path-not-a-string",
        "hooks-only",
    ],
)
def test_e004_entry_with_no_tasks(entry):
    with override_settings(JOBS={"noop": GOOD, "taskless": entry}):
        message = only(dbq_messages(), "django_dbq.E004")

    assert message.level == checks.ERROR
    assert "JOBS['taskless']" in message.msg


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("tests.tasks.no_such_task", "ImportError"),
        ("no_such_module.task", "ModuleNotFoundError"),
        ("notdotted", "ImportError"),
    ],
)
def test_e005_task_does_not_import(path, reason):
    with override_settings(JOBS={"noop": GOOD, "broken": ["tests.tasks.noop", path]}):
        messages = dbq_messages()

    message = only(messages, "django_dbq.E005")
    assert message.level == checks.ERROR
    assert "JOBS['broken']" in message.msg
    assert repr(path) in message.msg
    assert reason in message.msg
    assert [m.id for m in messages] == ["django_dbq.E005"]


def test_e006_task_not_callable():
    with override_settings(JOBS={"noop": GOOD, "uncallable": ["tests.tasks.NOT_CALLABLE"]}):
        message = only(dbq_messages(), "django_dbq.E006")

    assert message.level == checks.ERROR
    assert "JOBS['uncallable']" in message.msg
    assert "'tests.tasks.NOT_CALLABLE'" in message.msg


HOOKS = ["creation_hook", "pre_task_hook", "post_task_hook", "failure_hook"]


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("tests.tasks.no_such_hook", "'tests.tasks.no_such_hook' cannot be imported"),
        ("no_such_module.hook", "'no_such_module.hook' cannot be imported"),
        (42, "is not a dotted path string"),
        ("", "is not a dotted path string"),
        (["tests.tasks.noop"], "is not a dotted path string"),
    ],
    ids=["missing-attribute", "missing-module", "number", "empty", "list"],
)
def test_e007_hook_does_not_import_or_is_not_a_string(hook, value, shown):
    with override_settings(JOBS={"noop": GOOD, "hooked": {"tasks": GOOD, hook: value}}):
        messages = dbq_messages()

    message = only(messages, "django_dbq.E007")
    assert message.level == checks.ERROR
    assert "JOBS['hooked']" in message.msg
    assert hook in message.msg
    assert shown in message.msg
    assert [m.id for m in messages] == ["django_dbq.E007"]


def test_e007_backoff_path_does_not_import():
    with override_settings(
        JOBS={"noop": GOOD, "backing": {"tasks": GOOD, "backoff": "tests.tasks.no_such_backoff"}}
    ):
        message = only(dbq_messages(), "django_dbq.E007")

    assert message.level == checks.ERROR
    assert "JOBS['backing'] backoff 'tests.tasks.no_such_backoff'" in message.msg


@pytest.mark.parametrize("hook", [*HOOKS, "backoff"])
def test_e008_hook_not_callable(hook):
    entry = {"tasks": GOOD, hook: "tests.tasks.NOT_CALLABLE"}
    with override_settings(JOBS={"noop": GOOD, "hooked": entry}):
        messages = dbq_messages()

    message = only(messages, "django_dbq.E008")
    assert message.level == checks.ERROR
    assert f"JOBS['hooked'] {hook} 'tests.tasks.NOT_CALLABLE' is not callable" in message.msg
    assert [m.id for m in messages] == ["django_dbq.E008"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_attempts", 0),
        ("max_attempts", -1),
        ("max_attempts", 2.5),
        ("max_attempts", "3"),
        ("max_attempts", True),
        ("backoff", -1),
        ("backoff", ""),
        ("backoff", None),
        ("backoff", True),
        ("backoff_max", -5),
        ("backoff_max", "60"),
        ("lease_seconds", 0),
        ("lease_seconds", 0.5),
        ("lease_seconds", "30"),
        ("lease_seconds", None),
    ],
)
def test_e009_bad_retry_or_lease_option(key, value):
    with override_settings(JOBS={"noop": GOOD, "opts": {"tasks": GOOD, key: value}}):
        messages = dbq_messages()

    message = only(messages, "django_dbq.E009")
    assert message.level == checks.ERROR
    assert f"JOBS['opts'][{key!r}] = {value!r} is invalid" in message.msg
    assert [m.id for m in messages] == ["django_dbq.E009"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_attempts", 1),
        ("max_attempts", 10),
        ("backoff", 0),
        ("backoff", 0.5),
        ("backoff_max", 0),
        ("lease_seconds", 1),
        ("lease_seconds", 600.5),
    ],
)
def test_valid_options_pass(key, value):
    with override_settings(JOBS={"opts": {"tasks": GOOD, key: value}}):
        assert dbq_messages() == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DBQ_LEASE_SECONDS", 0),
        ("DBQ_LEASE_SECONDS", "30"),
        ("DBQ_LEASE_SECONDS", None),
        ("DBQ_RESCUE_INTERVAL", 0),
        ("DBQ_RESCUE_INTERVAL", -1.0),
        ("DBQ_MAX_ERRORS_KEPT", 0),
        ("DBQ_MAX_ERRORS_KEPT", 2.5),
        ("DBQ_MAX_ERRORS_KEPT", True),
        ("DBQ_CLAIM_BATCH", 0),
        ("DBQ_CLAIM_BATCH", 10_001),
        ("DBQ_CLAIM_BATCH", "100"),
        ("DBQ_SQLITE_BUSY_TIMEOUT", -1),
        ("DBQ_SQLITE_BUSY_TIMEOUT", "30"),
        ("DBQ_MAX_WORKSPACE_BYTES", 0),
        ("DBQ_MAX_WORKSPACE_BYTES", 1.5e6),
        ("DBQ_MAX_WORKSPACE_BYTES", "8MB"),
        ("DBQ_METRICS_TOKEN", "short"),
        ("DBQ_METRICS_TOKEN", "   " * 10),
        ("DBQ_METRICS_TOKEN", 1234567890123456789),
        ("DBQ_LISTEN_DATABASE", "no-such-alias"),
        ("DBQ_LISTEN_DATABASE", 5432),
    ],
)
def test_e010_bad_dbq_setting(name, value):
    with override_settings(**{name: value}):
        messages = dbq_messages()

    message = only(messages, "django_dbq.E010")
    assert message.level == checks.ERROR
    assert f"The {name} setting is {value!r}." == message.msg
    assert [m.id for m in messages] == ["django_dbq.E010"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DBQ_LEASE_SECONDS", 1),
        ("DBQ_RESCUE_INTERVAL", 0.1),
        ("DBQ_MAX_ERRORS_KEPT", 1),
        ("DBQ_CLAIM_BATCH", 1),
        ("DBQ_CLAIM_BATCH", 10_000),
        ("DBQ_SQLITE_BUSY_TIMEOUT", 0),
        ("DBQ_SQLITE_BUSY_TIMEOUT", 2.5),
        ("DBQ_MAX_WORKSPACE_BYTES", 1),
        ("DBQ_MAX_WORKSPACE_BYTES", None),
        ("DBQ_METRICS_TOKEN", None),
        ("DBQ_METRICS_TOKEN", "a-long-enough-secret-token"),
        ("DBQ_LISTEN_DATABASE", "default"),
        ("DBQ_LISTEN_DATABASE", None),
    ],
)
def test_valid_dbq_settings_pass(name, value):
    with override_settings(**{name: value}):
        assert dbq_messages() == []


def test_e012_unknown_key_is_an_error_that_suggests_the_close_match():
    with override_settings(JOBS={"noop": GOOD, "typo": {"tasks": GOOD, "failure_hok": "x.y"}}):
        messages = dbq_messages()

    message = only(messages, "django_dbq.E012")
    assert message.level == checks.ERROR
    assert "JOBS['typo'] has an unknown key 'failure_hok'" in message.msg
    assert message.hint.startswith("Did you mean 'failure_hook'?")
    assert [m.id for m in messages] == ["django_dbq.E012"]


def test_e012_names_no_match_when_nothing_is_close():
    with override_settings(JOBS={"typo": {"tasks": GOOD, "colour": "blue"}}):
        message = only(dbq_messages(), "django_dbq.E012")
    assert "Did you mean" not in message.hint
    assert "max_attempts" in message.hint  # the known keys are listed


def test_every_problem_in_the_setting_is_reported_at_once():
    raw = {
        "noop": GOOD,
        "a": [],
        "b": ["tests.tasks.NOT_CALLABLE"],
        "c": {"tasks": GOOD, "max_attempts": 0, "extra": 1},
    }
    with override_settings(JOBS=raw, DBQ_CLAIM_BATCH=0):
        ids = sorted(m.id for m in dbq_messages())

    assert ids == [
        "django_dbq.E004",
        "django_dbq.E006",
        "django_dbq.E009",
        "django_dbq.E010",
        "django_dbq.E012",
    ]


# Model checks ask the database whether it supports JSONField (SQLite).
@pytest.mark.django_db
def test_check_command_fails_on_a_bad_jobs_setting():
    from django.core.management.base import SystemCheckError

    with (
        override_settings(JOBS={"x": ["tests.tasks.NOT_CALLABLE"]}),
        pytest.raises(SystemCheckError, match=r"django_dbq\.E006"),
    ):
        call_command("check", stdout=StringIO(), stderr=StringIO())


class ElsewhereRouter:
    """A project router that claims django_dbq's models for another database."""

    def db_for_read(self, model, **hints):
        return "elsewhere" if model._meta.app_label == "django_dbq" else None

    db_for_write = db_for_read


def test_e019_dbq_database_names_no_database():
    with override_settings(DBQ_DATABASE="queue"):
        error = only(dbq_messages(), "django_dbq.E019")

    assert error.msg == (
        "The DBQ_DATABASE setting is 'queue', which is not a database of DATABASES "
        "('default')."
    )
    assert "remove it to keep the queue in 'default'" in error.hint


def test_e019_a_router_sends_the_queue_elsewhere():
    with override_settings(DATABASE_ROUTERS=[f"{__name__}.ElsewhereRouter"]):
        error = only(dbq_messages(), "django_dbq.E019")
    assert "sends django_dbq's models to 'elsewhere'" in error.msg
    assert "django_dbq.routers.QueueRouter" in error.hint

    routers = [f"{__name__}.ElsewhereRouter", "django_dbq.routers.QueueRouter"]
    with override_settings(DATABASE_ROUTERS=routers):
        error = only(dbq_messages(), "django_dbq.E019")
    assert "move QueueRouter first" in error.hint

    with override_settings(DATABASE_ROUTERS=routers[::-1]):
        assert dbq_messages() == []
