"""Tasks run by the benchmark's worker processes (see settings.JOBS)."""

import os
import time


def sleep_50ms(job):
    """An I/O-bound job: 50 ms of waiting."""
    time.sleep(0.05)


def record_start(job):
    """Append "<k> <time.time()>" to $BENCH_PICKUP_FILE: when this task started."""
    started = time.time()
    with open(os.environ["BENCH_PICKUP_FILE"], "a") as handle:
        handle.write(f"{job.workspace['k']} {started!r}\n")
