"""django.tasks through django_dbq's backend vs django-tasks-db 0.13, on PostgreSQL.

    python tests/benchmarks/tasks_backend.py [--n 2000] [--pickups 30] [--runs 3]
        [--tdb-python PATH] [--out results.json]

Run it with the Python of django_dbq's test environment (Django 6.x). The
django-tasks-db side runs in its own environment: ``--tdb-python``, or a
virtual environment created on first use under ``~/.cache/dbq-bench/tasks-tdb``
(Django 6.1 and django-tasks-db 0.13 from the package index). The server is
``$BENCH_PG`` (default ``postgres://postgres@127.0.0.1:5432``); the databases
``bench_tasks_dbq`` and ``bench_tasks_tdb`` (plus ``$DBQ_TEST_SUFFIX``) are
created if missing and emptied before every measurement.

Figures, each the median of ``--runs`` rounds with the systems interleaved:

- enqueue: ``noop.enqueue()`` N times, each in its own transaction (tasks/s);
- drain 1 / drain 4: N queued no-op tasks run by 1 (4) burst worker
  processes, one task at a time each: tasks / (last finish - first start);
  the wall-clock rate, process start to exit, is in the JSON too;
- pickup: an idle worker; one task enqueued at a time, 0.2-0.5 s apart; the
  time from the enqueue's commit to the task's start, p50 and p95 (ms).

Systems: ``dbq`` (``manage.py worker --burst``; idle: ``worker``, woken by
LISTEN/NOTIFY), ``tdb_default`` (``db_worker --batch``, its defaults: 1 s
interval, a random start-up delay, ``CONN_MAX_AGE=0``) and ``tdb_tuned``
(``--interval 0.1 --no-startup-delay``, persistent connections).

Internally the script is also the helper both environments run
(``tasks_backend.py helper <command>``), so only the standard library is
imported at the top.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve()
PG = urlparse(os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
SUFFIX = os.environ.get("DBQ_TEST_SUFFIX", "")
TDB_VENV = Path.home() / ".cache" / "dbq-bench" / "tasks-tdb"

TDB_SETTINGS = """
import os
SECRET_KEY = "bench-not-secret"
USE_TZ = True
INSTALLED_APPS = ["django_tasks_db"]
DATABASES = {"default": {
    "ENGINE": "django.db.backends.postgresql", "NAME": os.environ["BENCH_DB_NAME"],
    "USER": os.environ["BENCH_PG_USER"], "HOST": os.environ["BENCH_PG_HOST"],
    "PORT": os.environ["BENCH_PG_PORT"],
    "CONN_MAX_AGE": None if os.environ.get("BENCH_TUNED") == "1" else 0,
}}
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING = {"version": 1, "disable_existing_loggers": False,
           "handlers": {"stderr": {"class": "logging.StreamHandler"}},
           "root": {"handlers": ["stderr"], "level": "WARNING"}}
