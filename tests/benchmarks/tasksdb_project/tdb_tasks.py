"""The peer's tasks: the same three as tests/benchmarks/tasks.py."""

import os
import time

from django.tasks import task


@task
def noop():
    pass


@task
def sleep_50ms():
    time.sleep(0.05)


@task
def record_start(k):
    started = time.time()
    with open(os.environ["BENCH_PICKUP_FILE"], "a") as handle:
        handle.write(f"{k} {started!r}\n")
