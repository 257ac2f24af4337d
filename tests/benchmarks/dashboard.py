"""Figure 9 of the suite: the dashboard's queries on a big job table.

Run by the suite in a subprocess on the database of figure 7 (``bench_dbq_big``)::

    DJANGO_SETTINGS_MODULE=tests.benchmarks.settings DBQ_DATABASE_NAME=bench_dbq_big \\
        DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_dbq_big \\
        python -m tests.benchmarks.dashboard --scenario day --finished 1000000 --waiting 100000

It empties the job table and fills it with SQL (untimed): ``finished`` finished
jobs (one in 20 failed) spread evenly over the last 7 days (``--scenario week``)
or all within the last 24 hours (``--scenario day``, the hard case), and
``waiting`` unfinished ones (ready and due, one in 11 scheduled for the next
hour, a few processing) across four queues. Then, on
:mod:`django_dbq.operations.stats`:

- ``first_roll_up_ms``: the first :func:`~django_dbq.operations.stats.roll_up`
  with no minute counted yet: a one-off catch-up over the last 25 hours;
- ``warm``: :func:`~django_dbq.operations.stats.snapshot` with every minute
  counted (its roll-up has nothing to do);
- ``steady``: ``snapshot()`` with the minutes of the last ~70 seconds not yet
  counted, as between two rescue passes of the workers: the normal case.

Each as the median and 95th percentile of ``--repeat`` calls, with the queries of
one snapshot (count, time of each) and whether any of them locks rows. The
result is one line of JSON on standard output.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

QUEUES = ("default", "default", "default", "default", "default",
          "emails", "emails", "reports", "reports", "webhooks")  # fmt: skip
SPANS = {"week": datetime.timedelta(days=7), "day": datetime.timedelta(hours=24)}
#: The minutes of the last this many seconds are left uncounted in the steady state.
STEADY_LAG = datetime.timedelta(seconds=70)
LOCKING = re.compile(r"\bFOR\s+(NO\s+KEY\s+)?(UPDATE|SHARE|KEY\s+SHARE)\b", re.IGNORECASE)


def fill(scenario: str, finished: int, waiting: int) -> dict[str, Any]:
    """Empty the job table and the minute counts, fill them as ``scenario`` says."""
    from django.db import connection

    from tests.benchmarks.suite import fill_sql

    queue = f"(ARRAY[{', '.join(repr(q) for q in QUEUES)}])[1 + mod(i, {len(QUEUES)})]"
    step = SPANS[scenario].total_seconds() / max(finished, 1)
    processing = min(50, waiting // 100)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE django_dbq_job, django_dbq_minute_count CASCADE")
        cursor.execute(*fill_sql(
            "default", finished, finished=True,
            when=f"now() - (i - 1) * interval '{step:.9f} seconds'",
            columns_sql={
                "queue_name": queue,
                "state": "CASE WHEN mod(i, 20) = 0 THEN 'FAILED' ELSE 'COMPLETED' END",
                "created": "t - interval '2 seconds'",
                "started_at": "t - interval '50 ms'",
            },
        ))  # fmt: skip
        cursor.execute(*fill_sql(
            "default", waiting, finished=False,
            # created over the last hour: the oldest ready job has waited an hour
            when=f"now() - (i - 1) * interval '{3600 / max(waiting, 1):.9f} seconds'",
            columns_sql={
                "queue_name": queue,
                "state": f"CASE WHEN i <= {processing} THEN 'PROCESSING' ELSE 'READY' END",
                # one in 11 scheduled (across the queues: 11 is prime to their 10)
                "run_after": f"CASE WHEN i <= {processing} THEN NULL "
                "WHEN mod(i, 11) = 1 THEN now() + mod(i, 3600) * interval '1 second' "
                "WHEN mod(i, 11) = 2 THEN t + interval '1 second' ELSE NULL END",
                "started_at": f"CASE WHEN i <= {processing} THEN now() END",
                "attempts": f"CASE WHEN i <= {processing} THEN 1 ELSE 0 END",
                "lease_owner": f"CASE WHEN i <= {processing} THEN 'bench' ELSE '' END",
                "lease_expires_at": f"CASE WHEN i <= {processing} "
                "THEN now() + interval '5 minutes' END",
            },
        ))  # fmt: skip
        cursor.execute("VACUUM ANALYZE django_dbq_job")
        cursor.execute("VACUUM ANALYZE django_dbq_minute_count")
        cursor.execute("SELECT state, count(*) FROM django_dbq_job GROUP BY state ORDER BY state")
        states = dict(cursor.fetchall())
    return {"fill_seconds": time.perf_counter() - started, "states": states}


class Recorder:
    """An execute wrapper: the statements run through it, each with its time in ms."""

    def __init__(self) -> None:
        self.queries: list[tuple[str, Any, float]] = []

    def __call__(self, execute: Callable, sql: str, params: Any, many: bool, context: Any):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries.append((sql, params, (time.perf_counter() - started) * 1000))


def timed(call: Callable[[], Any]) -> tuple[float, Recorder]:
    """Milliseconds of one ``call()``, and its queries."""
    from django.db import connection

    recorder = Recorder()
    with connection.execute_wrapper(recorder):
        started = time.perf_counter()
        call()
        elapsed = (time.perf_counter() - started) * 1000
    return elapsed, recorder


def series(name: str, repeat: int, before: Callable[[], Any]) -> dict[str, Any]:
    """``repeat`` snapshots, each after ``before()`` (untimed)."""
    from django_dbq.operations import stats

    times, recorders = [], []
    for _ in range(repeat):
        before()
        elapsed, recorder = timed(stats.snapshot)
        times.append(elapsed)
        recorders.append(recorder)
    counts = [len(r.queries) for r in recorders]
    locking = sorted({sql for r in recorders for sql, _, _ in r.queries if LOCKING.search(sql)})
    # The queries of the snapshot nearest the median, slowest first.
    typical = recorders[sorted(range(repeat), key=times.__getitem__)[repeat // 2]]
    queries = sorted(
        ({"ms": round(ms, 2), "sql": sql[:300]} for sql, _, ms in typical.queries),
        key=lambda q: -q["ms"],
    )
    return {
        "name": name,
        "median_ms": statistics.median(times),
        "p95_ms": percentile(times, 0.95),
        "min_ms": min(times),
        "max_ms": max(times),
        "times_ms": times,
        "queries": max(counts),
        "queries_min": min(counts),
        "query_ms_total": sum(ms for _, _, ms in typical.queries),
        "locks_rows": bool(locking),
        "locking_sql": locking,
        "slowest_queries": queries[:5],
        "_typical": typical,
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def explain(recorder: Recorder) -> dict[str, Any] | None:
    """EXPLAIN ANALYZE of the slowest SELECT a snapshot ran (PostgreSQL)."""
    from django.db import connection

    selects = [q for q in recorder.queries if q[0].lstrip().upper().startswith("SELECT")]
    if not selects or connection.vendor != "postgresql":
        return None
    sql, params, ms = max(selects, key=lambda q: q[2])
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        plan = [row[0] for row in cursor.fetchall()]
    return {"ms": ms, "sql": sql, "plan": plan}


def measure(scenario: str, finished: int, waiting: int, repeat: int) -> dict[str, Any]:
    from django.db import connection
    from django.utils import timezone

    from django_dbq.operations import stats
    from django_dbq.records import MinuteCount

    out: dict[str, Any] = {"scenario": scenario, "finished": finished, "waiting": waiting,
                           "repeat": repeat, **fill(scenario, finished, waiting)}  # fmt: skip

    # 1. the first roll-up: nothing counted yet, 25 hours to catch up
    MinuteCount.objects.all().delete()
    ms, recorder = timed(stats.roll_up)
    out["first_roll_up_ms"] = ms
    out["first_roll_up_queries"] = len(recorder.queries)
    out["minute_counts"] = MinuteCount.objects.count()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE django_dbq_minute_count")

    # 2. every minute counted: snapshot()'s roll-up has nothing to do
    warm = series("warm", repeat, lambda: None)

    # 3. the steady state: the minutes of the last ~70 seconds not counted yet
    def forget_recent() -> None:
        cutoff = timezone.now() - STEADY_LAG
        MinuteCount.objects.filter(minute__gte=cutoff.replace(second=0, microsecond=0)).delete()

    steady = series("steady", repeat, forget_recent)
    out["explain_steady"] = explain(steady["_typical"])
    for item in (warm, steady):
        del item["_typical"]
        out[item.pop("name")] = item
    out["locks_rows"] = warm["locks_rows"] or steady["locks_rows"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=sorted(SPANS), default="day")
    parser.add_argument("--finished", type=int, default=1_000_000)
    parser.add_argument("--waiting", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    import django

    django.setup()
    result = measure(args.scenario, args.finished, args.waiting, args.repeat)
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
