"""Batch job types versus single jobs: a bulk-insert workload, on PostgreSQL.

Each job inserts one row into a table (``tests_execution``). Processed as
single jobs, that is one ``create()`` per job; as a batch job type, one
``bulk_create()`` per batch of 100 or 500 jobs. For every mode the script
enqueues ``--jobs`` jobs (default 100,000), starts one real
``manage.py worker --burst`` process, waits for it to exit, checks that every
job is COMPLETED and every row is there, and computes jobs/s from the first
claim (``min(started_at)``) to the last completion written
(``max(finished_at)``). Modes are interleaved, ``--repeats`` times (default 3);
it prints the median and min-max of each and writes everything to JSON.

Not part of the test suite (pytest collects ``test_*.py`` only). Run it on a
database of its own, which it empties between runs::

    createdb -h 127.0.0.1 -U postgres bench_batch
    DJANGO_SETTINGS_MODULE=tests.settings \\
        DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_batch python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_batch \\
        python tests/benchmarks/batching.py --out /tmp/bench_batch.json

The worker processes use ``tests.benchmarks.batching_settings`` (the test
settings with only the benchmark's job types; see ``batching_tasks.py``) and log
warnings only, so that 100,000 log lines are not part of the measurement.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = "tests.benchmarks.batching_settings"
MODES = {
    "single": ("bench_insert_single", None),
    "batch100": ("bench_insert_batch100", 100),
    "batch500": ("bench_insert_batch500", 500),
}


def setup_django() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    os.environ.pop("BENCH_BATCH_JOB", None)
    import django

    django.setup()


def reset() -> None:
    from django.db import connection

    from django_dbq.models import Job
    from tests.models import Execution

    tables = [Job._meta.db_table, Execution._meta.db_table]
    with connection.cursor() as cursor:
        # CASCADE: the test models (tests_player) have a foreign key to the job table.
        cursor.execute(
            "TRUNCATE " + ", ".join(connection.ops.quote_name(t) for t in tables) + " CASCADE"
        )


def vacuum() -> None:
    from django.db import connection

    from django_dbq.models import Job
    from tests.models import Execution

    with connection.cursor() as cursor:
        for model in (Job, Execution):
            cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def enqueue(name: str, count: int) -> float:
    from django_dbq.models import Job

    start = time.perf_counter()
    Job.objects.bulk_create_jobs({"name": name, "workspace": {"n": n}} for n in range(count))
    return time.perf_counter() - start


def run_worker(name: str, concurrency: int, log: Path) -> float:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "BENCH_BATCH_JOB": name,
        "DBQ_LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable,
        str(ROOT / "manage.py"),
        "worker",
        "--burst",
        "--concurrency",
        str(concurrency),
    ]
    start = time.perf_counter()
    with log.open("ab") as output:
        status = subprocess.run(
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, check=False
        ).returncode
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"the worker exited with status {status}; see {log}")
    return wall


def measure(count: int) -> dict:
    from django.db.models import Count, Max, Min

    from django_dbq.models import Job
    from tests.models import Execution

    states = dict(Job.objects.values_list("state").annotate(n=Count("pk")).order_by())
    rows = Execution.objects.count()
    if states != {Job.STATES.COMPLETED: count} or rows != count:
        raise SystemExit(f"unfinished run: job states {states}, {rows} rows inserted")
    span = Job.objects.aggregate(first=Min("started_at"), last=Max("finished_at"))
    seconds = (span["last"] - span["first"]).total_seconds()
    return {"seconds": seconds, "jobs_per_s": count / seconds}


def summarise(runs: list[dict]) -> dict:
    rates = [run["jobs_per_s"] for run in runs]
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def server_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0]}"
    return connection.vendor


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--out", type=Path, default=Path("bench_batch.json"))
    parser.add_argument("--log", type=Path, default=Path("bench_batch_worker.log"))
    args = parser.parse_args(argv)

    setup_django()
    from django.db import connection

    if connection.vendor != "postgresql":
        print(f"warning: this benchmark is meant for PostgreSQL, not {connection.vendor}")
    args.log.write_bytes(b"")
    commit = git_commit()
    runs: dict[str, list[dict]] = {mode: [] for mode in args.modes}
    for repeat in range(1, args.repeats + 1):
        for mode in args.modes:  # interleaved, so that drift hits every mode alike
            name, _size = MODES[mode]
            reset()
            enqueue_seconds = enqueue(name, args.jobs)
            vacuum()
            wall = run_worker(name, args.concurrency, args.log)
            result = {
                **measure(args.jobs),
                "wall_seconds": wall,
                "enqueue_seconds": enqueue_seconds,
            }
            runs[mode].append(result)
            print(
                f"run {repeat}/{args.repeats} {mode:>9}: {result['jobs_per_s']:>9,.0f} jobs/s "
                f"({result['seconds']:.1f} s; worker process {wall:.1f} s)",
                flush=True,
            )
    reset()

    report = {
        "benchmark": "batching: bulk insert, one row per job",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "database": server_version(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "jobs": args.jobs,
        "repeats": args.repeats,
        "concurrency": args.concurrency,
        "results": {
            mode: {"batch_size": MODES[mode][1], "runs": runs[mode], **summarise(runs[mode])}
            for mode in args.modes
        },
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    single = report["results"].get("single", {}).get("median")
    print()
    print(f"{args.jobs:,} jobs, {report['database']}, one worker --burst -c {args.concurrency}")
    print(f"{'mode':<16}{'jobs/s (median)':>16}{'min-max':>22}{'vs single':>11}")
    for mode, result in report["results"].items():
        label = "single jobs" if mode == "single" else f"batches of {MODES[mode][1]}"
        spread = f"{result['min']:,.0f}-{result['max']:,.0f}"
        ratio = f"{result['median'] / single:.1f}x" if single else ""
        print(f"{label:<16}{result['median']:>16,.0f}{spread:>22}{ratio:>11}")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
