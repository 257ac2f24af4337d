"""Settings of the django-tasks-db peer project.

- ``BENCH_DB``: ``postgres`` or ``sqlite``; ``BENCH_DB_NAME``: the database name
  (PostgreSQL) or file (SQLite).
- ``BENCH_TUNED=1``: persistent connections (``CONN_MAX_AGE=None``; the default
  0 closes the connection after every task) and, on SQLite, WAL journal with a
  30 s busy timeout. The 0.1 s poll interval and ``--no-startup-delay`` of the
  tuned configuration are worker options, passed by the suite.
"""

import os

SECRET_KEY = "dbq-bench-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django_tasks_db"]
TUNED = os.environ.get("BENCH_TUNED") == "1"

if os.environ.get("BENCH_DB", "postgres") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("BENCH_DB_NAME", "bench_tasksdb"),
            "USER": "postgres",
            "HOST": os.environ.get("BENCH_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("BENCH_PG_PORT", "5432"),
            "CONN_MAX_AGE": None if TUNED else 0,
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ["BENCH_DB_NAME"],
            "CONN_MAX_AGE": None if TUNED else 0,
            "OPTIONS": (
                {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                 "timeout": 30}
                if TUNED else {}
            ),
        }
    }

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
