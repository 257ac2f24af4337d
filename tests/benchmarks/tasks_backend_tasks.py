"""django.tasks tasks of tests/benchmarks/tasks_backend.py (both systems run the same two)."""

import os
import time

from django.tasks import task


@task
def noop():
    pass


@task
def record_start(k):
    """Append "<k> <time.time()>" to $BENCH_PICKUP_FILE: when this task started."""
    started = time.time()
    with open(os.environ["BENCH_PICKUP_FILE"], "a") as handle:
        handle.write(f"{k} {started!r}\n")
