"""Parsing and validation of the management commands' options, next to the commands
(kept out of them so that tests and other code can call it without argv).

Every parser raises a :class:`~django_dbq.exceptions.DbqError` subclass with a
one-line message; the commands turn it into a ``CommandError``."""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

from dateutil import parser as date_parser
from dateutil.relativedelta import relativedelta
from django.db import DatabaseError, connections, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from .. import conf
from ..exceptions import (
    DatabaseUnavailableError,
    DbqError,
    InvalidJobError,
    InvalidWorkspaceError,
    NotMigratedError,
)
from ..models import QUEUE_NAME_MAX_LENGTH, Job

_RELATIVE = re.compile(r"^\+?\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|m|min|mins|h|hr|hrs|d|w)$", re.I)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, *, now: datetime.datetime | None = None) -> datetime.datetime:
    """Parse ``--run-after``: an ISO-8601 date-time or a relative time such as ``+10m``.

    Relative units: s, m, h, d, w (``90s``, ``+10m``, ``2h``, ``1.5d``). A date-time
    without a UTC offset is taken in the current time zone.
    """
    now = now or timezone.now()
    text = (text or "").strip()
    match = _RELATIVE.match(text)
    if match:
        amount, unit = float(match.group(1)), match.group(2)[0].lower()
        try:
            return now + relativedelta(**{_UNITS[unit]: amount})
        except (ValueError, OverflowError):
            raise InvalidJobError(f"--run-after {text!r} is too far in the future.") from None
    try:
        when = date_parser.isoparse(text)
    except (ValueError, OverflowError):
        raise InvalidJobError(
            f"--run-after {text!r} is not a date-time. Use ISO-8601 (2030-01-31T09:00:00+00:00) "
            "or a relative time such as +10m, 2h or 1d."
        ) from None
    if timezone.is_naive(when):
        when = timezone.make_aware(when)
    try:
        when.astimezone(datetime.timezone.utc)  # stored in UTC: must fit in years 1-9999 there
    except (ValueError, OverflowError):
        raise InvalidJobError(f"--run-after {text!r} is out of range.") from None
    return when


def parse_workspace(text: str | None) -> dict[str, Any]:
    """Parse ``--workspace``: a JSON object."""
    if text is None:
        return {}
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidWorkspaceError(f"--workspace is not valid JSON: {exc}.") from None
    if not isinstance(value, dict):
        raise InvalidWorkspaceError(
            f'--workspace must be a JSON object such as \'{{"key": "value"}}\', '
            f"not a JSON {type(value).__name__}."
        )
    return value


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN, Infinity and -Infinity; JSON (and the databases) do not.
    raise ValueError(f"{name} is not a JSON value")


def parse_int(option: str, text: str | int) -> int:
    """Parse an integer option with a clear message."""
    try:
        return int(str(text).strip())
    except ValueError:
        raise InvalidJobError(f"{option} must be a whole number, not {text!r}.") from None


def parse_seconds(option: str, text: str | float, minimum: float = 0.0) -> float:
    """Parse a number of seconds of at least ``minimum`` (finite)."""
    try:
        number = float(str(text).strip())
    except ValueError:
        raise InvalidJobError(f"{option} must be a number of seconds, not {text!r}.") from None
    if not minimum <= number < float("inf"):  # also rejects NaN
        raise InvalidJobError(f"{option} must be at least {minimum:g}, not {text!r}.")
    return number


def parse_count(option: str, text: str | int) -> int:
    """Parse a whole number of at least 1."""
    number = parse_int(option, text)
    if number < 1:
        raise InvalidJobError(f"{option} must be at least 1, not {text!r}.")
    return number


def parse_hours(text: str | float) -> float:
    try:
        hours = float(str(text).strip())
    except ValueError:
        raise InvalidJobError(f"--hours must be a number, not {text!r}.") from None
    if not 0 <= hours < float("inf"):  # also rejects NaN
        raise InvalidJobError(f"--hours must be zero or more, not {text!r}.")
    return hours


def parse_queue_names(names: list[str]) -> list[str]:
    """Check queue names given on the command line (as ``Job.queue_name`` is checked)."""
    for name in names:
        if not name:
            raise InvalidJobError("A queue name must be a non-empty string, not ''.")
        if len(name) > QUEUE_NAME_MAX_LENGTH:
            raise InvalidJobError(
                f"Queue name {name[:20]!r}... is {len(name)} characters long; "
                f"the limit is {QUEUE_NAME_MAX_LENGTH}."
            )
    return list(names)


def require_migrated(using: str | None = None) -> None:
    """Raise :class:`NotMigratedError` unless every migration of django_dbq is applied
    on ``using`` (a command run before ``migrate`` says so instead of failing later
    with "no such table"), or :class:`DatabaseUnavailableError` if it cannot tell."""
    using = using or conf.database()
    try:
        executor = MigrationExecutor(connections[using])
        targets = [key for key in executor.loader.graph.leaf_nodes() if key[0] == "django_dbq"]
        missing = [m for m, _ in executor.migration_plan(targets) if m.app_label == "django_dbq"]
    except DatabaseError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DatabaseUnavailableError(f"Cannot reach the database {using!r}: {first}") from None
    if missing:
        migrate = "migrate" if using == "default" else f"migrate --database={using}"
        raise NotMigratedError(
            f"The database {using!r} lacks django_dbq's tables or columns ({len(missing)} "
            f"migration(s) of django_dbq not applied): run `python manage.py {migrate}` first."
        )


def create_job(
    name: str,
    *,
    queue_name: str = "default",
    workspace: str | None = None,
    priority: str | int = 0,
    run_after: str | None = None,
) -> Job:
    """``create_job``: validate every option, then insert one job (or nothing)."""
    values = {
        "name": name,
        "queue_name": queue_name,
        "workspace": parse_workspace(workspace),
        "priority": parse_int("--priority", priority),
        "run_after": parse_when(run_after) if run_after is not None else None,
    }
    with transaction.atomic(using=conf.database()):
        return Job.objects.create(**values)


__all__ = [
    "DbqError",
    "create_job",
    "parse_count",
    "parse_hours",
    "parse_int",
    "parse_queue_names",
    "parse_seconds",
    "parse_when",
    "parse_workspace",
    "require_migrated",
]
