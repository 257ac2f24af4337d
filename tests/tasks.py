"""Tasks and hooks named in the test settings' JOBS."""

import os
import threading
import time
import uuid

from tests.models import Execution

calls: list[tuple[str, str]] = []


def noop(job):
    pass


def record_execution(job):
    """Record this execution (pid, thread, start and end time) in the Execution table."""
    started = time.time()
    duration = float(job.workspace.get("sleep", 0))
    if duration:
        time.sleep(duration)
    Execution.objects.create(
        job_id=job.pk,
        pid=os.getpid(),
        thread=threading.current_thread().name,
        started=started,
        finished=time.time(),
    )


def sleep_then_record(job):
    """Announce the start (a file), run for workspace["seconds"], then record.

    With workspace["slow_once"], only the first attempt is slow.
    """
    marker = job.workspace.get("started_marker")
    if marker:
        with open(marker, "a") as handle:
            handle.write(f"{job.pk} {os.getpid()} {job.attempts}\n")
    if job.attempts == 1 or not job.workspace.get("slow_once"):
        time.sleep(float(job.workspace.get("seconds", 1)))
    record_execution(job)


def step_one(job):
    calls.append(("step_one", str(job.pk)))
    job.workspace["trail"] = [*job.workspace.get("trail", []), "one"]


def step_two(job):
    calls.append(("step_two", str(job.pk)))
    job.workspace["trail"] = [*job.workspace["trail"], "two"]


def step_three(job):
    calls.append(("step_three", str(job.pk)))
    job.workspace["trail"] = [*job.workspace["trail"], "three"]


def creation_hook(job):
    calls.append(("creation_hook", str(job.pk)))
    job.workspace["created_by_hook"] = True


def pre_task_hook(job):
    calls.append(("pre_task_hook", job.next_task))


def post_task_hook(job):
    calls.append(("post_task_hook", job.next_task))


def failure_hook(job, exception):
    calls.append(("failure_hook", f"{type(exception).__name__}: {exception}"))


def fail(job):
    raise ValueError("task failed on purpose")


def fail_until(job):
    """Fail until the job's attempt number reaches workspace["succeed_on"]."""
    if job.attempts < job.workspace.get("succeed_on", 99):
        raise ValueError(f"attempt {job.attempts} fails")
    job.workspace["succeeded_on"] = job.attempts


def leave_unserialisable_workspace(job):
    job.workspace["when"] = object()


def grow_workspace(job):
    """Leave a workspace of about workspace["bytes"] bytes."""
    job.workspace["blob"] = "x" * int(job.workspace["bytes"])


NOT_CALLABLE = 42


batches: list[list[str]] = []


def count_clicks(jobs):
    """Batch task: record the batch (in memory and one Execution row per job)."""
    batch_id = uuid.uuid4().hex[:16]
    batches.append([str(job.pk) for job in jobs])
    now = time.time()
    Execution.objects.bulk_create(
        [
            Execution(job_id=job.pk, pid=os.getpid(), thread=batch_id, started=now, finished=now)
            for job in jobs
        ]
    )
    for job in jobs:
        job.workspace["batch_size"] = len(jobs)


def fail_some(jobs):
    """Batch task: fail the jobs whose workspace says "bad", complete the others."""
    batches.append([str(job.pk) for job in jobs])
    for job in jobs:
        if job.workspace.get("bad"):
            job.fail("bad input")
        else:
            job.workspace["ok"] = True


def explode_batch(jobs):
    batches.append([str(job.pk) for job in jobs])
    raise ValueError("the whole batch failed")


def slow_batch(jobs):
    """Batch task: announce itself, be slow on the first attempt, then record."""
    marker = jobs[0].workspace.get("started_marker")
    if marker:
        with open(marker, "a") as handle:
            handle.write(" ".join(str(job.pk) for job in jobs) + "\n")
    if jobs[0].attempts == 1:
        time.sleep(120)
    count_clicks(jobs)


def note_failure_in_workspace(job, exception):
    """Failure hook: leave a note in the workspace, as django-db-queue users do."""
    job.workspace["failure_hook"] = f"{type(exception).__name__}: {exception}"


def note_post_task_in_workspace(job):
    """Post-task hook: count its runs in the workspace."""
    job.workspace["post_task_hook"] = job.workspace.get("post_task_hook", 0) + 1
