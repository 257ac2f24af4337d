"""Tracking an in-process operation as a Job row (``Job.objects.track``).

The row is PROCESSING while the block runs, leased to this process and kept
alive by a small renewer thread; it ends COMPLETED (with the workspace as the
operation's output) or FAILED (with the error) when the block exits. If the
process dies mid-way, the lease expires and any worker marks the row FAILED,
so an operation is never shown as running forever.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from typing import Any

from django.db import connections
from django.db import models as db_models
from django.utils import timezone

from .. import conf, store
from ..models import Job, validate_fields, validate_workspace
from ..states import JobStates

logger = logging.getLogger("django_dbq.tracking")


class _Renewer(threading.Thread):
    def __init__(self, job: Job, owner: str, lease: float, using: str) -> None:
        super().__init__(name="dbq-track-renewer", daemon=True)
        self.job, self.owner, self.lease, self.using = job, owner, lease, using
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.lease / 3):
                store.renew_leases(self.owner, {self.lease: [self.job.pk]}, using=self.using)
        finally:
            connections.close_all()


@contextlib.contextmanager
def track(
    name: str,
    *,
    context_object: db_models.Model | None = None,
    workspace: dict[str, Any] | None = None,
    queue_name: str = "default",
    using: str | None = None,
) -> Iterator[Job]:
    """Record the enclosed block as a Job row called ``name`` (any operation name).

    Yields the job: its ``pk`` can tag rows the block bulk-creates, and whatever
    the block leaves in ``job.workspace`` is saved as the output. An exception
    marks the job FAILED with the error, then propagates.
    """
    using = using or conf.database()
    owner = f"track:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    lease = conf.lease_seconds()
    now = timezone.now()
    job = Job(
        name=name,
        queue_name=queue_name,
        workspace=workspace if workspace is not None else {},
        state=JobStates.PROCESSING,
        attempts=1,
        started_at=now,
        lease_owner=owner,
        lease_expires_at=now + datetime.timedelta(seconds=lease),
    )
    if context_object is not None:
        job.context_object = context_object
    validate_workspace(job.workspace)
    validate_fields(job)
    job.save_tracked(using=using)
    renewer = _Renewer(job, owner, lease, using)
    renewer.start()
    try:
        yield job
        validate_workspace(job.workspace)
    except BaseException as exc:
        renewer.stopped.set()
        record = store.error_record(exc, job, name, owner)
        if not store.fail(job, owner, record):
            _lost(job)
        raise
    renewer.stopped.set()
    if not store.finish_tracked(job, owner):
        _lost(job)


def _lost(job: Job) -> None:
    logger.warning(
        "Tracked operation %s (%s) was no longer held by this process (its lease "
        "expired and a worker marked it FAILED); its outcome was not saved",
        job.pk,
        job.name,
    )
