"""Global flow control: the limit groups of the JOBS setting and ``DBQ_QUEUE_LIMITS``.

A *limit group* is a job type or a queue with a ``max_running`` (most of its jobs
running at once, across every worker and host) and/or a ``rate`` (most of its
jobs started per second, minute or hour)::

    JOBS = {"call_partner": {"tasks": [...], "max_running": 3, "rate": "50/s"}}
    DBQ_QUEUE_LIMITS = {"partner-api": {"max_running": 5}}

Workers claim the jobs of a group apart from the others, in a short transaction
that first takes the group's row of ``django_dbq_flow_limit`` (an UPDATE: the row
lock on PostgreSQL and MySQL, the write lock on SQLite), so the claims of one
group are one at a time across all workers: the count of its running jobs and
its token bucket cannot change under a claim (see :func:`django_dbq.store.claim_limited`).
Nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from . import job_types, options
from .job_types import Problem

QUEUE_LIMIT_KEYS = ("max_running", "rate")


@dataclass(frozen=True)
class LimitGroup:
    """A job type (``kind`` "job") or queue (``kind`` "queue") with limits."""

    kind: str
    name: str
    max_running: int | None = None
    rate: tuple[int, float] | None = None  # (jobs, per seconds)

    @property
    def key(self) -> str:
        """Its row in ``django_dbq_flow_limit``."""
        return f"{self.kind}:{self.name}"

    @property
    def burst(self) -> float:
        """The token bucket's size: a twentieth of a second's worth of the rate, at
        least one job. Any window of W seconds claims at most rate x W + burst jobs;
        as jobs claimed just before a window may start in it, their tasks start at
        most rate x W + 2 x burst (50/s: 55 in any second)."""
        if self.rate is None:
            return 0.0
        jobs, per = self.rate
        return max(1.0, 0.05 * jobs / per)

    def describe(self) -> str:
        parts = []
        if self.max_running is not None:
            parts.append(f"max_running={self.max_running}")
        if self.rate is not None:
            jobs, per = self.rate
            parts.append(f"rate={jobs}/{ {1.0: 's', 60.0: 'm', 3600.0: 'h'}[per] }")
        return f"{self.kind} {self.name!r}: " + " ".join(parts)


def validate_queue_limits(raw: Any) -> tuple[dict[str, LimitGroup], list[Problem]]:
    """Parse ``DBQ_QUEUE_LIMITS`` (django_dbq.E018 for what is wrong)."""
    if raw is None:
        return {}, []
    hint = 'Write DBQ_QUEUE_LIMITS = {"queue": {"max_running": 5, "rate": "100/m"}}.'
    if not isinstance(raw, Mapping):
        return {}, [
            Problem(
                "django_dbq.E018",
                f"The DBQ_QUEUE_LIMITS setting is a {type(raw).__name__}, not a dict.",
                hint,
            )
        ]
    groups: dict[str, LimitGroup] = {}
    problems: list[Problem] = []
    for queue, entry in raw.items():
        where = f"DBQ_QUEUE_LIMITS[{queue!r}]"
        if not isinstance(queue, str) or not queue or len(queue) > 64:
            problems.append(
                Problem("django_dbq.E018", f"{where}: not a queue name.", "Use 1-64 characters.")
            )
            continue
        if not isinstance(entry, Mapping) or not entry or set(entry) - set(QUEUE_LIMIT_KEYS):
            problems.append(Problem("django_dbq.E018", f"{where} = {entry!r} is invalid.", hint))
            continue
        found = []
        if "max_running" in entry and not options.MAX_RUNNING.valid(entry["max_running"]):
            found.append(
                Problem(
                    "django_dbq.E018",
                    f"{where}['max_running'] = {entry['max_running']!r} is invalid.",
                    f"Use {options.MAX_RUNNING.expected}.",
                )
            )
        if "rate" in entry and not options.RATE.valid(entry["rate"]):
            found.append(
                Problem(
                    "django_dbq.E018",
                    f"{where}['rate'] = {entry['rate']!r} is invalid.",
                    f"Use {options.RATE.expected}.",
                )
            )
        problems += found
        if not found:
            groups[queue] = LimitGroup(
                "queue",
                queue,
                max_running=entry.get("max_running"),
                rate=options.parse_rate(entry["rate"]) if "rate" in entry else None,
            )
    return groups, problems


_parsed: tuple[Any, Any, tuple[dict[str, LimitGroup], dict[str, LimitGroup]]] | None = None


def _groups() -> tuple[dict[str, LimitGroup], dict[str, LimitGroup]]:
    """Parsed once per value of the settings (as :func:`job_types.job_types`)."""
    global _parsed
    types = job_types.job_types()
    raw = getattr(settings, "DBQ_QUEUE_LIMITS", None)
    if _parsed is not None and _parsed[0] is types and _parsed[1] is raw:
        return _parsed[2]
    by_job = {
        name: LimitGroup(
            "job",
            name,
            max_running=job_type.max_running,
            rate=options.parse_rate(job_type.rate) if job_type.rate else None,
        )
        for name, job_type in types.items()
        if job_type.max_running is not None or job_type.rate is not None
    }
    by_queue, _ = validate_queue_limits(raw)
    _parsed = (types, raw, (by_job, by_queue))
    return by_job, by_queue


def job_groups() -> dict[str, LimitGroup]:
    """The job types with limits, by name."""
    return _groups()[0]


def queue_groups() -> dict[str, LimitGroup]:
    """The queues with limits, by name."""
    return _groups()[1]
