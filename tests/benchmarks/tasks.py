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


def _record_span(line: str) -> None:
    path = os.environ.get("BENCH_SPAN_FILE")
    if path:
        with open(path, "a") as handle:  # one short append: whole lines across processes
            handle.write(line)


def limited_sleep(job):
    """Figure 12's job type with max_running 3: 50 ms of waiting; appends
    "<start> <end>" (time.time()) to $BENCH_SPAN_FILE if set."""
    started = time.time()
    time.sleep(0.05)
    _record_span(f"{started!r} {time.time()!r}\n")


def rated_noop(job):
    """Figure 12's job type with a rate of 50/s: nothing; appends "<start>" to
    $BENCH_SPAN_FILE if set."""
    _record_span(f"{time.time()!r}\n")
