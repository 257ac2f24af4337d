"""Every write of a job's state: claim, mark started, renew, advance, retry, fail,
complete, release, rescue; and the operators' writes (retry a failed job, run a
scheduled one now, cancel, edit, delete) that the admin offers.

The worker, the synchronous mode, tracking and the django.tasks backend all
change jobs through these functions and no other way. Each write after a claim
is a guarded UPDATE through :meth:`JobQuerySet.held_by`: it changes the row only
if it is still PROCESSING under this owner, so a worker whose lease expired
(and whose job another worker rescued) cannot overwrite the newer truth; it
reports ``False`` (or a smaller count) instead. What differs by database is
asked of :func:`django_dbq.db.backend_for`.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Literal

from django.db import DatabaseError, IntegrityError, models, router, transaction
from django.db.models import Count, Min, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import conf, job_types
from .db import backend_for, forget_broken_connections
from .db.base import Names
from .exceptions import InvalidWorkspaceError, JobCancelledError, WorkerLostError
from .job_types import Batch
from .limits import LimitGroup
from .models import CancelRequest, Chore, FlowLimit, Job, active_key_of, validate_workspace
from .states import FINISHED_STATES, RUNNABLE_STATES, JobStates

logger = logging.getLogger("django_dbq.worker")
operations_logger = logging.getLogger("django_dbq.operations")

OutcomeKind = Literal["completed", "advanced", "retried", "failed", "lost"]

# Most workspace bytes one bulk UPDATE carries: MySQL and MariaDB refuse a statement
# larger than max_allowed_packet (16 MiB by default on MariaDB).
BULK_UPDATE_BYTES = 4 * 1024 * 1024


@dataclass
class Outcome:
    """What happened to one step of a job; a ``completed`` outcome is written by
    :func:`complete` (the worker batches them)."""

    job: Job
    kind: OutcomeKind
    duration: float
    task: str = ""
    workspace_changed: bool = False
    # Set by complete(): True once written, False if the job was no longer held or
    # failed instead; None while not yet handled.
    written: bool | None = None


# --- claiming ------------------------------------------------------------------------------


def _lease_window(
    lease_seconds: float, now: datetime.datetime | None
) -> tuple[datetime.datetime, datetime.datetime]:
    now = now or timezone.now()
    return now, now + datetime.timedelta(seconds=lease_seconds)


def claim(
    owner: str,
    queues: Sequence[str],
    limit: int,
    lease_seconds: float,
    *,
    using: str | None = None,
    now: datetime.datetime | None = None,
    cursor: Any = None,
    exclude_names: Sequence[str] = (),
) -> list[Job]:
    """Claim up to ``limit`` runnable jobs of ``queues`` for ``owner``, in run order.

    Each returned job is PROCESSING, leased to ``owner`` until now +
    ``lease_seconds``, and has had its ``attempts`` counted. A worker passes a
    claim cursor of its own (:meth:`new_claim_cursor`) so that busy queues are
    claimed from where it left off, where the database needs that (PostgreSQL).
    Jobs of ``exclude_names`` (the job types with limits) are left to
    :func:`claim_limited`.
    """
    using = using or conf.database()
    if limit <= 0 or not queues:
        return []
    now, expires = _lease_window(lease_seconds, now)
    names = Names(but=exclude_names) if exclude_names else None
    return backend_for(using).claim(Job, owner, list(queues), limit, now, expires, cursor, names)


@dataclass
class LimitedClaim:
    """What :func:`claim_limited` took, or why it took nothing: ``capped`` (as many
    running as allowed), ``rate`` (no token left; the next comes in ``wait``
    seconds) or ``empty`` (no runnable job). ``delays`` says, per job taken, how
    many seconds from now it may start (its token's time; 0 for most)."""

    jobs: list[Job]
    reason: str = ""
    wait: float = 0.0
    delays: list[float] = dataclass_field(default_factory=list)
    #: The time the delays count from (read once the group's rows were taken).
    at: datetime.datetime | None = None


def claim_limited(
    owner: str,
    groups: Sequence[LimitGroup],
    queues: Sequence[str],
    room: int,
    lease_seconds: float,
    *,
    only_name: str | None = None,
    exclude_names: Sequence[str] = (),
    using: str | None = None,
    now: datetime.datetime | None = None,
) -> LimitedClaim:
    """Claim up to ``room`` jobs of ``queues`` (only ``only_name``, or not
    ``exclude_names``) within the limits of ``groups`` (a job type and/or a queue).

    One short transaction. It first takes each group's row of
    ``django_dbq_flow_limit`` with an UPDATE, in key order: the row lock on
    PostgreSQL and MySQL, the database's write lock on SQLite. So the claims of a
    group are one at a time across every worker and host, and neither its count of
    running jobs nor its token bucket can change between reading them and claiming.
    Jobs over a limit stay waiting: they are neither claimed nor charged.
    """
    using = using or conf.database()
    groups = sorted(groups, key=lambda g: g.key)
    with transaction.atomic(using=using):
        rows = [_lock_limit(group, now or timezone.now(), using) for group in groups]
        # The time is read once the rows are ours: a claim that waited for another's
        # lock must not refill the bucket from before that claim (a clock going back).
        now, expires = _lease_window(lease_seconds, now)
        allowed, reason, wait = room, "", 0.0
        # Rate groups: (tokens now, jobs per second); a claim may take tokens up to
        # RATE_AHEAD_SECONDS ahead (the bucket goes into debt), each job then
        # starting at its token's time, so that workers that claim late or in bursts
        # still start jobs at the rate, and never faster.
        paced: list[tuple[float, float]] = []
        for group, row in zip(groups, rows, strict=True):
            if group.max_running is not None:
                running = Job.objects.using(using).filter(state=JobStates.PROCESSING)
                if group.kind == "job":
                    running = running.filter(name=group.name)
                else:
                    running = running.filter(queue_name=group.name)
                free = group.max_running - running.count()
                if free < allowed:
                    allowed, reason, wait = free, "capped", 0.0
            if group.rate is not None:
                jobs_per, seconds = group.rate
                per_second = jobs_per / seconds
                elapsed = max(0.0, (now - row.refilled_at).total_seconds())
                row.tokens = min(group.burst, row.tokens + elapsed * per_second)
                row.refilled_at = max(now, row.refilled_at)
                available = row.tokens + RATE_AHEAD_SECONDS * per_second
                paced.append((row.tokens, per_second))
                if math.floor(available) < allowed:
                    allowed, reason = max(0, math.floor(available)), "rate"
                    wait = (1.0 - (available - math.floor(available))) / per_second
        jobs: list[Job] = []
        if allowed > 0:
            names = Names(only=[only_name]) if only_name else Names(but=exclude_names)
            jobs = backend_for(using).claim(
                Job, owner, list(queues), allowed, now, expires, None, names or None
            )
            if len(jobs) < allowed:
                reason = "empty"
        for group, row in zip(groups, rows, strict=True):
            if group.rate is not None:
                FlowLimit.objects.using(using).filter(key=row.key).update(
                    tokens=row.tokens - len(jobs), refilled_at=row.refilled_at
                )
    # The n-th job taken starts when the n-th token is due (the latest of the groups').
    delays = [
        max([0.0] + [(n - tokens) / per_second for tokens, per_second in paced])
        for n in range(1, len(jobs) + 1)
    ]
    return LimitedClaim(jobs, reason if not jobs or reason == "empty" else "", wait, delays, now)


#: How far ahead of its tokens a rate-limited claim may take jobs (their starts are
#: then spread out to the tokens' times).
RATE_AHEAD_SECONDS = 0.5


def _lock_limit(group: LimitGroup, now: datetime.datetime, using: str) -> FlowLimit:
    """Take a group's row (created on first use, its bucket full), and read it."""
    table = FlowLimit.objects.using(using)
    if not table.filter(key=group.key).update(key=models.F("key")):
        try:
            with transaction.atomic(using=using):
                table.create(key=group.key, tokens=group.burst, refilled_at=now)
        except IntegrityError:
            pass  # another worker created it a moment ago: wait for its lock below
        table.filter(key=group.key).update(key=models.F("key"))
    return table.get(key=group.key)


def new_claim_cursor(using: str | None = None) -> Any:
    """A worker's memory of where its claims stopped, or ``None`` where the database
    does not need one (see :class:`django_dbq.db.postgresql.ClaimCursor`)."""
    using = using or conf.database()
    return backend_for(using).new_claim_cursor()


def claim_batch(
    owner: str,
    name: str,
    queue: str,
    batch_key: str,
    size: int,
    lease_seconds: float,
    *,
    using: str | None = None,
    now: datetime.datetime | None = None,
) -> list[Job]:
    """Claim up to ``size`` runnable jobs of batch job type ``name``, one queue and key.

    Oldest first; priority does not apply within a batch.
    """
    using = using or conf.database()
    now, expires = _lease_window(lease_seconds, now)
    return backend_for(using).claim_batch(Job, owner, name, queue, batch_key, size, now, expires)


def claim_job(
    owner: str, pk: object, lease_seconds: float, *, using: str | None = None
) -> Job | None:
    """Claim one given job if it is runnable now (the synchronous mode)."""
    using = using or conf.database()
    now, expires = _lease_window(lease_seconds, None)
    manager = Job.objects.db_manager(using)
    values = {
        "state": JobStates.PROCESSING,
        "lease_owner": owner,
        "lease_expires_at": expires,
        "attempts": models.F("attempts") + 1,
        "started_at": now,  # it runs at once, in this process
        "modified": now,
        "finished_at": None,
    }
    claimed = manager.runnable(now=now).filter(pk=pk).update(**values)
    return manager.get(pk=pk) if claimed else None


def runnable_left(
    queues: Sequence[str], batch_names: set[str], *, using: str | None = None
) -> bool:
    """Whether any job of ``queues`` is runnable now (a plain read, no locks), counting
    batch jobs only of the batch job types ``batch_names``."""
    using = using or conf.database()
    return (
        Job.objects.db_manager(using)
        .runnable()
        .in_queues(queues)
        .filter(Q(batch_key__isnull=True) | Q(name__in=batch_names))
        .exists()
    )


def next_due(queues: Sequence[str], *, using: str | None = None) -> datetime.datetime | None:
    """When the first job of ``queues`` that waits for its ``run_after`` is due, if any
    (one index probe on PostgreSQL: migration 0015's partial index on ``run_after``)."""
    return (
        Job.objects.db_manager(using or conf.database())
        .filter(
            state__in=RUNNABLE_STATES,
            run_after__isnull=False,
            run_after__gt=timezone.now(),
            queue_name__in=list(queues),
        )
        .aggregate(due=models.Min("run_after"))["due"]
    )


def ripe_batches(
    batches: Mapping[str, Batch],
    queues: Sequence[str],
    *,
    using: str | None = None,
    now: datetime.datetime | None = None,
    flush: bool = False,
) -> list[tuple[str, str, str]]:
    """The (name, queue, batch key) groups whose batch is due: ``size`` runnable jobs,
    or the oldest has waited ``wait`` seconds (``batches`` maps a batch job type's
    name to its :class:`~django_dbq.job_types.Batch`). With ``flush``, every group
    with a runnable job is due. Oldest group first."""
    using = using or conf.database()
    if not batches or not queues:
        return []
    now = now or timezone.now()
    rows = (
        Job.objects.db_manager(using)
        .runnable(now=now)
        .filter(name__in=list(batches), queue_name__in=list(queues), batch_key__isnull=False)
        .order_by()
        .values("name", "queue_name", "batch_key")
        .annotate(count=Count("pk"), oldest=Min("created"))
    )
    due = []
    for row in rows:
        batch = batches[row["name"]]
        waited = (now - row["oldest"]).total_seconds()
        if flush or row["count"] >= batch.size or waited >= batch.wait:
            due.append((row["oldest"], row["name"], row["queue_name"], row["batch_key"]))
    return [(name, queue, key) for _, name, queue, key in sorted(due)]


# --- the outcome of a step -----------------------------------------------------------------


def _guarded_update(job: Job, owner: str, **values: Any) -> bool:
    values["modified"] = timezone.now()
    # The attempt too: a job this worker timed out and claimed again is, for the runner
    # thread left behind with the old attempt, no longer held.
    held = Job.objects.held_by(owner).filter(pk=job.pk, attempts=job.attempts)
    landed = held.update(**values) == 1
    if landed:
        for field, value in values.items():
            if not hasattr(value, "resolve_expression"):
                setattr(job, field, value)
    return landed


def still_held(job: Job, owner: str) -> bool:
    """Whether ``owner`` still holds ``job`` (a read: before hooks that must run once)."""
    return Job.objects.held_by(owner).filter(pk=job.pk, attempts=job.attempts).exists()


def advance(job: Job, owner: str, next_task: str, step: int) -> bool:
    """A step succeeded and the chain goes on: READY at ``next_task``, position ``step``."""
    return _guarded_update(
        job,
        owner,
        state=JobStates.READY,
        next_task=next_task,
        step=step,
        started_at=job.started_at,
        workspace=job.workspace,
        attempts=0,
        lease_expires_at=None,
    )


def retry(job: Job, owner: str, record: dict[str, Any], run_after: datetime.datetime) -> bool:
    """An attempt failed and another is allowed: READY again after ``run_after``.

    The workspace is saved as the attempt and its hooks left it, if the database
    can store it (as django-db-queue saved it); else the last one saved stays.
    """
    values: dict[str, Any] = {}
    if _storable(job.workspace):
        values["workspace"] = job.workspace
    landed = _guarded_update(
        job,
        owner,
        state=JobStates.READY,
        errors=keep_errors(job, record),
        run_after=run_after,
        started_at=job.started_at,
        lease_expires_at=None,
        **values,
    )
    if landed:
        # Idle workers that LISTEN poll rarely: tell them when the retry will be due.
        backend_for(job._state.db or _write_alias(None)).notify([job.queue_name])
    return landed


def fail(job: Job, owner: str, record: dict[str, Any], *, keep_workspace: bool = False) -> bool:
    """The last attempt failed (or the row can never run): FAILED.

    The workspace the task left is saved if the database can store it; if not (or
    with ``keep_workspace``) the row keeps the last workspace saved, so the job's
    input is not lost.
    """
    values: dict[str, Any] = {}
    if not keep_workspace and _storable(job.workspace):
        values["workspace"] = job.workspace
    return _guarded_update(
        job,
        owner,
        state=JobStates.FAILED,
        errors=keep_errors(job, record),
        started_at=job.started_at,
        finished_at=timezone.now(),
        lease_expires_at=None,
        active_key=None,
        **values,
    )


def complete(owner: str, outcomes: list[Outcome]) -> int:
    """Write many completions at once, and log each one written.

    Jobs whose workspace is unchanged take one UPDATE in all; the others one
    ``bulk_update`` per few MiB of workspaces. If the database refuses a statement
    (one workspace it cannot store, say), those jobs are written one by one, and a
    job the database refuses again ends FAILED with that error and the last
    workspace saved: one bad row never holds back the others. Sets each outcome's
    ``written`` and returns how many rows this worker still held and so wrote. A
    database that cannot be reached raises; the outcomes not yet handled are those
    whose ``written`` is still ``None``.
    """
    now = timezone.now()
    final = _final_values(now)
    starts = [o.job.started_at for o in outcomes if o.job.started_at is not None]
    # A row whose start was not marked yet gets the earliest start of the batch.
    first_start = Coalesce("started_at", Value(min(starts, default=now)))
    same = [o for o in outcomes if not o.workspace_changed]
    groups = [same] if same else []
    groups += _by_size([o for o in outcomes if o.workspace_changed])
    written = 0
    for group in groups:
        held = Job.objects.held_by(owner)
        try:
            if group is same:
                count = held.filter(pk__in=[o.job.pk for o in group]).update(
                    **final, started_at=first_start
                )
            else:
                for outcome in group:
                    _set(outcome.job, final)
                count = held.bulk_update(
                    [o.job for o in group], [*final, "workspace", "started_at"]
                )
        except DatabaseError as exc:
            forget_broken_connections()
            logger.warning("Could not save %d completions at once (%s)", len(group), exc)
            written += sum(_complete_one(owner, outcome) for outcome in group)
            continue
        written += count
        for outcome in group:
            _set(outcome.job, final)
            outcome.written = True
            log_finish(outcome.job, outcome.task, "completed", outcome.duration)
    return written


def _final_values(now: datetime.datetime) -> dict[str, Any]:
    return {
        "state": JobStates.COMPLETED,
        "next_task": "",
        "finished_at": now,
        "lease_expires_at": None,
        "active_key": None,
        "modified": now,
    }


def _set(job: Job, values: dict[str, Any]) -> None:
    for field, value in values.items():
        setattr(job, field, value)


def _complete_one(owner: str, outcome: Outcome) -> int:
    """Write one completion; if the database refuses it while it takes other writes,
    fail the job instead."""
    job = outcome.job
    final = {**_final_values(timezone.now()), "started_at": job.started_at}
    if outcome.workspace_changed:
        final["workspace"] = job.workspace
    error: DatabaseError | None = None
    for attempt in range(3):
        try:
            count = Job.objects.held_by(owner).filter(pk=job.pk).update(**final)
        except DatabaseError as exc:
            forget_broken_connections()
            error = exc
            if attempt == 1:
                # Refused twice: this row, or a database that takes no write just now (a
                # lock held elsewhere, a lost connection)? Only the first fails the job;
                # the second raises, and the completer tries again later.
                try:
                    backend_for(_write_alias(None)).check_writable()
                except DatabaseError:
                    forget_broken_connections()
                    raise exc from None
            continue
        _set(job, final)
        outcome.written = bool(count)
        log_finish(job, outcome.task, "completed", outcome.duration)
        return count
    logger.error("The database refused the completion of job %s: %s", job.pk, error)
    assert error is not None
    failed = fail(job, owner, error_record(error, job, outcome.task, owner), keep_workspace=True)
    outcome.written = False
    log_finish(job, outcome.task, "failed" if failed else "lost", outcome.duration)
    return 0


def _by_size(outcomes: list[Outcome]) -> list[list[Outcome]]:
    chunks: list[list[Outcome]] = []
    size = BULK_UPDATE_BYTES
    for outcome in outcomes:
        length = len(json.dumps(outcome.job.workspace))
        if size + length > BULK_UPDATE_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(outcome)
        size += length
    return chunks


def save_failed_workspace(job: Job) -> bool:
    """Save the workspace a failure hook left on a job the rescue just failed, if the
    row is still as the rescue left it (FAILED, same owner, same ``modified``) and
    the database can store it."""
    if not _storable(job.workspace):
        return False
    return bool(
        Job.objects.filter(
            pk=job.pk, state=JobStates.FAILED, lease_owner=job.lease_owner, modified=job.modified
        ).update(workspace=job.workspace)
    )


def finish_tracked(job: Job, owner: str) -> bool:
    """A tracked operation ended well: COMPLETED, with its workspace as output."""
    return _guarded_update(
        job,
        owner,
        state=JobStates.COMPLETED,
        workspace=job.workspace,
        finished_at=timezone.now(),
        lease_expires_at=None,
        active_key=None,
    )


# --- leases ------------------------------------------------------------------------------------


def mark_started(owner: str, jobs: list[Job]) -> int:
    """Record that the tasks of ``jobs`` (held by ``owner``) have started.

    A claim leaves ``started_at`` empty; if the worker is lost, a job with an
    empty ``started_at`` is handed back without being charged the attempt (see
    :func:`rescue_expired`). The worker marks its running jobs in batches from
    its completer thread, so a job lost within the first moments of its task
    may be handed back uncharged too; :data:`UNCHARGED_RESCUES_MAX` bounds how
    often.
    """
    if not jobs:
        return 0
    first = min(job.started_at or timezone.now() for job in jobs)
    return (
        Job.objects.held_by(owner)
        .filter(pk__in=[job.pk for job in jobs], started_at__isnull=True)
        .update(started_at=first)
    )


def renew_leases(owner: str, leases: dict[float, list[Any]], *, using: str | None = None) -> int:
    """Push back the lease expiry of jobs ``owner`` holds.

    ``leases`` maps a lease length in seconds to the ids of the jobs that use it.
    Jobs the worker no longer tracks are deliberately not renewed, so that they
    expire and get rescued.
    """
    now = timezone.now()
    manager = Job.objects.db_manager(using) if using else Job.objects
    renewed = 0
    for seconds, ids in leases.items():
        if ids:
            renewed += (
                manager.held_by(owner)
                .filter(pk__in=ids)
                .update(lease_expires_at=now + datetime.timedelta(seconds=seconds))
            )
    return renewed


def release(owner: str, ids: list[Any]) -> int:
    """Hand unfinished jobs back (shutdown): READY, and the attempt is not spent."""
    if not ids:
        return 0
    return (
        Job.objects.held_by(owner)
        .filter(pk__in=ids)
        .update(
            state=JobStates.READY,
            attempts=models.F("attempts") - 1,
            lease_expires_at=None,
            modified=timezone.now(),
        )
    )


def release_untracked(owner: str, tracked: set[Any]) -> int:
    """Hand back the jobs ``owner`` holds but does not track (a claim that committed
    but whose reply was lost with the connection): READY, the attempt not spent."""
    held = Job.objects.held_by(owner).filter(lease_expires_at__isnull=False)  # lease index
    return release(owner, [pk for pk in held.values_list("pk", flat=True) if pk not in tracked])


#: How many times in a row a lost job may be handed back uncharged (its task not
#: seen to start) before the attempt is counted anyway.
UNCHARGED_RESCUES_MAX = 3


def _uncharged(job: Job) -> int:
    """How many of the job's latest error records are uncharged rescues, in a row."""
    count = 0
    for record in reversed(job.errors if isinstance(job.errors, list) else []):
        if not (isinstance(record, dict) and record.get("charged") is False):
            break
        count += 1
    return count


@dataclass
class Rescued:
    """A job whose worker was lost, as :func:`rescue_expired` left it."""

    job: Job
    error: WorkerLostError
    failed: bool  # FAILED (no attempts left); else READY again
    max_attempts: int


def rescue_expired(rescuer: str, *, limit: int = 100) -> list[Rescued]:
    """Return jobs whose lease expired to READY (attempt counted) or FAILED.

    Safe to run from any number of workers at once: each row is changed only if
    it is still PROCESSING under the same owner and expiry that we read. The
    caller runs failure hooks (:func:`django_dbq.runtime.executor.rescue_expired`).
    """
    now = timezone.now()
    manager = Job.objects
    expired = list(manager.lease_expired(now=now).order_by("lease_expires_at")[:limit])
    rescued = []
    for job in expired:
        job_type = job_types.job_type_for(job)
        max_attempts = job_type.max_attempts if job_type else 1
        if job.lease_expires_at is None:
            error = WorkerLostError(
                f"The job was PROCESSING without a lease (owner {job.lease_owner!r}): no "
                "worker was renewing it."
            )
        else:
            error = WorkerLostError(
                f"Worker {job.lease_owner} stopped renewing its lease on this job "
                f"(expired at {job.lease_expires_at.isoformat()})."
            )
        record = error_record(error, job, job.next_task, job.lease_owner)
        record["traceback"] = ""
        record["rescued_by"] = rescuer
        # A job whose task had not started is handed back without being charged (a
        # few times at most: a task that kills its worker at once is charged then).
        uncharged = job.started_at is None and job.next_task and _uncharged(job) < (
            UNCHARGED_RESCUES_MAX
        )
        if uncharged:
            record["charged"] = False
            record["message"] = (
                f"{record['message']} Its task had not started (or had only just): the "
                "attempt is not counted."
            )
            record["message_line"] = record["message"][:200]
        # A tracked operation (no next task) cannot be run again by a worker.
        failed = not uncharged and (job.attempts >= max_attempts or not job.next_task)
        values: dict[str, Any] = {
            "state": JobStates.FAILED if failed else JobStates.READY,
            "errors": keep_errors(job, record),
            "lease_expires_at": None,
            "modified": now,
        }
        if uncharged:
            values["attempts"] = max(job.attempts - 1, 0)
        if failed:
            values["finished_at"] = now
            values["active_key"] = None
        landed = manager.filter(
            pk=job.pk,
            state=JobStates.PROCESSING,
            lease_owner=job.lease_owner,
            lease_expires_at=job.lease_expires_at,
        ).update(**values)
        if landed:
            for field, value in values.items():
                setattr(job, field, value)
            rescued.append(Rescued(job, error, failed, max_attempts))
    return rescued


# --- operators' writes (the admin) -------------------------------------------------------
#
# Each takes the ids an operator chose and writes every row with its own guarded
# UPDATE (or DELETE): the row changes only if it is still in a state the write
# applies to, so a job that a worker claimed (or another operator changed) since the
# operator looked is left alone and counted as skipped. The candidates are first
# read without locks; the writes of each chunk of ids share one short transaction.

#: The states in which an operator may edit a job's queue, priority, run_after and
#: workspace: no worker holds the job.
EDITABLE_STATES = (JobStates.NEW, JobStates.READY, JobStates.FAILED)
#: The fields :func:`edit` may write.
EDITABLE_FIELDS = frozenset({"queue_name", "priority", "run_after", "workspace"})
#: Ids read and written per transaction by the operators' writes.
OPERATOR_CHUNK = 100
#: How many times :func:`cancel_waiting` reads a row again that changed under it
#: (and is still waiting) before it leaves the row alone.
CANCEL_READS = 3


@dataclass
class Changed:
    """What an operator's write did to the jobs it was given."""

    #: The ids of the jobs it changed, in the order given.
    changed: list[Any]
    #: How many it left alone: not (or no longer) in a state the write applies to, or gone.
    skipped: int


def _write_alias(using: str | None) -> str:
    return using or router.db_for_write(Job)


def _operate(
    ids: Sequence[Any],
    candidates: Any,
    write: Any,
    using: str,
) -> tuple[Changed, list[Job]]:
    """Read the ``candidates`` (a queryset) among ``ids``, chunk by chunk, and call
    ``write(job) -> bool`` on each inside the chunk's transaction. Returns what
    changed and the candidates that were changed, as read."""
    unique = list(dict.fromkeys(ids))
    changed: list[Job] = []
    for start in range(0, len(unique), OPERATOR_CHUNK):
        chunk = unique[start : start + OPERATOR_CHUNK]
        read = {job.pk: job for job in candidates.filter(pk__in=chunk)}
        with transaction.atomic(using=using):
            for job in read.values():
                if write(job):
                    changed.append(job)
    by_pk = {job.pk: job for job in changed}
    ordered = [by_pk[pk] for pk in (Job._meta.pk.to_python(i) for i in unique) if pk in by_pk]
    return Changed([job.pk for job in ordered], len(unique) - len(ordered)), ordered


def _wake(jobs: list[Job], using: str) -> None:
    """Wake the workers of the queues of ``jobs`` (PostgreSQL; polling elsewhere)."""
    if jobs:
        backend_for(using).notify(sorted({job.queue_name for job in jobs}))


def retry_failed(ids: Sequence[Any], by: str, *, using: str | None = None) -> Changed:
    """FAILED jobs back to READY, to run now, at the step that failed.

    That step starts again with no attempt spent (``attempts`` 0), ``run_after``,
    ``started_at`` and ``finished_at`` are cleared, and the errors are kept. A row
    is written only if it is still FAILED; a job with no next task (a tracked
    operation, which no worker can run) is skipped. A job with a unique key takes
    the key back, and is skipped if another job now holds it. ``by`` names who
    asked, for the log.
    """
    using = _write_alias(using)
    manager = Job.objects.db_manager(using)
    retryable = manager.filter(state=JobStates.FAILED).exclude(next_task="")

    def write(job: Job) -> bool:
        values = {
            "state": JobStates.READY,
            "attempts": 0,
            "run_after": None,
            "started_at": None,
            "finished_at": None,
            "lease_expires_at": None,
            "active_key": active_key_of(job.name, job.unique_key),
            "modified": timezone.now(),
        }
        try:
            with transaction.atomic(using=using):  # a savepoint: the key may be taken
                return bool(retryable.filter(pk=job.pk).update(**values))
        except IntegrityError:
            return False

    candidates = retryable.only("pk", "queue_name", "name", "unique_key")
    result, jobs = _operate(ids, candidates, write, using)
    _wake(jobs, using)
    _log_operation("retried", by, result)
    return result


def run_now(ids: Sequence[Any], by: str, *, using: str | None = None) -> Changed:
    """Waiting jobs scheduled for later (``run_after`` set) become runnable now.

    A row is written only if it is still NEW or READY with a ``run_after``.
    """
    using = _write_alias(using)
    manager = Job.objects.db_manager(using)
    scheduled = manager.filter(state__in=RUNNABLE_STATES, run_after__isnull=False)

    def write(job: Job) -> bool:
        return bool(scheduled.filter(pk=job.pk).update(run_after=None, modified=timezone.now()))

    result, jobs = _operate(ids, scheduled.only("pk", "queue_name"), write, using)
    _wake(jobs, using)
    _log_operation("made runnable now", by, result)
    return result


def cancel_waiting(ids: Sequence[Any], by: str, *, using: str | None = None) -> Changed:
    """Waiting jobs (NEW or READY, due or scheduled) end FAILED without running.

    Each gets an error record of type :class:`~django_dbq.exceptions.JobCancelledError`
    whose message and ``cancelled_by`` say who cancelled it (``by``). The failure
    hook does not run and no ``job_failed`` signal is sent: the job did not fail at
    a task, an operator stopped it. A row is written only if it is still waiting
    and unchanged since it was read (same ``modified``), so neither a worker's claim
    nor an error a retry added is overwritten; a row that changed but still waits is
    read again (:data:`CANCEL_READS` times at most).
    """
    using = _write_alias(using)
    manager = Job.objects.db_manager(using)
    waiting = manager.filter(state__in=RUNNABLE_STATES)
    fields = ("pk", "name", "state", "next_task", "attempts", "errors", "modified", "queue_name")

    def write(job: Job) -> bool:
        for _ in range(CANCEL_READS):
            now = timezone.now()
            error = JobCancelledError(
                f"Cancelled by {by} while it waited to run (it was {job.state})."
            )
            record = error_record(error, job, job.next_task, "")
            record["traceback"] = ""
            record["cancelled_by"] = by
            landed = waiting.filter(pk=job.pk, modified=job.modified).update(
                state=JobStates.FAILED,
                errors=keep_errors(job, record),
                finished_at=now,
                lease_expires_at=None,
                active_key=None,
                modified=now,
            )
            if landed:
                return True
            fresh = waiting.filter(pk=job.pk).only(*fields).first()
            if fresh is None:
                return False
            job.state, job.errors, job.modified = fresh.state, fresh.errors, fresh.modified
            job.attempts, job.next_task = fresh.attempts, fresh.next_task
        return False

    result, _ = _operate(ids, waiting.only(*fields), write, using)
    _log_operation("cancelled", by, result)
    return result


@dataclass
class Cancelled:
    """What :func:`cancel` did: the waiting jobs it ended (FAILED now), the running
    ones it asked to stop, and how many it left alone (finished, or gone)."""

    ended: list[Any]
    requested: list[Any]
    skipped: int


def cancel(ids: Sequence[Any], by: str, *, using: str | None = None) -> Cancelled:
    """Cancel jobs: waiting ones end FAILED at once (:func:`cancel_waiting`); running
    ones get a cancel request that their worker sees within a heartbeat (a third of
    the lease). Their task can stop at ``job.checkpoint()``; one that does not stop
    within ``DBQ_CANCEL_GRACE`` seconds is ended by the worker. Either way the job
    ends FAILED with a ``JobCancelledError`` record naming ``by``, and is never
    retried; a job that completes before that keeps its COMPLETED."""
    using = _write_alias(using)
    unique = list(dict.fromkeys(Job._meta.pk.to_python(i) for i in ids))
    waiting = cancel_waiting(unique, by, using=using)
    ended = set(waiting.changed)
    asked = request_stop([pk for pk in unique if pk not in ended], by, using=using)
    return Cancelled(waiting.changed, asked.changed, len(unique) - len(ended) - len(asked.changed))


def request_stop(ids: Sequence[Any], by: str, *, using: str | None = None) -> Changed:
    """Ask running (PROCESSING) jobs to stop; see :func:`cancel`. Jobs not running are
    skipped. A job asked twice keeps the first request."""
    using = _write_alias(using)
    unique = list(dict.fromkeys(Job._meta.pk.to_python(i) for i in ids))
    running = set(
        Job.objects.using(using)
        .filter(pk__in=unique, state=JobStates.PROCESSING)
        .values_list("pk", flat=True)
    )
    now = timezone.now()
    table = CancelRequest.objects.using(using)
    for pk in running:
        try:
            with transaction.atomic(using=using):
                table.get_or_create(job_id=pk, defaults={"requested_at": now, "requested_by": by})
        except IntegrityError:
            pass  # asked twice at the same moment: one request is enough
    result = Changed([pk for pk in unique if pk in running], len(unique) - len(running))
    if running:
        logger.info("%s asked %d running job(s) to stop", by, len(running))
    return result


def cancel_requests(ids: Sequence[Any], *, using: str | None = None) -> dict[Any, str]:
    """The cancel requests of jobs ``ids``: job id -> who asked."""
    if not ids:
        return {}
    requests = CancelRequest.objects.using(_write_alias(using)).filter(job_id__in=list(ids))
    return dict(requests.values_list("job_id", "requested_by"))


def end_cancelled(job: Job, owner: str, by: str, stopped: bool) -> bool:
    """A running job that was asked to stop ends FAILED (never retried, no failure
    hook): its task stopped (``stopped``) or did not within the grace period."""
    how = "its task stopped at a checkpoint" if stopped else "its task did not stop in time"
    error = JobCancelledError(f"Cancelled by {by} while it ran ({how}).")
    record = error_record(error, job, job.next_task, owner)
    record["cancelled_by"] = by
    if stopped:
        record["traceback"] = ""
    landed = fail(job, owner, record, keep_workspace=True)
    forget_cancel_requests([job.pk])
    return landed


def forget_cancel_requests(ids: Sequence[Any], *, using: str | None = None) -> None:
    """Delete the cancel requests of jobs that ended."""
    if ids:
        CancelRequest.objects.using(_write_alias(using)).filter(job_id__in=list(ids)).delete()


def take_chore(name: str, owner: str, every: float, *, using: str | None = None) -> bool:
    """Whether ``owner`` does the chore ``name`` now, for every worker.

    True for exactly one of the workers that ask once it is due: the one whose
    guarded UPDATE moves its due time about ``every`` seconds ahead (the row is
    created by the first to ask); false for the others until then. A worker that
    takes a chore and dies leaves it due again after ``every`` seconds."""
    using = _write_alias(using)
    now = timezone.now()
    # A little less than the interval, so that a worker asking every ``every``
    # seconds (give or take its jitter) finds it due each time.
    due = now + datetime.timedelta(seconds=every * 0.8)
    chores = Chore.objects.using(using)
    if chores.filter(name=name, due_at__lte=now).update(due_at=due, taken_by=owner[:128]):
        return True
    if chores.filter(name=name).exists():
        return False
    try:
        with transaction.atomic(using=using):
            chores.create(name=name, due_at=due, taken_by=owner[:128])
    except IntegrityError:
        return False  # another worker created it first: it does this pass
    return True


def forget_stale_cancel_requests(*, using: str | None = None) -> int:
    """Delete the cancel requests of jobs no longer running (they completed first, or
    their worker was lost and they were rescued)."""
    using = _write_alias(using)
    running = Job.objects.using(using).filter(state=JobStates.PROCESSING).values("pk")
    return CancelRequest.objects.using(using).exclude(job_id__in=running).delete()[0]


def delete_finished(ids: Sequence[Any], by: str, *, using: str | None = None) -> Changed:
    """Delete COMPLETED and FAILED jobs; a row is deleted only if it is still finished."""
    using = _write_alias(using)
    finished = Job.objects.db_manager(using).filter(state__in=FINISHED_STATES)

    def write(job: Job) -> bool:
        return bool(finished.filter(pk=job.pk).delete()[0])

    result, _ = _operate(ids, finished.only("pk"), write, using)
    _log_operation("deleted", by, result)
    return result


def edit(
    pk: Any, seen: datetime.datetime, values: Mapping[str, Any], *, using: str | None = None
) -> bool:
    """An operator's edit of a job no worker holds (:data:`EDITABLE_STATES`).

    ``values`` maps fields of :data:`EDITABLE_FIELDS` to their new (validated)
    values. The row is written only if it is still editable and unchanged since
    the operator read it (its ``modified`` is ``seen``): a job claimed, run,
    retried or edited by someone else in the meantime is left alone (``False``).
    """
    unknown = set(values) - EDITABLE_FIELDS
    if unknown:
        raise ValueError(f"Operators may not edit {sorted(unknown)} of a job.")
    return bool(
        Job.objects.db_manager(_write_alias(using))
        .filter(pk=pk, state__in=EDITABLE_STATES, modified=seen)
        .update(**values, modified=timezone.now())
    )


def _log_operation(what: str, by: str, result: Changed) -> None:
    if result.changed or result.skipped:
        operations_logger.info(
            "Jobs %s by %s: %d changed, %d skipped", what, by, len(result.changed), result.skipped
        )


# --- error records -----------------------------------------------------------------------------


def error_record(error: BaseException, job: Job, task: str, owner: str) -> dict[str, Any]:
    """The JSON entry kept in ``job.errors`` for one failed attempt.

    Whatever the exception: a message that cannot be had from ``str()`` falls back
    to ``repr()``, then to the type's name, and text every database can store is
    made of what it holds (NUL characters and lone surrogates escaped).
    """
    kind = type(error)
    message = _message_of(error)
    try:
        text = "".join(traceback.format_exception(kind, error, error.__traceback__))
    except Exception:
        text = "".join(traceback.format_tb(error.__traceback__)) + f"{kind.__name__}: {message}"
    message = storable_text(message)
    return {
        "attempt": job.attempts,
        "task": task,
        "type": f"{kind.__module__}.{kind.__qualname__}",
        "message": message[:2000],
        "message_line": (message.splitlines() or [""])[0][:200],
        "traceback": storable_text(text[-conf.MAX_TRACEBACK_CHARS :]),
        "worker": owner,
        "at": timezone.now().isoformat(),
    }


def _message_of(error: BaseException) -> str:
    for describe in (str, repr):
        try:
            text = describe(error)
            if isinstance(text, str):
                return text
        except Exception:
            continue
    return type(error).__name__


def storable_text(text: str) -> str:
    """``text`` with what some database refuses escaped: NUL (PostgreSQL) as ``\\x00``
    and lone surrogates (every UTF-8 database) as ``\\udXXX``."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def keep_errors(job: Job, record: dict[str, Any]) -> list[dict[str, Any]]:
    """``job.errors`` with ``record`` added, the oldest dropped past DBQ_MAX_ERRORS_KEPT."""
    errors = job.errors if isinstance(job.errors, list) else []
    return [*errors, record][-conf.max_errors_kept() :]


def _storable(value: Any) -> bool:
    """Whether ``value`` can be stored as a workspace on every supported database."""
    try:
        validate_workspace(value)
    except InvalidWorkspaceError:
        return False
    return True


# --- logging what was written ---------------------------------------------------------------------


def log_finish(job: Job, task: str, outcome: str, duration: float) -> None:
    """Log the end of a step whose outcome was written (or was ``lost``)."""
    if outcome == "lost":
        logger.warning(
            "Job outcome discarded: id=%s name=%s: this worker no longer holds its lease "
            "(it was rescued by another worker)",
            job.pk,
            job.name,
        )
        return
    logger.info(
        "Job finished: id=%s name=%s task=%s outcome=%s duration=%.1fms",
        job.pk,
        job.name,
        task,
        outcome,
        duration * 1000,
    )
