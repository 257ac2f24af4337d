"""Settings of the batching benchmark: the test settings with only its own job types.

``BENCH_BATCH_JOB`` (set by tests/benchmarks/batching.py for each worker it
starts) keeps only that job type in ``JOBS``, so that a worker running single
jobs does not also look for due batches, and the other way round.
"""

import os

from tests.settings import *  # noqa: F403

BENCH_JOBS = {
    "bench_insert_single": ["tests.benchmarks.batching_tasks.insert_one"],
    "bench_insert_batch100": {
        "tasks": ["tests.benchmarks.batching_tasks.insert_batch"],
        "batch": {"size": 100, "wait": 1},
    },
    "bench_insert_batch500": {
        "tasks": ["tests.benchmarks.batching_tasks.insert_batch"],
        "batch": {"size": 500, "wait": 1},
    },
}

_only = os.environ.get("BENCH_BATCH_JOB")
JOBS = {_only: BENCH_JOBS[_only]} if _only else BENCH_JOBS
