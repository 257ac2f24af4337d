"""Running jobs in this process: the always-synchronous mode and helpers for tests.

With ``DBQ_RUN_SYNCHRONOUSLY = True`` every job created through
``Job.objects.create`` / ``bulk_create_jobs`` runs its whole chain in the
creating process as soon as the surrounding transaction commits. The rows and
every state change are written exactly as a worker would write them, so tests
see what production would see. A batch job type runs as a batch of one; a job
that fails with attempts left stays READY until its retry time, as in production.

In tests that keep the default (asynchronous) mode, :func:`run_pending_jobs`
runs everything runnable to completion, batches included regardless of their
``wait``.

The mode is hooked in by :meth:`DjangoDbqConfig.ready` (``apps.py``): new jobs
send :data:`django_dbq.signals.run_synchronously` and :func:`run_at_commit`
receives it. Every write goes through :mod:`django_dbq.store`, as a worker's.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable

from django.db import transaction

from .. import conf, job_types, store
from ..models import Job
from ..runtime import executor


def _owner() -> str:
    return f"sync:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def run_job(job: Job | object, *, using: str | None = None) -> Job:
    """Run one job's chain now, in this process; return it as it ends up.

    Steps run one after another until the job is COMPLETED or FAILED, or is READY
    waiting for a retry (its ``run_after`` in the future).
    """
    using = using or conf.database()
    pk = job.pk if isinstance(job, Job) else job
    owner = _owner()
    while True:
        claimed = store.claim_job(owner, pk, conf.lease_seconds(), using=using)
        if claimed is None:
            break
        outcome = executor.run(claimed, owner, executor.snapshot(claimed))
        if outcome.kind == "completed":
            store.complete(owner, [outcome])
        if outcome.kind not in ("advanced", "retried"):
            break  # a retry due now is claimed again at once; one due later is left
    return Job.objects.db_manager(using).get(pk=pk)


def run_at_commit(
    sender: object = None, *, job_ids: list[object], using: str, **kwargs: object
) -> None:
    """Receiver of :data:`~django_dbq.signals.run_synchronously`: run each new job with
    :func:`run_job` once the current transaction commits."""
    for pk in job_ids:
        transaction.on_commit(lambda pk=pk: run_job(pk, using=using), using=using)


def run_pending_jobs(
    queues: str | Iterable[str] | None = None,
    *,
    flush_batches: bool = True,
    using: str | None = None,
    limit: int = 1_000_000,
) -> int:
    """Run every runnable job (of ``queues``, default all) until none is left.

    Batches are taken whatever their ``wait`` (``flush_batches``). Returns the
    number of job steps run. Jobs waiting for a retry in the future are left.
    """
    using = using or conf.database()
    owner = _owner()
    lease = conf.lease_seconds()
    ran = 0
    while ran < limit:
        if queues is None:
            names = Job.objects.db_manager(using).runnable().values_list("queue_name", flat=True)
            wanted = sorted(set(names))
        else:
            wanted = [queues] if isinstance(queues, str) else list(queues)
        progressed = 0
        if flush_batches:
            progressed += _run_batches(owner, wanted, lease, using)
        for job in store.claim(owner, wanted, 100, lease, using=using):
            outcome = executor.run(job, owner, executor.snapshot(job))
            if outcome.kind == "completed":
                store.complete(owner, [outcome])
            progressed += 1
        if not progressed:
            break
        ran += progressed
    return ran


def _run_batches(owner: str, queues: list[str], lease: float, using: str) -> int:
    batches = job_types.batch_types()
    ran = 0
    for name, queue, key in store.ripe_batches(batches, queues, using=using, flush=True):
        size = batches[name].size
        while batch := store.claim_batch(owner, name, queue, key, size, lease, using=using):
            outcomes = executor.run_batch(batch, owner, [executor.snapshot(j) for j in batch])
            store.complete(owner, [o for o in outcomes if o.kind == "completed"])
            ran += len(batch)
    return ran
