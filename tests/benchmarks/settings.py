"""Settings for the processes the benchmark suite starts: the test settings plus
the benchmark app (its bare model) and the benchmark job types.

The database comes from ``DATABASE_URL`` / ``DBQ_DATABASE_NAME`` as in
tests/settings.py; ``BENCH_BIG_DATABASE_NAME`` adds a second alias, ``big``,
for the table holding a million finished jobs (figure 7, PostgreSQL only).
``BENCH_LIMITED_JOBS=1`` adds the job types with limits of figures 11 and 12
(only then: a worker claims limited job types apart, which would change what
the other figures measure). ``BENCH_LISTEN_DATABASE`` sets ``DBQ_LISTEN_DATABASE``
(figure 13; empty: ``None``, the worker polls).
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.benchmarks.apps.BenchmarksConfig"]

if os.environ.get("BENCH_BIG_DATABASE_NAME"):
    DATABASES = {**DATABASES, "big": {**DATABASES["default"],
                                      "NAME": os.environ["BENCH_BIG_DATABASE_NAME"]}}

# Only the benchmark's own job types: the test suite's JOBS has batch job types (one
# with "wait": 0), which make every worker look for due batches before each claim.
JOBS = {
    "noop": ["tests.tasks.noop"],
    "bench_sleep": ["tests.benchmarks.tasks.sleep_50ms"],
    "bench_pickup": ["tests.benchmarks.tasks.record_start"],
    # Figure 10: a job type whose jobs carry a unique key made from the workspace.
    "bench_unique": {"tasks": ["tests.tasks.noop"], "unique": "k:{n}"},
}

# Figure 12 (and figure 11's "limits" case): job types with global limits. Workers
# get them with BENCH_LIMITED_JOBS=1; the suite's own process with override_settings.
BENCH_LIMITED_JOBS = {
    "bench_limited": {"tasks": ["tests.benchmarks.tasks.limited_sleep"], "max_running": 3},
    "bench_rated": {"tasks": ["tests.benchmarks.tasks.rated_noop"], "rate": "50/s"},
}
if os.environ.get("BENCH_LIMITED_JOBS"):
    JOBS = {**JOBS, **BENCH_LIMITED_JOBS}

# Figure 13: the alias of the worker's LISTEN connection; set to "" (None) the worker does
# not LISTEN and polls every --poll-interval. A django_dbq without the setting ignores it
# (the figure then sees a LISTEN in the server log and says so).
if "BENCH_LISTEN_DATABASE" in os.environ:
    DBQ_LISTEN_DATABASE = os.environ["BENCH_LISTEN_DATABASE"] or None
