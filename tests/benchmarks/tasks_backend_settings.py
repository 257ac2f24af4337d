"""Settings of django_dbq's side of tests/benchmarks/tasks_backend.py.

The test settings (database from ``DATABASE_URL`` and ``DBQ_DATABASE_NAME``) with
no JOBS job types, one django.tasks backend taking any queue, and quiet logs
(django-tasks-db's side logs at WARNING too).
"""

from tests.settings import *  # noqa: F403

JOBS = {}
TASKS = {
    "default": {
        "BACKEND": "django_dbq.integrations.tasks_backend.DatabaseBackend",
        "QUEUES": [],
    }
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    "loggers": {"django_dbq": {"level": "WARNING"}},
}
