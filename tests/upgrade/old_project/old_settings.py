"""Settings of a project that runs django-db-queue 3.x (the package, not this one).

The database comes from ``DATABASE_URL`` (empty: SQLite) and ``UPGRADE_DB_NAME``.
The job names and task paths are those of tests/settings.py, so that django_dbq's
worker can run the jobs after the upgrade.
"""

import os

import dj_database_url

SECRET_KEY = "django-db-queue-upgrade-test"
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django_dbq"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
    if DATABASES["default"]["ENGINE"].endswith("mysql"):
        DATABASES["default"]["OPTIONS"] = {"charset": "utf8mb4"}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3"}}
DATABASES["default"]["NAME"] = os.environ["UPGRADE_DB_NAME"]

JOBS = {
    "chain": {"tasks": ["tests.tasks.step_one", "tests.tasks.step_two", "tests.tasks.step_three"]},
    "noop": {"tasks": ["tests.tasks.noop"]},
}
