"""System checks for the JOBS and DBQ_* settings; every id is listed in docs/checks.rst."""

from __future__ import annotations

from typing import Any

from django.core import checks

from . import conf, jobs


@checks.register("django_dbq")
def check_jobs_setting(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """django_dbq.E001-E009 and W001: the JOBS setting."""
    _, problems = jobs.validate(conf.raw_jobs(), imports=True)
    messages: list[checks.CheckMessage] = []
    for problem in problems:
        kind = checks.Warning if problem.warning else checks.Error
        messages.append(kind(problem.msg, hint=problem.hint, id=problem.id))
    return messages


@checks.register("django_dbq")
def check_dbq_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """django_dbq.E010: the DBQ_* settings."""
    rules = {
        "DBQ_LEASE_SECONDS": (lambda v: _number(v) and v >= 1, "a number of seconds >= 1"),
        "DBQ_RESCUE_INTERVAL": (lambda v: _number(v) and v > 0, "a number of seconds > 0"),
        "DBQ_MAX_ERRORS_KEPT": (lambda v: _integer(v) and v >= 1, "a whole number >= 1"),
        "DBQ_CLAIM_BATCH": (lambda v: _integer(v) and 1 <= v <= 10_000, "a whole number, 1-10000"),
        "DBQ_SQLITE_BUSY_TIMEOUT": (lambda v: _number(v) and v >= 0, "a number of seconds >= 0"),
        "DBQ_MAX_WORKSPACE_BYTES": (
            lambda v: v is None or (_integer(v) and v >= 1),
            "a whole number of bytes >= 1, or None for no limit",
        ),
    }
    messages: list[checks.CheckMessage] = []
    for name, (valid, expected) in rules.items():
        value = conf.get(name)
        if not valid(value):
            messages.append(
                checks.Error(
                    f"The {name} setting is {value!r}.",
                    hint=f"Use {expected}, or remove it for the default ({conf.DEFAULTS[name]!r}).",
                    id="django_dbq.E010",
                )
            )
    return messages


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
