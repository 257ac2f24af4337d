"""System checks for the JOBS and DBQ_* settings; every id is listed in docs/checks.rst."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.db import router

from . import conf, job_types, limits, options, schedules
from .models import Job
from .routers import QueueRouter

ROUTER_PATH = "django_dbq.routers.QueueRouter"


@checks.register("django_dbq")
def check_jobs_setting(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """django_dbq.E002-E009, E011, E012 and W002: the JOBS setting."""
    _, problems = job_types.validate(conf.raw_jobs(), imports=True)
    messages: list[checks.CheckMessage] = []
    for problem in problems:
        if problem.id == "django_dbq.E001":
            # Not an error here: migrate (which runs the checks) must work before JOBS
            # exists. The commands that need JOBS refuse to run with E001.
            messages.append(
                checks.Warning(
                    problem.msg,
                    hint=f"{problem.hint} Until then the worker and create_job refuse to "
                    "run (django_dbq.E001).",
                    id="django_dbq.W002",
                )
            )
            continue
        kind = checks.Warning if problem.warning else checks.Error
        messages.append(kind(problem.msg, hint=problem.hint, id=problem.id))
    return messages


@checks.register("django_dbq")
def check_dbq_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """django_dbq.E010: the DBQ_* settings."""
    rules = {
        "DBQ_LEASE_SECONDS": options.LEASE_SECONDS,
        "DBQ_RESCUE_INTERVAL": options.seconds(0, exclusive=True),
        "DBQ_MAX_ERRORS_KEPT": options.whole(1),
        "DBQ_CLAIM_BATCH": options.whole(1, 10_000),
        "DBQ_SQLITE_BUSY_TIMEOUT": options.seconds(0),
        "DBQ_CANCEL_GRACE": options.seconds(0),
        "DBQ_MAX_WORKSPACE_BYTES": options.Rule(
            lambda v: v is None or options.whole(1).valid(v),
            "a whole number of bytes >= 1, or None for no limit",
        ),
        "DBQ_METRICS_TOKEN": options.Rule(
            lambda v: (
                v is None
                or (isinstance(v, str) and len(v.strip()) >= conf.METRICS_TOKEN_MIN_LENGTH)
            ),
            f"a string of at least {conf.METRICS_TOKEN_MIN_LENGTH} characters (for example "
            "secrets.token_urlsafe()), or None for staff login only",
        ),
        "DBQ_LISTEN_DATABASE": options.Rule(
            lambda v: v is None or v == "" or (isinstance(v, str) and v in settings.DATABASES),
            "the alias of a database in DATABASES (one that connects to PostgreSQL "
            "directly, not through a transaction-pooling PgBouncer), or None to poll",
        ),
    }
    messages: list[checks.CheckMessage] = []
    for name, rule in rules.items():
        value = conf.get(name)
        if not rule.valid(value):
            messages.append(
                checks.Error(
                    f"The {name} setting is {value!r}.",
                    hint=f"Use {rule.expected}, or remove it for the default "
                    f"({conf.DEFAULTS[name]!r}).",
                    id="django_dbq.E010",
                )
            )
    return messages


@checks.register("django_dbq")
def check_schedules(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """django_dbq.E013-E016: the DBQ_SCHEDULES setting."""
    try:
        _, problems = schedules.validate(getattr(settings, "DBQ_SCHEDULES", None))
    except Exception:  # a broken JOBS setting: check_jobs_setting reports it
        return []
    return [checks.Error(p.msg, hint=p.hint, id=p.id) for p in problems]


@checks.register("django_dbq")
def check_queue_limits(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """django_dbq.E018: the DBQ_QUEUE_LIMITS setting."""
    _, problems = limits.validate_queue_limits(getattr(settings, "DBQ_QUEUE_LIMITS", None))
    return [checks.Error(p.msg, hint=p.hint, id=p.id) for p in problems]


@checks.register("django_dbq")
def check_database(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """django_dbq.E019: DBQ_DATABASE names a database, and the routers send the
    queue's models there (``Job.objects`` would otherwise use another database)."""
    alias = conf.get("DBQ_DATABASE")
    if not isinstance(alias, str) or alias not in settings.DATABASES:
        known = ", ".join(repr(name) for name in settings.DATABASES)
        return [
            checks.Error(
                f"The DBQ_DATABASE setting is {alias!r}, which is not a database of "
                f"DATABASES ({known}).",
                hint="Set DBQ_DATABASE to one of the aliases of DATABASES, or remove it "
                "to keep the queue in 'default'.",
                id="django_dbq.E019",
            )
        ]
    reads, writes = router.db_for_read(Job), router.db_for_write(Job)
    migrates = router.allow_migrate_model(alias, Job)
    if reads == alias and writes == alias and migrates:
        return []
    elsewhere = writes if writes != alias else reads
    if not any(isinstance(r, QueueRouter) for r in router.routers):
        hint = (
            f"Add {ROUTER_PATH!r} to DATABASE_ROUTERS, or remove DBQ_DATABASE to keep the "
            "queue in 'default'."
            if alias != "default"
            else f"Add {ROUTER_PATH!r} to DATABASE_ROUTERS before the router that "
            "claims django_dbq's models, or set DBQ_DATABASE to the database it names."
        )
    else:
        hint = (
            f"A router listed before {ROUTER_PATH} claims django_dbq's models: move "
            "QueueRouter first in DATABASE_ROUTERS, or make that router leave them alone."
        )
    where = (
        f"sends django_dbq's models to {elsewhere!r}"
        if elsewhere != alias
        else f"does not let django_dbq's tables migrate to {alias!r}"
    )
    return [
        checks.Error(
            f"The DBQ_DATABASE setting is {alias!r}, but the database routing "
            f"{where}: Job.objects and the worker would use different databases.",
            hint=hint,
            id="django_dbq.E019",
        )
    ]
