"""Settings of the example and test project.

The database comes from ``DATABASE_URL`` (default: a SQLite file beside this
project), so the same suite runs on SQLite, PostgreSQL and MariaDB::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test pytest
    DATABASE_URL=mysql://root@127.0.0.1:3306/test pytest

Worker processes started by the tests get ``DBQ_DATABASE_NAME`` so that they
use the test database.
"""

import os
from pathlib import Path

import django

from tests.failure_jobs import FAILURE_JOBS

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "django_dbq-example-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_dbq",
    "tests",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
STATIC_URL = "static/"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.request",
            ]
        },
    }
]


# Lets two test runs share a database server without sharing a test database.
TEST_SUFFIX = os.environ.get("DBQ_TEST_SUFFIX", "")


def _database() -> dict:
    url = os.environ.get("DATABASE_URL", "")
    if url:
        import dj_database_url

        config = dj_database_url.parse(url)
    else:
        config = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(BASE_DIR / "db.sqlite3")}
    engine = config["ENGINE"]
    if engine.endswith("sqlite3"):
        config.setdefault("OPTIONS", {}).update(
            {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            }
        )
        config["TEST"] = {"NAME": str(BASE_DIR / f"test-db{TEST_SUFFIX}.sqlite3")}
    elif engine.endswith("mysql"):
        config.setdefault("OPTIONS", {}).update({"charset": "utf8mb4"})
        config["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
    if not engine.endswith("sqlite3"):
        config.setdefault("TEST", {})["NAME"] = f"test_{config['NAME']}{TEST_SUFFIX}"
    if os.environ.get("DBQ_DATABASE_NAME"):
        config["NAME"] = os.environ["DBQ_DATABASE_NAME"]
    return config


DATABASES = {"default": _database()}

# Runs through PgBouncer in transaction-pooling mode (.ci/run sets DBQ_TEST_PGBOUNCER=1
# and points DATABASE_URL at it): a server-side cursor cannot outlive a transaction
# there, so Django must not use them (docs/scaling.rst).
if os.environ.get("DBQ_TEST_PGBOUNCER"):
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
# psycopg 3 with server-side parameter binding (Django's option; off by default).
if os.environ.get("DBQ_TEST_SERVER_SIDE_BINDING"):
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True
# A direct connection for workers' LISTEN (DBQ_LISTEN_DATABASE), bypassing the pooler;
# the same test database as "default".
if os.environ.get("DBQ_TEST_LISTEN_URL"):
    import dj_database_url

    DATABASES["listen"] = dj_database_url.parse(os.environ["DBQ_TEST_LISTEN_URL"])
    DATABASES["listen"]["TEST"] = {"MIRROR": "default"}
    if os.environ.get("DBQ_DATABASE_NAME"):
        DATABASES["listen"]["NAME"] = os.environ["DBQ_DATABASE_NAME"]
    DBQ_LISTEN_DATABASE = "listen"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    "loggers": {"django_dbq": {"level": os.environ.get("DBQ_LOG_LEVEL", "INFO")}},
}

# Short leases so that tests see a killed worker's job rescued within seconds.
DBQ_LEASE_SECONDS = float(os.environ.get("DBQ_LEASE_SECONDS", "30"))
DBQ_RESCUE_INTERVAL = float(os.environ.get("DBQ_RESCUE_INTERVAL", "5"))
if os.environ.get("DBQ_MAX_WORKSPACE_BYTES"):
    DBQ_MAX_WORKSPACE_BYTES = int(os.environ["DBQ_MAX_WORKSPACE_BYTES"])
DBQ_CANCEL_GRACE = float(os.environ.get("DBQ_CANCEL_GRACE", "30"))
if os.environ.get("DBQ_QUEUE_LIMITS"):
    import json

    DBQ_QUEUE_LIMITS = json.loads(os.environ["DBQ_QUEUE_LIMITS"])
# The chaos suite's SQLite lock fault outlasts a short busy timeout.
DBQ_SQLITE_BUSY_TIMEOUT = float(os.environ.get("DBQ_SQLITE_BUSY_TIMEOUT", "30"))