"""


# --- the helper: runs inside either environment -------------------------------------------------


def helper(argv: list[str]) -> dict[str, Any]:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.db.models import Max, Min
    from django.utils.module_loading import import_string

    system = os.environ["BENCH_SYSTEM"]
    tasks = os.environ["BENCH_TASKS"]
    noop = import_string(f"{tasks}.noop")
    if system == "dbq":
        from django_dbq.models import Job as model

        done_filter = {"state": "COMPLETED"}
    else:
        from django_tasks_db.models import DBTaskResult as model

        done_filter = {"status": "SUCCESSFUL"}

    command = argv[0]
    if command == "migrate":
        call_command("migrate", verbosity=0)
        return {"ok": True}
    if command == "clear":
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {model._meta.db_table} CASCADE")
        return {"ok": True}
    if command == "fill":
        with transaction.atomic():
            for _ in range(int(argv[1])):
                noop.enqueue()
        return {"ok": True}
    if command == "enqueue":
        n = int(argv[1])
        noop.enqueue()  # warm up (imports, connection)
        start = time.perf_counter()
        for _ in range(n):
            noop.enqueue()
        return {"seconds": time.perf_counter() - start}
    if command == "stats":
        agg = model.objects.filter(**done_filter).aggregate(
            first=Min("started_at"), last=Max("finished_at")
        )
        done = model.objects.filter(**done_filter).count()
        window = (agg["last"] - agg["first"]).total_seconds() if done else 0.0
        return {"done": done, "total": model.objects.count(), "window": window}
    if command == "pickup":
        k_total, path = int(argv[1]), Path(argv[2])
        record_start = import_string(f"{tasks}.record_start")
        latencies = []
        for k in range(k_total):
            time.sleep(random.uniform(0.2, 0.5))
            enqueued = time.time()
            record_start.enqueue(k)  # autocommit: committed on return
            deadline = time.monotonic() + 15
            started = None
            while started is None and time.monotonic() < deadline:
                for line in path.read_text().splitlines() if path.exists() else []:
                    key, value = line.split()
                    if int(key) == k:
                        started = float(value)
                time.sleep(0.001)
            if started is None:
                raise RuntimeError(f"task {k} did not start within 15 s")
            latencies.append((started - enqueued) * 1000)
        return {"latencies_ms": latencies}
    raise SystemExit(f"unknown helper command {command!r}")


# --- the systems ----------------------------------------------------------------------------------


class System:
    def __init__(self, name: str, python: str, env: dict[str, str], cwd: Path) -> None:
        self.name, self.python, self.env, self.cwd = name, python, env, cwd

    def helper(self, *args: Any) -> dict[str, Any]:
        done = subprocess.run(
            [self.python, str(HERE), "helper", *map(str, args)],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode:
            raise RuntimeError(f"{self.name} helper {args}: {done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def worker(self, *, burst: bool, env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            self.worker_command(burst),
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def worker_command(self, burst: bool) -> list[str]:
        if self.name == "dbq":
            return [self.python, str(ROOT / "manage.py"), "worker", *(["--burst"] if burst else [])]
        options = ["--batch"] if burst else []
        if self.name == "tdb_tuned":
            options += ["--interval", "0.1", "--no-startup-delay"]
        return [self.python, "-m", "django", "db_worker", *options]


def pg_env() -> dict[str, str]:
    return {
        "BENCH_PG_USER": PG.username or "postgres",
        "BENCH_PG_HOST": PG.hostname or "127.0.0.1",
        "BENCH_PG_PORT": str(PG.port or 5432),
    }


def create_databases(names: list[str]) -> None:
    import psycopg

    dsn = f"host={PG.hostname} port={PG.port or 5432} user={PG.username} dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in names:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')


def tdb_python(given: str | None) -> str:
    if given:
        return given
    python = TDB_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {TDB_VENV} (Django 6.1, django-tasks-db 0.13)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(TDB_VENV)], check=True)
        subprocess.run(
            [
                str(TDB_VENV / "bin" / "pip"),
                "install",
                "-q",
                "django>=6.1,<6.2",
                "django-tasks-db==0.13.*",
                "psycopg[binary]",
            ],
            check=True,
        )
    return str(python)


def systems(tdb: str, tmp: Path) -> list[System]:
    (tmp / "tdb_settings.py").write_text(TDB_SETTINGS)
    (tmp / "tdb_bench_tasks.py").write_text((HERE.parent / "tasks_backend_tasks.py").read_text())
    dbq_db, tdb_db = f"bench_tasks_dbq{SUFFIX}", f"bench_tasks_tdb{SUFFIX}"
    create_databases([dbq_db, tdb_db])
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DBQ_DATA"))}
    base["PYTHONUNBUFFERED"] = "1"
    dbq_env = {
        **base,
        "DJANGO_SETTINGS_MODULE": "tests.benchmarks.tasks_backend_settings",
        "DATABASE_URL": f"postgres://{PG.username}@{PG.hostname}:{PG.port or 5432}/{dbq_db}",
        "DBQ_DATABASE_NAME": dbq_db,
        "BENCH_SYSTEM": "dbq",
        "BENCH_TASKS": "tests.benchmarks.tasks_backend_tasks",
        "PYTHONPATH": str(ROOT),
    }
    tdb_env = {
        **base,
        **pg_env(),
        "DJANGO_SETTINGS_MODULE": "tdb_settings",
        "BENCH_DB_NAME": tdb_db,
        "BENCH_SYSTEM": "tdb",
        "BENCH_TASKS": "tdb_bench_tasks",
        "PYTHONPATH": str(tmp),
    }
    return [
        System("dbq", sys.executable, dbq_env, ROOT),
        System("tdb_default", tdb, tdb_env, tmp),
        System("tdb_tuned", tdb, {**tdb_env, "BENCH_TUNED": "1"}, tmp),
    ]


# --- measurements ---------------------------------------------------------------------------------


def measure_enqueue(system: System, n: int) -> dict[str, Any]:
    system.helper("clear")
    seconds = system.helper("enqueue", n)["seconds"]
    return {"rate": n / seconds}


def measure_drain(system: System, n: int, workers: int) -> dict[str, Any]:
    system.helper("clear")
    system.helper("fill", n)
    start = time.monotonic()
    procs = [system.worker(burst=True) for _ in range(workers)]
    for proc in procs:
        _, err = proc.communicate(timeout=1800)
        if proc.returncode:
            raise RuntimeError(f"{system.name} worker exited {proc.returncode}: {err[-2000:]}")
    wall = time.monotonic() - start
    stats = system.helper("stats")
    if stats["done"] != n:
        raise RuntimeError(f"{system.name}: {stats['done']} of {n} tasks done")
    return {"rate": n / stats["window"], "wall_rate": n / wall}


def measure_pickup(system: System, k: int, tmp: Path) -> dict[str, Any]:
    system.helper("clear")
    path = tmp / f"pickup-{system.name}-{time.monotonic_ns()}.txt"
    path.touch()
    env = {"BENCH_PICKUP_FILE": str(path)}
    proc = system.worker(burst=False, env=env)
    try:
        time.sleep(3)  # start-up (and django-tasks-db's start-up delay) is not pickup
        latencies = System(system.name, system.python, {**system.env, **env}, system.cwd).helper(
            "pickup", k, path
        )["latencies_ms"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    ordered = sorted(latencies)
    return {
        "p50": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="tasks per enqueue/drain figure")
    parser.add_argument("--pickups", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tdb-python", help="Python of an environment with django-tasks-db")
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument(
        "--systems", default="dbq,tdb_default,tdb_tuned", help="a comma-separated subset"
    )
    parser.add_argument(
        "--figures", default="enqueue,drain1,drain4,pickup", help="a comma-separated subset"
    )
    args = parser.parse_args()

    import django

    tdb = tdb_python(args.tdb_python)
    tdb_versions = subprocess.run(
        [
            tdb,
            "-c",
            "import django, importlib.metadata as m; "
            "print(django.get_version(), m.version('django-tasks-db'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    with tempfile.TemporaryDirectory(prefix="dbq-tasks-bench-") as tmp_name:
        tmp = Path(tmp_name)
        wanted = args.systems.split(",")
        everyone = [s for s in systems(tdb, tmp) if s.name in wanted]
        for system in everyone:
            if system.name != "tdb_tuned":
                system.helper("migrate")
        figures: dict[str, tuple[str, Any]] = {
            "enqueue": ("enqueue (tasks/s)", lambda s: measure_enqueue(s, args.n)),
            "drain1": ("drain, 1 worker (tasks/s)", lambda s: measure_drain(s, args.n, 1)),
            "drain4": ("drain, 4 workers (tasks/s)", lambda s: measure_drain(s, args.n, 4)),
            "pickup": (
                "pickup latency p50 / p95 (ms)",
                lambda s: measure_pickup(s, args.pickups, tmp),
            ),
        }
        figures = {f: v for f, v in figures.items() if f in args.figures.split(",")}
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {f: {} for f in figures}
        for run in range(args.runs):
            for figure, (_, measure) in figures.items():
                shift = run % len(everyone)
                order = everyone[shift:] + everyone[:shift]
                for system in order:
                    if figure == "enqueue" and system.name == "tdb_tuned":
                        continue  # same enqueue code as tdb_default
                    value = measure(system)
                    runs[figure].setdefault(system.name, []).append(value)
                    print(f"run {run + 1} {figure:8} {system.name:12} {value}", flush=True)

    summary: dict[str, Any] = {}
    for figure, per_system in runs.items():
        summary[figure] = {}
        for name, values in per_system.items():
            keys = values[0].keys()
            summary[figure][name] = {k: statistics.median(v[k] for v in values) for k in keys}
    print()
    print(
        f"PostgreSQL; django_dbq on Django {django.get_version()}; django-tasks-db "
        f"{tdb_versions[1]} on Django {tdb_versions[0]}; median of {args.runs} run(s)"
    )
    names = [s.name for s in everyone]
    print(f"{'figure':34}" + "".join(f"{n:>18}" for n in names))
    for figure, (title, _) in figures.items():
        cells = []
        for name in names:
            value = summary[figure].get(name)
            if value is None:
                cells.append(f"{'(= default)':>18}")
            elif figure == "pickup":
                cells.append(f"{value['p50']:>9.1f} /{value['p95']:>6.1f}")
            else:
                cells.append(f"{value['rate']:>18.0f}")
        print(f"{title:34}" + "".join(cells))
    if args.out:
        Path(args.out).write_text(
            json.dumps({"summary": summary, "runs": runs, "n": args.n}, indent=2)
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "helper":
        print(json.dumps(helper(sys.argv[2:])))
    else:
        main()
