"""First contact: what a new user sees when a step of the set-up is missing.

Each case is tried as a new user would, through ``manage.py``: the command
exits non-zero with one line that says what is wrong and what to do.
"""

from __future__ import annotations

import pytest

from tests.conftest import run_command

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

MIGRATE_FIRST = "run `python manage.py migrate` first"


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "args",
    [
        ["worker", "--burst"],
        ["worker", "--dry-run"],
        ["create_job", "noop"],
        ["queue_depth"],
        ["delete_old_jobs"],
    ],
    ids=["worker", "worker-dry-run", "create_job", "queue_depth", "delete_old_jobs"],
)
def test_a_command_before_migrate_says_to_migrate_in_one_line(empty_database, args):
    result = run_command(*args, DBQ_DATABASE_NAME=empty_database)

    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert MIGRATE_FIRST in last_line(result.stderr), result.stderr
    assert "CommandError" in result.stderr or len(result.stderr.strip().splitlines()) == 1


def test_migrate_works_before_jobs_is_set_and_the_worker_then_asks_for_it(empty_database):
    env = {
        "DBQ_DATABASE_NAME": empty_database,
        "DJANGO_SETTINGS_MODULE": "tests.settings_without_jobs",
    }

    migrated = run_command("migrate", "-v0", **env)
    assert migrated.returncode == 0, migrated.stderr
    assert "django_dbq.W002" in migrated.stderr  # a warning, not an error

    worker = run_command("worker", "--burst", **env)
    assert worker.returncode != 0
    assert "Traceback" not in worker.stderr, worker.stderr
    line = last_line(worker.stderr)
    assert "The JOBS setting is missing" in line and "django_dbq.E001" in line


def test_an_app_list_without_contenttypes_says_what_to_add():
    result = run_command("check", DJANGO_SETTINGS_MODULE="tests.settings_without_contenttypes")

    assert result.returncode != 0
    line = last_line(result.stderr)
    assert "'django.contrib.contenttypes'" in line and "INSTALLED_APPS" in line
