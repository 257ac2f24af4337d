"""Tasks of the batching benchmark (tests/benchmarks/batching.py).

Both insert one row per job into ``tests_execution``: one ``create()`` (one
INSERT) per job, or one ``bulk_create()`` per batch.
"""

import os
import time

from tests.models import Execution


def insert_one(job):
    now = time.time()
    Execution.objects.create(
        job_id=job.pk, pid=os.getpid(), thread="single", started=now, finished=now
    )


def insert_batch(jobs):
    now = time.time()
    pid = os.getpid()
    Execution.objects.bulk_create(
        [
            Execution(job_id=job.pk, pid=pid, thread="batch", started=now, finished=now)
            for job in jobs
        ]
    )
