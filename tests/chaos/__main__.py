"""``python -m tests.chaos``: the long form of the chaos suite, on a database of its own.

Examples::

    python -m tests.chaos --db postgres --jobs 20000 --workers 4 --concurrency 4 --kill-every 2
    python -m tests.chaos --db mariadb --jobs 20000 --fault mariadb-kill --fault-every 4
    python -m tests.chaos --db postgres --fault pg-restart --max-faults 1 --kill-every 0
    python -m tests.chaos --db sqlite --fault sqlite-lock --sqlite-busy-timeout 1
    python -m tests.chaos --db sqlite --mode shutdown --jobs 300 --task-ms 200-3000 --grace 1.5
    python -m tests.chaos --db sqlite --once --jobs 2000 --workers 3 --concurrency 2

The database (``chaos_pg``, ``chaos_my`` or a SQLite file, see ``--db-name``) is
dropped, created and migrated at the start. The summary is printed and written
as JSON (``--json``); the exit status is 1 if any checked property was violated.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

URLS = {
    "postgres": "postgres://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql://root@127.0.0.1:3306/test",
    "sqlite": "",
}
DEFAULT_NAMES = {
    "postgres": "chaos_pg",
    "mariadb": "chaos_my",
    "sqlite": "/tmp/dbq-chaos/chaos.sqlite3",
}


def _range(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    return float(low), float(high or low)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--db", choices=sorted(URLS), required=True)
    parser.add_argument("--url", help="database URL (default: the local server of --db)")
    parser.add_argument("--db-name", help="database name or SQLite path (dropped and created)")
    parser.add_argument("--mode", choices=("chaos", "shutdown"), default="chaos")
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument(
        "--once",
        action="store_true",
        help="jobs with max_attempts 1: check that only jobs whose task started fail",
    )
    parser.add_argument(
        "--limited",
        action="store_true",
        help="jobs of a type with max_running 3 (chaos_limited): the run checks that no "
        "more than 3 ever ran at once",
    )
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=2.0, help="seconds; 0: no kills")
    parser.add_argument("--max-kills", type=int)
    parser.add_argument(
        "--enqueue-over", type=float, default=0.0, help="seconds to spread the second half over"
    )
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--rescue-interval", type=float, default=0.5)
    parser.add_argument("--task-ms", type=_range, default=(0.0, 10.0), help="e.g. 0-10")
    parser.add_argument(
        "--fault", choices=("pg-terminate", "pg-restart", "mariadb-kill", "sqlite-lock")
    )
    parser.add_argument("--fault-every", type=float, default=5.0)
    parser.add_argument("--fault-first", type=float, default=2.0)
    parser.add_argument("--max-faults", type=int)
    parser.add_argument("--sqlite-lock-hold", type=float, default=5.0)
    parser.add_argument(
        "--sqlite-busy-timeout", type=float, help="the workers' DBQ_SQLITE_BUSY_TIMEOUT (s)"
    )
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--sigterm-after", type=float, default=3.0)
    parser.add_argument("--deadline", type=float, default=900.0)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp/dbq-chaos/logs"))
    parser.add_argument("--json", type=Path, help="write the summary here")
    return parser.parse_args(argv)


def prepare_database(db: str, name: str) -> None:
    """Drop and create the run's database, then migrate it (Django is set up)."""
    from django.core.management import call_command
    from django.db import connection

    if db == "sqlite":
        path = Path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        with connection._nodb_cursor() as cursor:
            quoted = connection.ops.quote_name(name)
            if db == "postgres":
                cursor.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
                cursor.execute(f"CREATE DATABASE {quoted}")
            else:
                cursor.execute(f"DROP DATABASE IF EXISTS {quoted}")
                cursor.execute(
                    f"CREATE DATABASE {quoted} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
    call_command("migrate", verbosity=0, interactive=False)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    name = args.db_name or DEFAULT_NAMES[args.db]
    url = args.url if args.url is not None else URLS[args.db]
    if url:
        os.environ["DATABASE_URL"] = url
    else:
        os.environ.pop("DATABASE_URL", None)
    os.environ["DBQ_DATABASE_NAME"] = name
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ.setdefault("DBQ_LOG_LEVEL", "INFO")
    if args.sqlite_busy_timeout is not None:
        os.environ["DBQ_SQLITE_BUSY_TIMEOUT"] = str(args.sqlite_busy_timeout)
    if args.fault and not args.fault.startswith(
        {"postgres": "pg-", "mariadb": "mariadb-", "sqlite": "sqlite-"}[args.db]
    ):
        print(f"--fault {args.fault} does not apply to --db {args.db}", file=sys.stderr)
        return 2

    import django

    django.setup()
    from tests.chaos import runner

    prepare_database(args.db, name)
    config = runner.Config(
        jobs=args.jobs,
        workers=args.workers,
        concurrency=args.concurrency,
        kill_every=args.kill_every,
        max_kills=args.max_kills,
        enqueue_over=args.enqueue_over,
        lease=args.lease,
        rescue_interval=args.rescue_interval,
        task_ms=args.task_ms,
        fault=args.fault,
        fault_every=args.fault_every,
        fault_first=args.fault_first,
        max_faults=args.max_faults,
        sqlite_lock_hold=args.sqlite_lock_hold,
        sqlite_busy_timeout=args.sqlite_busy_timeout,
        deadline=args.deadline,
        grace=args.grace,
        seed=args.seed,
        log_dir=args.log_dir / f"{args.db}-{args.mode}-{time.strftime('%Y%m%d-%H%M%S')}",
        sigterm_after=args.sigterm_after,
        job_name=(
            runner.ONCE_JOB_NAME
            if args.once
            else runner.LIMITED_JOB_NAME
            if args.limited
            else runner.JOB_NAME
        ),
    )
    print(
        f"{args.mode} run on {args.db} ({name}): jobs={args.jobs} workers={args.workers} "
        f"concurrency={args.concurrency} kill_every={args.kill_every} fault={args.fault} "
        f"logs={config.log_dir}",
        flush=True,
    )
    run = runner.run_shutdown if args.mode == "shutdown" else runner.run_chaos
    summary = run(config, progress=lambda line: print(line, flush=True))
    summary["database_name"] = name
    summary["log_dir"] = str(config.log_dir)
    print(runner.report(summary))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2, default=str) + "\n")
        print(f"summary written to {args.json}")
    return 1 if summary["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