JOBS = {
    # The README's demo: a chain that passes data through the workspace ...
    "demo_greeting": {
        "tasks": ["tests.demo.look_up_name", "tests.demo.greet"],
        "creation_hook": "tests.demo.stamp",
        "failure_hook": "tests.demo.report_failure",
    },
    # ... and a job that fails, to show what a failure looks like.
    "demo_failure": {
        "tasks": ["tests.demo.explode"],
        "failure_hook": "tests.demo.report_failure",
    },
    # Jobs used by the test suite.
    "noop": ["tests.tasks.noop"],
    "record": {"tasks": ["tests.tasks.record_execution"], "max_attempts": 5},
    "chain": {
        "tasks": ["tests.tasks.step_one", "tests.tasks.step_two", "tests.tasks.step_three"],
        "creation_hook": "tests.tasks.creation_hook",
        "pre_task_hook": "tests.tasks.pre_task_hook",
        "post_task_hook": "tests.tasks.post_task_hook",
        "failure_hook": "tests.tasks.failure_hook",
    },
    "failing": {
        "tasks": ["tests.tasks.fail"],
        "failure_hook": "tests.tasks.failure_hook",
        "post_task_hook": "tests.tasks.post_task_hook",
    },
    "flaky": {
        "tasks": ["tests.tasks.fail_until"],
        "max_attempts": 3,
        "backoff": 0,
        "failure_hook": "tests.tasks.failure_hook",
    },
    "retry_later": {
        "tasks": ["tests.tasks.fail"],
        "max_attempts": 3,
        "backoff": 600,
        "failure_hook": "tests.tasks.failure_hook",
    },
    "bad_pre_hook": {
        "tasks": ["tests.tasks.noop"],
        "pre_task_hook": "tests.tasks.fail",
        "post_task_hook": "tests.tasks.post_task_hook",
        "failure_hook": "tests.tasks.failure_hook",
    },
    "bad_post_hook": {"tasks": ["tests.tasks.noop"], "post_task_hook": "tests.tasks.fail"},
    "unserialisable": ["tests.tasks.leave_unserialisable_workspace"],
    "grow": ["tests.tasks.grow_workspace"],
    "sleepy": {"tasks": ["tests.tasks.sleep_then_record"], "max_attempts": 5},
    # The chaos suite (tests/chaos): killed workers count attempts, so allow many.
    "chaos": {"tasks": ["tests.chaos.tasks.record"], "max_attempts": 1000, "backoff": 0},
    "chaos_once": ["tests.chaos.tasks.record"],  # the default max_attempts of 1
    "chaos_limited": {
        "tasks": ["tests.chaos.tasks.record"],
        "max_attempts": 1000,
        "backoff": 0,
        "max_running": 3,
    },
    # The property-based worker test (tests/runtime/test_properties.py).
    "prop_once": ["tests.property_tasks.act"],
    "prop_retry": {"tasks": ["tests.property_tasks.act"], "max_attempts": 3, "backoff": 0},
    "prop_chain": {
        "tasks": ["tests.property_tasks.act"] * 3,
        "max_attempts": 2,
        "backoff": 0,
    },
    # Hooks that write to the workspace (saved as in django-db-queue).
    "hooks_note": {
        "tasks": ["tests.tasks.fail"],
        "failure_hook": "tests.tasks.note_failure_in_workspace",
        "post_task_hook": "tests.tasks.note_post_task_in_workspace",
    },
    "hooks_note_retry": {
        "tasks": ["tests.tasks.fail"],
        "max_attempts": 2,
        "backoff": 600,
        "failure_hook": "tests.tasks.note_failure_in_workspace",
        "post_task_hook": "tests.tasks.note_post_task_in_workspace",
    },
    "hooks_note_batch": {
        "tasks": ["tests.tasks.explode_batch"],
        "batch": {"size": 2},
        "failure_hook": "tests.tasks.note_failure_in_workspace",
    },
    # Batch job types.
    "count_clicks": {
        "tasks": ["tests.tasks.count_clicks"],
        "batch": {"size": 5, "wait": 1},
    },
    "full_batches_only": {"tasks": ["tests.tasks.count_clicks"], "batch": {"size": 5, "wait": 300}},
    "fail_some": {
        "tasks": ["tests.tasks.fail_some"],
        "batch": {"size": 10},
        "failure_hook": "tests.tasks.failure_hook",
    },
    "explode_batch": {
        "tasks": ["tests.tasks.explode_batch"],
        "batch": {"size": 10},
        "max_attempts": 2,
        "backoff": 600,
        "failure_hook": "tests.tasks.failure_hook",
    },
    "slow_batch": {
        "tasks": ["tests.tasks.slow_batch"],
        "batch": {"size": 3, "wait": 0},
        "max_attempts": 3,
    },
    # Unique jobs (tests/test_unique_jobs.py).
    "unique_invoice": {
        "tasks": ["tests.tasks.noop"],
        "unique": "invoice:{invoice_id}",
        "creation_hook": "tests.tasks.creation_hook",
    },
    "unique_debounced": {"tasks": ["tests.tasks.noop"], "unique": {"key": "{id}", "for": 60}},
    # Flow control (tests/runtime/test_flow.py).
    "limited": {"tasks": ["tests.flow_tasks.span"], "max_running": 3},
    "rated": {"tasks": ["tests.flow_tasks.start"], "rate": "50/s"},
    "unlimited_span": ["tests.flow_tasks.span"],
    "timed_sleep": {
        "tasks": ["tests.flow_tasks.sleep_forever"],
        "timeout": 1,
        "max_attempts": 2,
        "backoff": 0,
        "failure_hook": "tests.tasks.note_failure_in_workspace",
    },
    "timed_read": {"tasks": ["tests.flow_tasks.read_forever"], "timeout": 1},
    "cooperative": ["tests.flow_tasks.cooperative"],
    "stubborn": ["tests.flow_tasks.sleep_forever"],
    # The admin's tests (tests/admin): a chain whose second step always fails, twice.
    "admin_flaky": {
        "tasks": ["tests.tasks.noop", "tests.tasks.fail"],
        "max_attempts": 2,
        "backoff": 0,
        "failure_hook": "tests.tasks.failure_hook",
    },
}
JOBS.update(FAILURE_JOBS)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Django's tasks framework (django.tasks, Django 6.0+) through django_dbq's backend; on
# Django 5.2 there is no TASKS setting and tests/integrations/test_tasks_backend*.py are
# skipped.
if django.VERSION >= (6, 0):
    TASKS = {
        "default": {
            "BACKEND": "django_dbq.integrations.tasks_backend.DatabaseBackend",
            "QUEUES": ["default", "queue-1"],
        },
        # Backend-wide retry options, used by the retry tests.
        "retrying": {
            "BACKEND": "django_dbq.integrations.tasks_backend.DatabaseBackend",
            "QUEUES": [],
            "OPTIONS": {"max_attempts": 3, "backoff": 0},
        },
        "dummy": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"},
    }
