"""The task of the ``chaos`` job type: record each execution, start and end.

An execution is one call of the task: a row of :class:`tests.models.Execution`
written when it starts (``finished`` = 0) and updated when it ends, so that an
execution cut short by a killed worker is still seen, and two executions of one
job can be checked for overlap. The writes ride out a lost database connection
(a chaos run cuts connections on purpose): a record that could not be written
would make the checks blind.
"""

from __future__ import annotations

import os
import random
import secrets
import threading
import time

from django.db import DatabaseError, InterfaceError, connection

from tests.models import Execution

# How long the task keeps retrying one of its own writes before giving up.
WRITE_DEADLINE_SECONDS = 120.0


def _write(action):
    deadline = time.monotonic() + WRITE_DEADLINE_SECONDS
    delay = 0.05
    retry = False
    while True:
        try:
            return action(retry)
        except (DatabaseError, InterfaceError):
            retry = True
            if time.monotonic() > deadline:
                raise
            connection.close()
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def record(job):
    """Record the start, work for workspace["min_ms"]..["max_ms"], record the end."""
    started = time.time()
    # A tag of its own, so that retrying an INSERT whose commit was not acknowledged
    # finds the row instead of adding a second "execution".
    tag = f"{threading.current_thread().name}#{job.attempts}#{secrets.token_hex(6)}"[-64:]

    def start(retry: bool) -> Execution:
        existing = retry and Execution.objects.filter(job_id=job.pk, thread=tag).first()
        return existing or Execution.objects.create(
            job_id=job.pk, pid=os.getpid(), thread=tag, started=started, finished=0.0
        )

    row = _write(start)
    low = float(job.workspace.get("min_ms", 0))
    high = float(job.workspace.get("max_ms", low))
    work = random.uniform(low, high) / 1000
    if work:
        time.sleep(work)
    if job.workspace.get("touch"):
        # Change the workspace, so that completions take the bulk_update path too.
        job.workspace["done_by"] = os.getpid()
    finished = time.time()
    _write(lambda retry: Execution.objects.filter(pk=row.pk).update(finished=finished))
