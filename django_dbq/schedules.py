"""Periodic jobs: the ``DBQ_SCHEDULES`` setting and the tick arithmetic.

::

    DBQ_SCHEDULES = {
        "nightly-report": {
            "job": "send_report",            # a JOBS name
            "cron": "30 2 * * *",            # 5 fields, as crontab(5) ...
            "timezone": "Europe/London",     # ... read in this zone (default: UTC)
            "workspace": {"kind": "daily"},  # the job's workspace (default: {})
            "queue": "reports",              # default: "default"
            "priority": 0,
            "missed": "once",                # or "skip" (see below)
        },
        "heartbeat": {"job": "ping", "every": 30},   # every 30 s instead of cron
    }

Cron expressions are read by `cronsim <https://pypi.org/project/cronsim/>`_,
which follows Debian's cron, daylight saving time included: a time that does
not exist on the day the clocks go forward fires just after the change; a time
that happens twice when they go back fires once (the first); an expression
whose hour field is ``*`` fires every real hour. ``every`` ticks are whole
multiples of N seconds since the Unix epoch, in UTC.

Nothing here touches the database: :mod:`django_dbq.scheduling` keeps the
schedule table in step with the setting and fires the ticks.
"""

from __future__ import annotations

import datetime
import json
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cronsim import CronSim, CronSimError
from django.conf import settings

from . import job_types, options
from .job_types import Problem

UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
NAME_MAX_LENGTH = 100
KEYS = ("job", "cron", "every", "timezone", "workspace", "queue", "priority", "missed", "enabled")
MISSED_POLICIES = ("once", "skip")
EVERY = options.whole(1, 366 * 24 * 3600)
#: A tick is still fired on its own if it is at most this late (a worker was slow to
#: wake); ticks missed by longer are folded into one job ("once") or none ("skip").
LATE_SECONDS = 10.0
#: The most ticks fired for one schedule in one pass (a fast schedule caught late).
MAX_LATE_TICKS = 10


@dataclass(frozen=True)
class ScheduleSpec:
    """One schedule, as declared (in ``DBQ_SCHEDULES`` or the admin)."""

    name: str
    job: str
    cron: str = ""
    every: int | None = None
    timezone: str = "UTC"
    workspace: dict[str, Any] = field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    missed: str = "once"
    enabled: bool = True

    def describe(self) -> str:
        """``30 2 * * * (Europe/London)`` or ``every 30 s``."""
        if self.every is not None:
            return f"every {self.every} s"
        return f"{self.cron} ({self.timezone})"


def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        return None


def field_problems(
    where: str,
    *,
    job: Any,
    cron: Any,
    every: Any,
    timezone: Any,
    workspace: Any = None,
    queue: Any = "default",
    priority: Any = 0,
    missed: Any = "once",
    known_jobs: Any = None,
) -> list[Problem]:
    """What is wrong with one schedule's values (``where`` names it in messages).
    Shared by the system checks and the admin's form."""
    problems: list[Problem] = []
    names = set(job_types.job_types()) if known_jobs is None else set(known_jobs)
    if not isinstance(job, str) or job not in names:
        problems.append(
            Problem(
                "django_dbq.E016",
                f"{where} names the job {job!r}, which is not in JOBS.",
                job_types.did_you_mean(job, names) + "Use one of the names of the JOBS setting.",
            )
        )
    has_cron = cron not in (None, "")
    if has_cron == (every is not None):
        problems.append(
            Problem(
                "django_dbq.E014",
                f"{where} needs exactly one of 'cron' and 'every'.",
                'Give "cron": "*/5 * * * *" (5 fields) or "every": <seconds>.',
            )
        )
    elif has_cron:
        problem = cron_problem(cron)
        if problem:
            problems.append(
                Problem(
                    "django_dbq.E014",
                    f"{where} has an invalid cron expression {cron!r}: {problem}.",
                    "Use 5 fields: minute hour day-of-month month day-of-week, as in "
                    "crontab(5); for example '*/15 * * * *' or '30 2 * * MON-FRI'.",
                )
            )
    elif not EVERY.valid(every):
        problems.append(
            Problem(
                "django_dbq.E014",
                f"{where} has 'every' = {every!r}.",
                f"Use {EVERY.expected} (seconds).",
            )
        )
    if not isinstance(timezone, str) or _zone(timezone) is None:
        problems.append(
            Problem(
                "django_dbq.E015",
                f"{where} has an unknown time zone {timezone!r}.",
                "Use an IANA time zone name such as 'UTC' or 'Europe/London' (on Windows, "
                "pip install tzdata).",
            )
        )
    if workspace is not None:
        if not isinstance(workspace, Mapping):
            problems.append(
                Problem(
                    "django_dbq.E013",
                    f"{where} has a workspace that is a {type(workspace).__name__}, not a dict.",
                    'Give a JSON object, for example {"kind": "daily"}, or leave it out.',
                )
            )
        else:
            try:
                json.dumps(workspace, allow_nan=False)
            except (TypeError, ValueError) as exc:
                problems.append(
                    Problem(
                        "django_dbq.E013",
                        f"{where} has a workspace that is not JSON: {exc}.",
                        "Use only dicts, lists, strings, numbers, booleans and None.",
                    )
                )
    if not isinstance(queue, str) or not queue or len(queue) > 64:
        problems.append(
            Problem(
                "django_dbq.E013",
                f"{where} has queue {queue!r}.",
                "Use a non-empty string of at most 64 characters.",
            )
        )
    if not options.is_whole(priority) or not -(2**31) <= priority < 2**31:
        problems.append(
            Problem("django_dbq.E013", f"{where} has priority {priority!r}.", "Use an integer.")
        )
    if missed not in MISSED_POLICIES:
        problems.append(
            Problem(
                "django_dbq.E013",
                f"{where} has 'missed' = {missed!r}.",
                "Use 'once' (one job for the ticks missed while no worker ran) or 'skip'.",
            )
        )
    return problems


