"""How the admin shows a job: its state as a badge, times relative to now, its
position in the chain, attempts, errors and timeline.

Everything here returns plain text or HTML built with ``format_html`` and
templates, so every value taken from a row (a workspace, an error message, a
traceback, a worker's name) is escaped.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.formats import localize
from django.utils.html import format_html
from django.utils.safestring import SafeString

from .. import job_types
from ..exceptions import JobConfigurationError
from ..models import Job
from ..states import RUNNABLE_STATES, JobStates

NOTHING = "-"  # as the admin shows an empty value


def state_badge(state: str) -> SafeString:
    """The state as a coloured badge (colours in ``django_dbq/admin.css``)."""
    try:
        label = JobStates(state).label
    except ValueError:
        label = state
    return format_html('<span class="dbq-state dbq-state-{}">{}</span>', str(state).lower(), label)


def duration(seconds: float) -> str:
    """A short human duration: ``850 ms``, ``12 s``, ``5 min``, ``3 h 10 min``, ``2 d 4 h``."""
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def relative(moment: datetime.datetime | None, now: datetime.datetime | None = None) -> str:
    """``in 5 min`` or ``5 min ago``; empty for no moment."""
    if moment is None:
        return ""
    seconds = (moment - (now or timezone.now())).total_seconds()
    if abs(seconds) < 1:
        return "now"
    return f"in {duration(seconds)}" if seconds > 0 else f"{duration(-seconds)} ago"


def moment(value: datetime.datetime | None, now: datetime.datetime | None = None) -> SafeString:
    """A date and time in the current time zone, with how long ago (or until) it is."""
    if value is None:
        return format_html("{}", NOTHING)
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    return format_html(
        '<time datetime="{}">{}</time> <span class="dbq-muted">({})</span>',
        value.isoformat(),
        localize(local),
        relative(value, now),
    )


def job_type(job: Job) -> job_types.JobType | None:
    """The job's type (its own options applied), or ``None`` if JOBS does not know it
    or is broken (``manage.py check`` says why; a page of the admin never fails)."""
    try:
        return job_types.job_type_for(job)
    except JobConfigurationError:
        return None


def attempts(job: Job) -> str:
    """``attempts/max_attempts`` at the current step; ``?`` for the max of an unknown type."""
    found = job_type(job)
    return f"{job.attempts}/{found.max_attempts if found else '?'}"


def step(job: Job) -> str:
    """The position of the job's next (or failed) task in its chain, as ``2/3``.

    A NULL ``step`` means the first position of ``next_task`` in the chain. A job
    with no next task (completed, or a tracked operation) has none (empty).
    """
    if not job.next_task:
        return ""
    found = job_type(job)
    if found is None:
        return "?"
    try:
        position = found.step_of(job.next_task, job.step)
    except ValueError:  # a task JOBS no longer lists
        return f"?/{len(found.tasks)}"
    return f"{position + 1}/{len(found.tasks)}"


def elapsed(job: Job, now: datetime.datetime | None = None) -> str:
    """How long the job has waited, has been running, or took."""
    now = now or timezone.now()
    if job.state in RUNNABLE_STATES:
        if job.run_after is not None and job.run_after > now:
            return "scheduled"
        # A new job waits since it was created; one READY again since it became so.
        since = job.created if job.state == JobStates.NEW else job.modified
        if job.run_after is not None:
            since = max(since, job.run_after)
        return f"waiting {duration((now - since).total_seconds())}"
    if job.state == JobStates.PROCESSING:
        since = job.started_at or job.modified
        return f"running {duration((now - since).total_seconds())}"
    if job.finished_at is not None:
        start = job.started_at or job.created
        return f"took {duration((job.finished_at - start).total_seconds())}"
    return ""


def last_error(job: Job, limit: int = 90) -> str:
    """The first line of the last error's message (shortened), or empty."""
    errors = job.errors if isinstance(job.errors, list) else []
    if not errors:
        return ""
    record = errors[-1]
    if not isinstance(record, dict):
        return str(record)[:limit]
    line = str(record.get("message_line") or record.get("message") or record.get("type") or "")
    line = (line.splitlines() or [""])[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def error_records(job: Job) -> list[dict[str, Any]]:
    """The job's error records as the template shows them: newest first, each with its
    time parsed and its notes (rescued, not charged, cancelled)."""
    errors = job.errors if isinstance(job.errors, list) else []
    shown = []
    for index, record in reversed(list(enumerate(errors, start=1))):
        if not isinstance(record, dict):
            shown.append({"number": index, "message": str(record), "notes": []})
            continue
        at = record.get("at")
        try:
            when = datetime.datetime.fromisoformat(at) if isinstance(at, str) else None
        except ValueError:
            when = None
        notes = []
        if record.get("rescued_by"):
            notes.append(f"rescued by worker {record['rescued_by']}")
        if record.get("charged") is False:
            notes.append("the attempt was not counted")
        if record.get("cancelled_by"):
            notes.append(f"cancelled by {record['cancelled_by']}")
        shown.append(
            {
                "number": index,
                "attempt": record.get("attempt"),
                "at": moment(when) if when else at,
                "worker": record.get("worker") or "",
                "task": record.get("task") or "",
                "type": record.get("type") or "",
                "message": record.get("message") or "",
                "traceback": record.get("traceback") or "",
                "notes": notes,
            }
        )
    return shown


def errors_block(job: Job) -> SafeString:
    """Every error of the job, newest first, each in its own block."""
    return SafeString(
        render_to_string("admin/django_dbq/job/errors.html", {"errors": error_records(job)})
    )


def timeline(job: Job, now: datetime.datetime | None = None) -> SafeString:
    """Created, scheduled, started, finished, and the durations between."""
    now = now or timezone.now()
    rows: list[tuple[str, Any]] = [("Created", moment(job.created, now))]
    if job.run_after is not None and job.state in RUNNABLE_STATES:
        rows.append(("Scheduled for", moment(job.run_after, now)))
    if job.started_at is not None:
        rows.append(("Last attempt started", moment(job.started_at, now)))
    if job.finished_at is not None:
        rows.append(("Finished", moment(job.finished_at, now)))
        if job.started_at is not None:
            ran = (job.finished_at - job.started_at).total_seconds()
            rows.append(("Last attempt ran", duration(ran)))
        total = (job.finished_at - job.created).total_seconds()
        rows.append(("Created to finished", duration(total)))
    else:
        rows.append(("Now", elapsed(job, now) or NOTHING))
    if job.state == JobStates.PROCESSING:
        rows.append(("Held by", job.lease_owner or NOTHING))
        rows.append(("Lease expires", moment(job.lease_expires_at, now)))
    rows.append(("Last changed", moment(job.modified, now)))
    return SafeString(render_to_string("admin/django_dbq/job/timeline.html", {"rows": rows}))
