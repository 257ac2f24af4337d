"""Running one claimed job: hooks, the current chain step, and its outcome.

The executor is called by a worker thread with a job the worker holds
(PROCESSING, leased to ``owner``). It runs exactly the task the JOBS setting
names for the job's current step and decides what happens next:

- the chain has more steps: READY at the next step (written now);
- an exception, attempts left: the post-task hook, then READY with ``run_after``
  in the future (now);
- an exception, no attempts left: the failure and post-task hooks, then FAILED
  (now), so that what the hooks leave in the workspace is saved with it;
- the last step succeeded: COMPLETED. This write is returned to the worker,
  which batches it with others (see :func:`django_dbq.store.complete`).

Every write is guarded by ``state=PROCESSING AND lease_owner=owner``: if the
lease was lost (the job was rescued by another worker) the write changes
nothing and the outcome is reported as ``lost``. Every write is made by
:mod:`django_dbq.store`; the executor decides, calls hooks and sends signals.
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from typing import Any

from django.db import InterfaceError, OperationalError, connections
from django.utils import timezone

from .. import job_types, options, signals, store
from ..db import forget_broken_connections
from ..exceptions import JobCancelledError, JobTimeoutError, PermanentJobError
from ..models import Job, validate_workspace
from ..store import Outcome, OutcomeKind, error_record, log_finish

logger = logging.getLogger("django_dbq.worker")


def snapshot(job: Job) -> str | None:
    """The workspace as JSON when the job was claimed (to know if a task changed it)."""
    try:
        return json.dumps(job.workspace, sort_keys=True)
    except (TypeError, ValueError):
        return None


def _send(signal: Any, **kwargs: Any) -> None:
    try:
        signal.send(sender=Job, **kwargs)
    except Exception:
        logger.exception("A receiver of %s raised; ignored", kwargs)


def _call_hook(path: str | None, *args: Any) -> None:
    if path:
        job_types.resolve(path)(*args)


def _check_row(job: Job) -> job_types.JobType:
    """The job type for a claimed row, refusing rows that JOBS does not explain."""
    try:
        job_type = job_types.get_job_type(job.name)
    except Exception as exc:
        raise PermanentJobError(str(exc)) from None
    if job.next_task not in job_type.tasks:
        raise PermanentJobError(
            f"Job {job.pk} wants to run {job.next_task!r}, which is not a task of job type "
            f"{job.name!r} in JOBS ({', '.join(job_type.tasks)}); refusing to run it."
        )
    if not isinstance(job.workspace, dict):
        raise PermanentJobError(
            f"Job {job.pk} has a workspace of type {type(job.workspace).__name__}; "
            "a workspace must be a JSON object."
        )
    return job_types.job_type_for(job) or job_type


def run(job: Job, owner: str, before: str | None) -> Outcome:
    """Run the current step of ``job`` (held by ``owner``) and record what happened."""
    batch_type = job_types.job_types().get(job.name)
    if batch_type is not None and batch_type.batch is not None:
        return run_batch([job], owner, [before])[0]
    start = time.monotonic()
    if job.started_at is None:
        job.started_at = timezone.now()
    task = job.next_task
    logger.info(
        "Job started: id=%s name=%s task=%s attempt=%s", job.pk, job.name, task, job.attempts
    )
    job_type: job_types.JobType | None = None
    error: BaseException | None = None
    permanent = False
    try:
        job_type = _check_row(job)
        _send(signals.job_started, job=job)
        _call_hook(job_type.pre_task_hook, job)
        job_types.resolve(task)(job)
    except PermanentJobError as exc:
        error, permanent = exc, True
    except JobCancelledError:
        return _settle_cancelled(job, owner, task, time.monotonic() - start)
    except BaseException as exc:  # SystemExit too: it fails this job, not the worker
        error = exc
    if abandoned(job):
        return _left_behind(job, task, time.monotonic() - start)
    if error is None:
        assert job_type is not None
        _post_task_hook(job_type, job)
        try:
            validate_workspace(job.workspace)
        except Exception as exc:
            error = exc
    duration = time.monotonic() - start

    if error is None:
        assert job_type is not None
        step = job_type.step_of(task, job.step) + 1
        after = job_type.task_after(task, job.step)
        if after is None:
            changed = snapshot(job) != before
            _send(signals.job_finished, job=job, duration=duration)
            return Outcome(job, "completed", duration, task, workspace_changed=changed)
        landed = persist(store.advance, job, owner, after, step)
        log_finish(job, task, "advanced" if landed else "lost", duration)
        return Outcome(job, "advanced" if landed else "lost", duration, task)

    forget_broken_connections()
    # As in django-db-queue: the post-task hook runs even when the task failed, after
    # the failure hook; both before the outcome is saved, so their workspace is too.
    return _settle_failure(
        job, job_type, error, permanent, owner, task, duration, post_task_hook=not permanent
    )


def abandoned(job: Job) -> bool:
    """Whether the worker gave up on this run of ``job`` (timed out, or cancelled past
    its grace) and wrote its outcome itself: nothing more may be written for it."""
    return getattr(job, "_abandoned", False)


def _left_behind(job: Job, task: str, duration: float) -> Outcome:
    logger.warning(
        "Job %s: its task %s returned after %.1fs, after the worker had ended it "
        "(timeout or cancellation); its result is discarded",
        job.pk,
        task,
        duration,
    )
    return Outcome(job, "lost", duration, task)


def _settle_cancelled(job: Job, owner: str, task: str, duration: float) -> Outcome:
    """The task stopped at ``job.checkpoint()``: the job ends FAILED, cancelled."""
    if abandoned(job):
        return _left_behind(job, task, duration)
    by = getattr(job, "_cancel_by", None) or "someone"
    landed = persist(store.end_cancelled, job, owner, by, True)
    if landed:
        logger.warning("Job cancelled: id=%s name=%s task=%s by=%s", job.pk, job.name, task, by)
    kind: OutcomeKind = "failed" if landed else "lost"
    log_finish(job, task, kind, duration)
    return Outcome(job, kind, duration, task)


def time_out(job: Job, owner: str, seconds: float) -> Outcome:
    """The worker's watchdog ends an attempt that ran past its job type's timeout:
    the attempt fails with :class:`JobTimeoutError`, retried if attempts are left
    (the failure hook runs on the last), as any failed attempt. The runner thread
    left behind writes nothing more for it."""
    job._abandoned = True
    task = job.next_task
    error = JobTimeoutError(
        f"Task {task} ran longer than the timeout of {seconds:g}s of job type "
        f"{job.name!r}; the attempt was stopped."
    )
    job_type = job_types.job_type_for(job)
    return _settle_failure(job, job_type, error, False, owner, task, seconds)


def cancel_overdue(job: Job, owner: str, by: str, duration: float) -> Outcome:
    """The worker's watchdog ends a job that was asked to stop and did not within
    ``DBQ_CANCEL_GRACE`` seconds: FAILED, cancelled, not retried."""
    job._abandoned = True
    landed = persist(store.end_cancelled, job, owner, by, False)
    if landed:
        logger.warning(
            "Job cancelled: id=%s name=%s by=%s (its task did not stop in time; the "
            "worker stopped waiting for it)",
            job.pk,
            job.name,
            by,
        )
    kind: OutcomeKind = "failed" if landed else "lost"
    log_finish(job, job.next_task, kind, duration)
    return Outcome(job, kind, duration, job.next_task)


def _post_task_hook(job_type: job_types.JobType, job: Job) -> None:
    try:
        _call_hook(job_type.post_task_hook, job)
    except BaseException:
        logger.exception("Post-task hook of job %s raised; ignored", job.pk)


def _settle_failure(
    job: Job,
    job_type: job_types.JobType | None,
    error: BaseException,
    permanent: bool,
    owner: str,
    task: str,
    duration: float,
    *,
    post_task_hook: bool = False,
) -> Outcome:
    """Record a failed attempt: READY again later if attempts are left, else FAILED.

    As in django-db-queue 3.x, the failure hook (on the last attempt) and then the
    post-task hook run *before* the outcome is written, so what they leave in
    ``job.workspace`` is saved with it. A hook that raises is logged; the outcome is
    written all the same.
    """
    record = error_record(error, job, task, owner)
    max_attempts = job_type.max_attempts if job_type else 1
    retry = not permanent and job.attempts < max_attempts and job_type is not None
    if not persist(store.still_held, job, owner):
        # Rescued by another worker (it runs the hooks if it fails the job): nothing
        # of ours may be written or run for it any more.
        log_finish(job, task, "lost", duration)
        return Outcome(job, "lost", duration, task)
    if job_type is not None:
        if not retry:
            try:
                _call_hook(job_type.failure_hook, job, error)
            except BaseException:
                logger.exception("Failure hook of job %s raised; ignored", job.pk)
        if post_task_hook:
            _post_task_hook(job_type, job)
    if retry:
        assert job_type is not None
        delay = _retry_delay(job_type, job.attempts)
        run_after = timezone.now() + datetime.timedelta(seconds=delay)
        landed = persist(store.retry, job, owner, record, run_after)
        if landed:
            logger.warning(
                "Job failed, will retry: id=%s name=%s task=%s attempt=%s/%s in=%.1fs error=%s",
                job.pk,
                job.name,
                task,
                job.attempts,
                max_attempts,
                delay,
                record["message_line"],
            )
            _send(signals.job_retried, job=job, exception=error, run_after=run_after)
        kind: OutcomeKind = "retried" if landed else "lost"
    else:
        landed = persist(store.fail, job, owner, record)
        if landed:
            logger.error(
                "Job failed: id=%s name=%s task=%s attempt=%s error=%s\n%s",
                job.pk,
                job.name,
                task,
                job.attempts,
                record["message_line"],
                record["traceback"],
            )
            _send(signals.job_failed, job=job, exception=error)
        kind = "failed" if landed else "lost"
    if kind == "lost":
        log_finish(job, task, kind, duration)
    return Outcome(job, kind, duration, task)


def run_batch(batch: list[Job], owner: str, befores: list[str | None]) -> list[Outcome]:
    """Run one batch: the job type's task is called once with the list of jobs.

    Each job gets its own outcome: COMPLETED, or (if the task raised, or called
    ``job.fail(...)`` on it, or left its workspace unstorable) retried or FAILED
    by its own attempt count.
    """
    start = time.monotonic()
    now = timezone.now()
    for job in batch:
        job.started_at = job.started_at or now
    runnable: list[tuple[Job, str | None]] = []
    outcomes: list[Outcome] = []
    job_type: job_types.JobType | None = None
    for job, before in zip(batch, befores, strict=True):
        try:
            job_type = _check_row(job)
        except PermanentJobError as exc:
            outcomes.append(_settle_failure(job, None, exc, True, owner, job.next_task, 0.0))
            continue
        runnable.append((job, before))
    if not runnable or job_type is None:
        return outcomes
    task = job_type.first_task
    jobs_only = [job for job, _ in runnable]
    logger.info(
        "Batch started: name=%s jobs=%d queue=%s key=%r",
        job_type.name,
        len(jobs_only),
        jobs_only[0].queue_name,
        jobs_only[0].batch_key,
    )
    for job in jobs_only:
        _send(signals.job_started, job=job)
    error: BaseException | None = None
    try:
        job_types.resolve(task)(jobs_only)
    except BaseException as exc:  # SystemExit too: it fails this batch, not the worker
        error = exc
        forget_broken_connections()
    duration = time.monotonic() - start
    for job, before in runnable:
        if abandoned(job):
            outcomes.append(_left_behind(job, task, duration))
            continue
        job_error = error or getattr(job, "_dbq_error", None)
        if job_error is None:
            try:
                validate_workspace(job.workspace)
            except Exception as exc:
                job_error = exc
        if job_error is None:
            changed = snapshot(job) != before
            _send(signals.job_finished, job=job, duration=duration)
            outcomes.append(Outcome(job, "completed", duration, task, workspace_changed=changed))
        else:
            outcomes.append(_settle_failure(job, job_type, job_error, False, owner, task, duration))
    logger.info(
        "Batch finished: name=%s jobs=%d failed=%d duration=%.1fms",
        job_type.name,
        len(jobs_only),
        sum(o.kind != "completed" for o in outcomes),
        duration * 1000,
    )
    return outcomes


def _retry_delay(job_type: job_types.JobType, attempt: int) -> float:
    """The job type's retry delay; a backoff function that raises or returns something
    other than a finite number of seconds from 0 to a year is logged, and the default
    exponential backoff is used instead."""
    try:
        delay = float(job_type.retry_delay(attempt))
        if options.BACKOFF.valid(delay):
            return delay
        problem = f"it returned {delay!r}"
    except Exception as exc:
        problem = f"it raised {type(exc).__name__}: {exc}"
    logger.error(
        "The backoff of job type %s is broken (%s); using the default backoff",
        job_type.name,
        problem,
    )
    return job_types.JobType(job_type.name, job_type.tasks).retry_delay(attempt)


def persist(write: Any, *args: Any, attempts: int = 6) -> Any:
    """Run a guarded write, riding out a lost database connection with backoff.

    Only errors a reconnection can cure (``OperationalError``, ``InterfaceError``)
    are retried; one the database will refuse again (bad data, a constraint) is
    raised at once.
    """
    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            return write(*args)
        except (OperationalError, InterfaceError) as exc:
            if attempt == attempts:
                raise
            logger.warning("Database error while saving a job (%s); retrying in %.1fs", exc, delay)
            for connection in connections.all(initialized_only=True):
                connection.close()
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")


def rescue_expired(rescuer: str) -> int:
    """Rescue jobs whose worker was lost (:func:`django_dbq.store.rescue_expired`), then
    log each one and, for those that ended FAILED, run the failure hook and signal."""
    rescued = store.rescue_expired(rescuer)
    for lost in rescued:
        job = lost.job
        if lost.failed:
            logger.error(
                "Job failed: id=%s name=%s: its worker %s was lost and no attempts are left",
                job.pk,
                job.name,
                job.errors[-1].get("worker"),
            )
            job_type = job_types.job_type_for(job)
            if job_type is not None and job_type.failure_hook:
                before = snapshot(job)
                try:
                    _call_hook(job_type.failure_hook, job, lost.error)
                except BaseException:
                    logger.exception("Failure hook of job %s raised; ignored", job.pk)
                if snapshot(job) != before:  # saved, as when the hook runs in the worker
                    persist(store.save_failed_workspace, job)
            _send(signals.job_failed, job=job, exception=lost.error)
        else:
            logger.warning(
                "Job rescued: id=%s name=%s: worker %s was lost; back to READY (attempt %s/%s)",
                job.pk,
                job.name,
                job.errors[-1].get("worker"),
                job.attempts,
                lost.max_attempts,
            )
    return len(rescued)