def cron_problem(expression: Any) -> str | None:
    """Why ``expression`` is not a 5-field cron expression, or ``None``."""
    if not isinstance(expression, str):
        return f"a {type(expression).__name__}, not a string"
    fields = len(expression.split())
    if fields != 5:
        return f"{fields} fields, not 5" + (" (there is no seconds field)" if fields == 6 else "")
    try:
        CronSim(expression, datetime.datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        return str(exc).lower() or "not understood"
    return None


def validate(raw: Any) -> tuple[dict[str, ScheduleSpec], list[Problem]]:
    """Parse ``DBQ_SCHEDULES``: the valid schedules, and the problems of the rest."""
    if raw is None:
        return {}, []
    if not isinstance(raw, Mapping):
        return {}, [
            Problem(
                "django_dbq.E013",
                f"The DBQ_SCHEDULES setting is a {type(raw).__name__}, not a dict.",
                'Write DBQ_SCHEDULES = {"name": {"job": "...", "cron": "..."}}.',
            )
        ]
    specs: dict[str, ScheduleSpec] = {}
    problems: list[Problem] = []
    for name, entry in raw.items():
        where = f"DBQ_SCHEDULES[{name!r}]"
        if not isinstance(name, str) or not name or len(name) > NAME_MAX_LENGTH:
            problems.append(
                Problem(
                    "django_dbq.E013",
                    f"DBQ_SCHEDULES key {name!r} is not a valid schedule name.",
                    f"Use a non-empty string of at most {NAME_MAX_LENGTH} characters.",
                )
            )
            continue
        if not isinstance(entry, Mapping):
            problems.append(
                Problem(
                    "django_dbq.E013",
                    f"{where} is a {type(entry).__name__}, not a dict.",
                    'Write {"job": "<a JOBS name>", "cron": "*/5 * * * *"}.',
                )
            )
            continue
        unknown = [key for key in entry if key not in KEYS]
        for key in unknown:
            problems.append(
                Problem(
                    "django_dbq.E013",
                    f"{where} has an unknown key {key!r}.",
                    job_types.did_you_mean(key, KEYS) + "Known keys: " + ", ".join(KEYS) + ".",
                )
            )
        values = {
            "job": entry.get("job"),
            "cron": entry.get("cron", ""),
            "every": entry.get("every"),
            "timezone": entry.get("timezone", "UTC"),
            "workspace": entry.get("workspace", {}),
            "queue": entry.get("queue", "default"),
            "priority": entry.get("priority", 0),
            "missed": entry.get("missed", "once"),
        }
        found = field_problems(where, **values)
        enabled = entry.get("enabled", True)
        if not isinstance(enabled, bool):
            found.append(
                Problem(
                    "django_dbq.E013", f"{where} has 'enabled' = {enabled!r}.", "Use True or False."
                )
            )
        problems.extend(found)
        if not found and not unknown:
            specs[name] = ScheduleSpec(
                name=name,
                job=values["job"],
                cron=values["cron"] or "",
                every=values["every"],
                timezone=values["timezone"],
                workspace=dict(values["workspace"]),
                queue=values["queue"],
                priority=values["priority"],
                missed=values["missed"],
                enabled=enabled,
            )
    return specs, problems


def from_settings() -> dict[str, ScheduleSpec]:
    """The valid schedules of ``DBQ_SCHEDULES`` (the checks report the others)."""
    return validate(getattr(settings, "DBQ_SCHEDULES", None))[0]


# --- ticks -----------------------------------------------------------------------------


def ticks_after(
    after: datetime.datetime, *, cron: str = "", every: int | None = None, timezone: str = "UTC"
) -> Iterator[datetime.datetime]:
    """The ticks strictly after ``after``, in order, as aware datetimes in UTC.

    Raises ``ValueError`` for an invalid expression or interval, ``LookupError``
    (``ZoneInfoNotFoundError``) for an unknown time zone: a row of the schedule table
    can hold what a check would have refused."""
    after = after.astimezone(UTC)
    if every is not None:
        if not EVERY.valid(every):
            raise ValueError(f"every must be {EVERY.expected}, not {every!r}")
        epoch = int(after.timestamp())
        tick = (epoch // every + 1) * every
        while True:
            yield datetime.datetime.fromtimestamp(tick, UTC)
            tick += every
    zone = zoneinfo.ZoneInfo(timezone)
    try:
        moments = CronSim(cron, after.astimezone(zone))
    except CronSimError as exc:
        raise ValueError(f"invalid cron expression {cron!r}: {exc}") from None
    # cronsim starts at the next whole minute after its start, inclusive of that minute.
    for moment in moments:
        moment = moment.astimezone(UTC)
        if moment > after:
            yield moment


def due_ticks(
    after: datetime.datetime,
    now: datetime.datetime,
    *,
    cron: str = "",
    every: int | None = None,
    timezone: str = "UTC",
    missed: str = "once",
) -> list[datetime.datetime]:
    """The ticks to fire at ``now`` for a schedule whose last handled tick is ``after``.

    Ticks at most :data:`LATE_SECONDS` old each fire (a worker was slow to wake,
    not absent; at most :data:`MAX_LATE_TICKS` of them). Older ones were missed:
    with ``once`` the latest of them fires (one job for all of them), with
    ``skip`` none does (see :func:`latest_missed` to pass over them).
    """
    late_from = now - datetime.timedelta(seconds=LATE_SECONDS)
    # A tick exactly LATE_SECONDS old is late, not missed: start just before it.
    start = max(after, late_from - datetime.timedelta(microseconds=1))
    ticks = []
    for tick in ticks_after(start, cron=cron, every=every, timezone=timezone):
        if tick > now:
            break
        ticks.append(tick)
    if missed == "once":
        latest = latest_missed(after, now, cron=cron, every=every, timezone=timezone)
        if latest is not None and latest not in ticks:
            ticks.insert(0, latest)
    return ticks[-MAX_LATE_TICKS:]


def latest_missed(
    after: datetime.datetime,
    now: datetime.datetime,
    *,
    cron: str = "",
    every: int | None = None,
    timezone: str = "UTC",
) -> datetime.datetime | None:
    """The latest tick after ``after`` that is more than :data:`LATE_SECONDS` old at
    ``now`` (a missed tick), or ``None``."""
    late_from = now - datetime.timedelta(seconds=LATE_SECONDS)
    if late_from <= after:
        return None
    if every is not None:
        if not EVERY.valid(every):
            raise ValueError(f"every must be {EVERY.expected}, not {every!r}")
        # The last multiple of ``every`` strictly before late_from (whole microseconds).
        micros = (late_from - EPOCH) // datetime.timedelta(microseconds=1)
        tick = EPOCH + datetime.timedelta(seconds=((micros - 1) // (every * 10**6)) * every)
        return tick if tick > after else None
    # Look back a day first: a schedule down for months need not be walked tick by tick.
    for start in (max(after, late_from - datetime.timedelta(days=1)), after):
        latest = None
        for tick in ticks_after(start, cron=cron, timezone=timezone):
            if tick >= late_from:
                break
            latest = tick
        if latest is not None or start == after:
            return latest
    return None


def next_tick(
    after: datetime.datetime, *, cron: str = "", every: int | None = None, timezone: str = "UTC"
) -> datetime.datetime | None:
    """The first tick after ``after`` (``None`` for an expression that never fires)."""
    try:
        return next(ticks_after(after, cron=cron, every=every, timezone=timezone))
    except StopIteration:
        return None
