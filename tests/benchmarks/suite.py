"""The benchmark suite: django_dbq and its peers, measured side by side in one run.

    python -m tests.benchmarks --db postgres --out results.json
    python -m tests.benchmarks --db sqlite --out results-sqlite.json
    python -m tests.benchmarks --db postgres --quick            # a smoke run
    python -m tests.benchmarks --db postgres --only figure1,figure4 --systems dbq

Every figure is measured ``runs`` times (3; 1 with ``--quick``) with the systems
interleaved inside each round, and reported as the median with min-max.

Systems (columns):

- ``dbq``: django_dbq, ``manage.py worker`` as real processes, settings
  ``tests.benchmarks.settings``, database ``bench_dbq``.
- ``tdb_default`` / ``tdb_tuned``: django-tasks-db 0.13 in its own virtual
  environment (Python 3.12, Django 6.0) under ``~/.cache/dbq-bench/venvs``,
  created on first use; the project is ``tests/benchmarks/tasksdb_project``;
  database ``bench_tasksdb``. Tuned = ``--interval 0.1 --no-startup-delay`` and
  persistent connections (``CONN_MAX_AGE=None``).
- ``raw1`` / ``raw100``: a bare psycopg loop (``tests/benchmarks/rawq.py``)
  claiming 1 or 100 jobs per statement; database ``bench_raw``. PostgreSQL only.

Figure 9 (PostgreSQL only, ``dbq`` only) times the dashboard's queries
(``django_dbq.operations.stats``) in a subprocess, ``tests/benchmarks/dashboard.py``,
on figure 7's database ``bench_dbq_big`` refilled with recent finished jobs.

Figures 10 to 12 (``dbq`` only; in ``tests/benchmarks/features.py``) measure what
features cost: enqueueing with a unique key against without (PostgreSQL and
SQLite), an idle worker's transactions per second read from ``pg_stat_database``
(without and with its scheduler thread, with a schedule, with limited job types),
and job types with limits: ``max_running`` 3 and a rate of 50/s drained by 4
worker processes against their ideal rates, and the statements of one claim of a
limited group against a plain claim.

Figures 13 and 14 (PostgreSQL, ``dbq`` only; in ``tests/benchmarks/scale.py``)
measure scaling out: what one idle worker sends with LISTEN and with polling,
counted from the server's own statement log, and drains by 4, 16 and 32 worker
processes with the lock waits, deadlocks, rescue passes and claim statements seen
meanwhile. ``--pg`` points the suite at another server (32 processes need about 160
connections), ``--db-prefix`` renames its databases (``bench_dbq`` ->
``<prefix>_dbq``) so that two runs on one server do not collide.

Drain rates are N / (last ``finished_at`` - first ``started_at``) read from the
table after the burst workers exited and every job was verified done: process
start-up is not counted, everything between the first claim and the last
completion is. The wall-clock rate (process start to exit) is in the JSON too.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tests.benchmarks.features import (
    FEATURE_FIGURES,
    FEATURE_KEYS,
    FeatureFigures,
    feature_cell,
    feature_targets,
)
from tests.benchmarks.scale import (
    SCALE_FIGURES,
    SCALE_KEYS,
    ScaleFigures,
    scale_cell,
    scale_details,
)

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TDB_PROJECT = HERE / "tasksdb_project"
CACHE = Path(os.environ.get("DBQ_BENCH_CACHE") or Path.home() / ".cache" / "dbq-bench")
TDB_VENV = CACHE / "venvs" / "tasksdb-0.13"
TDB_REQUIREMENTS = ["django-tasks-db==0.13.*", "Django>=6.0,<6.1", "psycopg[binary]>=3.1.8"]
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
PG_DATABASES = {
    "dbq": "bench_dbq", "big": "bench_dbq_big", "tdb": "bench_tasksdb", "raw": "bench_raw",
}
OLD = "2001-01-01"  # figure 7's finished filler rows are created before this date
OLD_DT = datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc)

FIGURES = {
    "figure1": "drain no-op jobs, 1 worker process (jobs/s)",
    "figure2": "drain no-op jobs, {P} worker processes (jobs/s)",
    "figure3": "50 ms I/O jobs, 4 processes with threads (jobs/s, % of ideal)",
    "figure4": "pickup latency of an idle worker, p50 / p95 (ms)",
    "figure5": "enqueue, one create() per transaction (jobs/s)",
    "figure6": "enqueue, bulk API: bulk_enqueue() (jobs/s)",
    "figure7": "drain with 1M finished + 100k ready vs empty table (jobs/s)",
    "figure8": "worker memory: RSS at start -> after N jobs (MB)",
    "figure9": "dashboard figures with 1M finished + 100k waiting (ms)",
    **FEATURE_FIGURES,
    **SCALE_FIGURES,
}
#: Figure 9's scenarios: the finished jobs spread over the last 7 days, or all of
#: them within the last 24 hours (the hard case: the charts cover 24 hours).
DASHBOARD_SCENARIOS = ("week", "day")
DASHBOARD_KEYS = ("snapshot_ms", "snapshot_p95_ms", "queries", *(
    f"{scenario}_{key}" for scenario in DASHBOARD_SCENARIOS for key in (
        "first_roll_up_ms", "warm_median_ms", "warm_p95_ms", "steady_median_ms",
        "steady_p95_ms", "queries")))
SQLITE_FIGURES = ("figure1", "figure2", "figure5", "figure6", "figure10")
SYSTEMS = ("dbq", "tdb_default", "tdb_tuned", "raw1", "raw100")
COLUMNS = {
    "dbq": "django_dbq", "tdb_default": "tasks-db default", "tdb_tuned": "tasks-db tuned",
    "raw1": "raw 1/claim", "raw100": "raw 100/claim",
}

SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "runs": 3,
        "drain": {"dbq": 20_000, "tdb_default": 600, "tdb_tuned": 1_200,
                  "raw1": 5_000, "raw100": 100_000},
        "drain_multi": {"dbq": 40_000, "tdb_default": 1_000, "tdb_tuned": 2_000,
                        "raw1": 8_000, "raw100": 200_000},
        "io": {"dbq": 20_000, "tdb_default": 400, "tdb_tuned": 400, "raw1": 400},
        "io_concurrency": 25,
        "pickup": {"dbq": 200, "tdb_default": 50, "tdb_tuned": 100},
        "enqueue": 2_000,
        "bulk": {"dbq": 50_000, "raw1": 200_000},
        "big_finished": 1_000_000, "big_ready": 100_000, "big_window": 8.0,
        "rss_jobs": 100_000,
        # figures 10 to 12 (figure 10's create() part has "enqueue" jobs)
        "unique_bulk": 10_000,
        "idle_window": 30, "idle_settle": 8, "schedule_every": 60,
        "limited_jobs": 1_200, "rated_jobs": 1_000, "claim_samples": 50,
        # figures 13 and 14
        "scale_idle_window": 60, "scale_idle_settle": 12, "scale_poll_interval": 1.0,
        "scale_jobs": 150_000, "scale_processes": [4, 16, 32],
    },
    "quick": {
        "runs": 1,
        "drain": {"dbq": 2_000, "tdb_default": 200, "tdb_tuned": 300,
                  "raw1": 1_000, "raw100": 10_000},
        "drain_multi": {"dbq": 4_000, "tdb_default": 200, "tdb_tuned": 300,
                        "raw1": 1_000, "raw100": 10_000},
        "io": {"dbq": 1_000, "tdb_default": 40, "tdb_tuned": 40, "raw1": 40},
        "io_concurrency": 25,
        "pickup": {"dbq": 20, "tdb_default": 5, "tdb_tuned": 10},
        "enqueue": 200,
        "bulk": {"dbq": 5_000, "raw1": 20_000},
        "big_finished": 50_000, "big_ready": 10_000, "big_window": 2.0,
        "rss_jobs": 5_000,
        "unique_bulk": 1_000,
        "idle_window": 8, "idle_settle": 3, "schedule_every": 10,
        "limited_jobs": 150, "rated_jobs": 150, "claim_samples": 20,
        "scale_idle_window": 10, "scale_idle_settle": 4, "scale_poll_interval": 1.0,
        "scale_jobs": 10_000, "scale_processes": [4, 8],
    },
}


# --- small helpers ------------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, Any]:
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "runs": []}
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": values}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Proc:
    """A process the suite started, its output in a log file."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str], cwd: Path = ROOT):
        self.log = log
        self._handle = log.open("wb")
        self.started = time.time()
        self.popen = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=self._handle, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.popen.pid

    def wait(self, timeout: float) -> int | None:
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        finally:
            self.ended = time.time()
        self._handle.close()
        return code

    def stop(self, timeout: float = 30) -> int | None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=30)
        self._handle.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def rss(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) of the process in MB."""
        values = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
        return values["VmRSS"], values["VmHWM"]


def scan_logs(procs: list[Proc]) -> dict[str, int]:
    """Counts of what must never surface in worker output."""
    found = {"database is locked": 0, "Traceback": 0}
    for proc in procs:
        text = proc.output()
        for needle in found:
            found[needle] += text.count(needle)
    return found


# --- the suite ------------------------------------------------------------------------------


def configure_server(url: str, prefix: str) -> None:
    """Point the suite at the PostgreSQL server ``url`` and name its databases
    ``<prefix>_dbq``, ... (``PG`` and ``PG_DATABASES`` are changed in place: the
    figures' modules read them from here)."""
    parsed = urlparse(url)
    PG.update(host=parsed.hostname or "127.0.0.1", port=parsed.port or 5432,
              user=parsed.username or "postgres")
    for key, name in PG_DATABASES.items():
        PG_DATABASES[key] = prefix + name.removeprefix("bench")


class Suite(FeatureFigures, ScaleFigures):
    def __init__(self, args: argparse.Namespace) -> None:
        configure_server(args.pg, args.db_prefix)
        self.db: str = args.db
        self.pg_log: str | None = args.pg_log
        self.pg = self.db == "postgres"
        self.sizes = SIZES["quick" if args.quick else "full"]
        self.runs = args.runs or self.sizes["runs"]
        self.quick = args.quick
        self.workdir = Path(tempfile.mkdtemp(prefix=f"dbq-bench-{self.db}-"))
        self.keep = args.keep
        self.py_spy = Path(args.py_spy).resolve() if args.py_spy else None
        wanted = args.only.split(",") if args.only else list(FIGURES)
        allowed = list(FIGURES) if self.pg else list(SQLITE_FIGURES)
        self.figures = [f for f in wanted if f in allowed]
        systems = args.systems.split(",") if args.systems else list(SYSTEMS)
        if not self.pg:
            systems = [s for s in systems if not s.startswith("raw")]
        self.systems = systems
        self.multi = 4 if self.pg else 2
        self.results: dict[str, Any] = {}
        self.notes: list[str] = []
        self.counter = 0
        self.env = dict(os.environ)
        self.tdb_python: Path | None = None
        self.after_commit: list[float] = []

    # --- set-up --------------------------------------------------------------------------

    def setup(self) -> None:
        env = self.env
        env["DJANGO_SETTINGS_MODULE"] = "tests.benchmarks.settings"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        if self.pg:
            self._create_pg_databases()
            env["DATABASE_URL"] = self.pg_url(PG_DATABASES["dbq"])
            env["DBQ_DATABASE_NAME"] = PG_DATABASES["dbq"]
            if {"figure7", "figure9"} & set(self.figures):
                env["BENCH_BIG_DATABASE_NAME"] = PG_DATABASES["big"]
        else:
            env.pop("DATABASE_URL", None)
            env["DBQ_DATABASE_NAME"] = str(self.workdir / "bench_dbq.sqlite3")
        os.environ.clear()
        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections

        call_command("migrate", verbosity=0)
        if "big" in connections:
            call_command("migrate", database="big", verbosity=0)
        from tests.benchmarks.models import BareJob

        with connections["default"].schema_editor() as editor:
            editor.create_model(BareJob)
        if any(s.startswith("tdb") for s in self.systems):
            self._setup_tdb()
        if self.pg and any(s.startswith("raw") for s in self.systems):
            from tests.benchmarks import rawq

            rawq.create_schema(self.raw_dsn)

    def pg_url(self, name: str) -> str:
        return f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{name}"

    @property
    def raw_dsn(self) -> str:
        return f"host={PG['host']} port={PG['port']} user={PG['user']} dbname={PG_DATABASES['raw']}"

    def _create_pg_databases(self) -> None:
        import psycopg

        dsn = f"host={PG['host']} port={PG['port']} user={PG['user']} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            for name in PG_DATABASES.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{name}"')

    def _setup_tdb(self) -> None:
        python = TDB_VENV / "bin" / "python"
        if not python.exists():
            base = find_python312()
            say(f"creating the django-tasks-db virtual environment in {TDB_VENV} ({base})")
            subprocess.run([str(base), "-m", "venv", str(TDB_VENV)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", *TDB_REQUIREMENTS],
                           check=True)
        self.tdb_python = python
        if not self.pg:
            self.env_tdb_db = str(self.workdir / "bench_tasksdb.sqlite3")
        else:
            self.env_tdb_db = PG_DATABASES["tdb"]
        self.tdb("migrate")

    # --- django-tasks-db -----------------------------------------------------------------

    def tdb_env(self, tuned: bool = False, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in self.env.items()
               if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "PYTHONPATH")}
        env.update(BENCH_DB=self.db, BENCH_DB_NAME=self.env_tdb_db,
                   BENCH_TUNED="1" if tuned else "0", DJANGO_SETTINGS_MODULE="tdb_settings",
                   BENCH_PG_HOST=PG["host"], BENCH_PG_PORT=str(PG["port"]))
        env.update(extra)
        return env

    def tdb(self, *args: str, tuned: bool = False) -> dict[str, Any]:
        out = subprocess.run(
            [str(self.tdb_python), "tdb_helper.py", *args], cwd=TDB_PROJECT,
            env=self.tdb_env(tuned), capture_output=True, text=True, timeout=1800,
        )
        if out.returncode:
            raise RuntimeError(f"tdb_helper {args} failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def tdb_worker(self, tuned: bool, *, burst: bool, **env: str) -> Proc:
        argv = [str(self.tdb_python), "manage.py", "db_worker", "--no-reload"]
        if burst:
            argv.append("--batch")
        if tuned:
            argv += ["--interval", "0.1", "--no-startup-delay"]
        return Proc(argv, self.log_path("tdb"), self.tdb_env(tuned, **env), cwd=TDB_PROJECT)

    # --- django_dbq ---------------------------------------------------------------------------

    def log_path(self, name: str) -> Path:
        self.counter += 1
        return self.workdir / f"{self.counter:04d}-{name}.log"

    def dbq_worker(self, *args: str, env: dict[str, str] | None = None,
                   profile: str | None = None) -> Proc:
        argv = [sys.executable, str(ROOT / "manage.py"), "worker", *args]
        if profile and self.py_spy:
            self.py_spy.mkdir(parents=True, exist_ok=True)
            spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            argv = [spy, "record", "--rate", "250", "--format", "raw", "--threads",
                    "--nonblocking", "-o", str(self.py_spy / f"{profile}.txt"), "--", *argv]
        return Proc(argv, self.log_path("dbq"), {**self.env, **(env or {})})

    def dbq_clear(self, using: str = "default") -> None:
        from django.db import connections

        connection = connections[using]
        with connection.cursor() as cursor:
            tables = ["django_dbq_job"] + (["dbq_bench_barejob"] if using == "default" else [])
            if connection.vendor == "postgresql":
                cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
            else:
                for table in tables:
                    cursor.execute(f"DELETE FROM {table}")

    def dbq_analyze(self, using: str = "default", vacuum: bool = False) -> None:
        from django.db import connections

        connection = connections[using]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(("VACUUM " if vacuum else "") + "ANALYZE django_dbq_job")

    def dbq_stats(self, using: str = "default") -> dict[str, Any]:
        from django.db.models import Count, Max, Min

        from django_dbq.models import Job

        counts = dict(Job.objects.using(using).order_by().values_list("state")
                      .annotate(n=Count("pk")))
        agg = Job.objects.using(using).aggregate(first=Min("started_at"), last=Max("finished_at"))
        finished = sorted(t.timestamp() for t in Job.objects.using(using).exclude(
            finished_at=None).values_list("finished_at", flat=True).iterator())
        # Each claim statement stamps its jobs with one started_at, each completion
        # statement with one finished_at: counting distinct values counts statements.
        statements = Job.objects.using(using).aggregate(
            claims=Count("started_at", distinct=True),
            completion_writes=Count("finished_at", distinct=True))
        return {"counts": counts,
                "first_start": agg["first"].timestamp() if agg["first"] else None,
                "last_finish": agg["last"].timestamp() if agg["last"] else None,
                **statements, **steady(finished)}

    def dbq_fill(self, n: int, name: str = "noop") -> None:
        from django_dbq.models import Job

        Job.objects.bulk_create_jobs([{"name": name} for _ in range(n)])
        self.dbq_analyze()

    # --- one drain of each system ------------------------------------------------------------

    def drain(self, system: str, n: int, processes: int, *, job: str = "noop",
              concurrency: int = 1, sleep: float = 0.0, profile: str | None = None,
              env: dict[str, str] | None = None,
              watch: contextlib.AbstractContextManager[Any] | None = None) -> dict[str, Any]:
        """Fill ``n`` jobs, run burst workers until they exit, verify, return the rates.

        ``watch`` (django_dbq only) is entered after the fill, just before the workers
        start, and left once they all exited (figure 14 samples the server meanwhile)."""
        timeout = max(180.0, n / 50)
        procs: list[Proc] = []
        watching = contextlib.ExitStack()
        if system in ("dbq", "dbq_quiet"):
            self.dbq_clear()
            self.dbq_fill(n, job)
            args = ["--burst", "--concurrency", str(concurrency)]
            if system == "dbq_quiet":  # without the two INFO log lines per job
                args += ["--verbosity", "0"]
            if processes > 1:
                args += ["--processes", str(processes)]
            if watch is not None:
                watching.enter_context(watch)
            procs = [self.dbq_worker(*args, profile=profile, env=env)]
        elif system.startswith("tdb"):
            tuned = system == "tdb_tuned"
            self.tdb("clear")
            self.tdb("fill", str(n), "sleep_50ms" if sleep else "noop")
            procs = [self.tdb_worker(tuned, burst=True) for _ in range(processes)]
        else:
            from tests.benchmarks import rawq

            rawq.clear(self.raw_dsn)
            rawq.fill(self.raw_dsn, n)
            argv = [sys.executable, "-m", "tests.benchmarks.rawq", "worker", "--dsn",
                    self.raw_dsn, "--batch", "100" if system == "raw100" else "1",
                    "--sleep", str(sleep)]
            procs = [Proc(argv, self.log_path("raw"), self.env) for _ in range(processes)]
        with watching:
            started = min(p.started for p in procs)
            codes = [p.wait(timeout) for p in procs]
            wall = max(p.ended for p in procs) - started
        if system in ("dbq", "dbq_quiet"):
            st = self.dbq_stats()
            done = st["counts"].get("COMPLETED", 0)
        elif system.startswith("tdb"):
            st = self.tdb("stats")
            done = st["counts"].get("SUCCESSFUL", 0)
        else:
            from tests.benchmarks import rawq

            st = rawq.stats(self.raw_dsn)
            done = st["done"]
        logs = scan_logs(procs)
        result: dict[str, Any] = {"n": n, "done": done, "exit_codes": codes, "wall": wall,
                                  "wall_rate": n / wall, "log": logs}
        if done != n or any(c != 0 for c in codes) or not st["first_start"]:
            result["error"] = (f"{system}: {done} of {n} jobs done, exit codes {codes}; "
                               f"log {procs[0].log}:\n{procs[0].output()[-1500:]}")
            result["rate"] = None
            say(result["error"])
            return result
        span = st["last_finish"] - st["first_start"]
        result.update(span=span, rate=n / span, steady_rate=st.get("steady_rate"))
        if st.get("claims"):
            result.update(claims=st["claims"], jobs_per_claim=n / st["claims"],
                          completion_writes=st["completion_writes"],
                          jobs_per_completion_write=n / st["completion_writes"])
        return result

    # --- figures -------------------------------------------------------------------------------

    def rounds(self, figure: str, measure: Callable[[str, int], dict[str, Any]],
               systems: list[str]) -> None:
        """Run ``measure(system, run)`` for every system, interleaved, ``runs`` times."""
        systems = [s for s in systems if s in self.systems or (
            s == "dbq_quiet" and "dbq" in self.systems)]
        data: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
        for run in range(self.runs):
            for system in systems:
                t = time.monotonic()
                load = os.getloadavg()[0]
                try:
                    data[system].append({**measure(system, run), "loadavg_1min": load})
                except Exception as exc:  # one failing peer must not sink the suite
                    data[system].append({"error": f"{type(exc).__name__}: {exc}"})
                    say(f"{figure} {system} run {run + 1}: FAILED {exc}")
                    continue
                say(f"{figure} {system} run {run + 1}/{self.runs}: "
                    f"{brief(data[system][-1])} ({time.monotonic() - t:.1f}s)")
        self.results[figure] = {"title": self.title(figure), "systems": {
            s: {"runs": runs, **aggregate(runs)} for s, runs in data.items()
        }}

    def title(self, figure: str) -> str:
        return FIGURES[figure].replace("{P}", str(self.multi))

    def figure1(self) -> None:
        sizes = self.sizes["drain"]
        self.rounds("figure1", lambda s, r: self.drain(
            s, sizes[s.replace("_quiet", "")], 1,
            profile=f"figure1-dbq-run{r + 1}" if s == "dbq" else None),
            ["dbq", "dbq_quiet", *SYSTEMS[1:]])

    def figure2(self) -> None:
        sizes = self.sizes["drain_multi"]
        self.rounds("figure2", lambda s, r: self.drain(
            s, sizes[s.replace("_quiet", "")], self.multi), ["dbq", "dbq_quiet", *SYSTEMS[1:]])

    def figure3(self) -> None:
        sizes = self.sizes["io"]
        conc = self.sizes["io_concurrency"]

        def measure(system: str, run: int) -> dict[str, Any]:
            if system == "dbq":
                result = self.drain("dbq", sizes[system], 4, job="bench_sleep", concurrency=conc)
                ideal = 4 * conc / 0.05
            else:
                result = self.drain(system, sizes[system], 4, sleep=0.05)
                ideal = 4 / 0.05
            result["ideal"] = ideal
            result["concurrency"] = ideal * 0.05
            result["percent_of_ideal"] = (
                100 * result["rate"] / ideal if result.get("rate") else None)
            result["steady_percent_of_ideal"] = (
                100 * result["steady_rate"] / ideal if result.get("steady_rate") else None)
            return result

        self.rounds("figure3", measure, ["dbq", "tdb_default", "tdb_tuned", "raw1"])

    def figure4(self) -> None:
        sizes = self.sizes["pickup"]

        def measure(system: str, run: int) -> dict[str, Any]:
            path = self.workdir / f"pickup-{system}-{run}.txt"
            path.write_text("")
            if system == "dbq":
                self.dbq_clear()
                proc = self.dbq_worker(env={"BENCH_PICKUP_FILE": str(path)})
                try:
                    wait_for_text(proc, "Listening for new jobs" if self.pg else "starting", 60)
                    time.sleep(0.5)
                    self.after_commit = []
                    latencies = self.dbq_pickup(sizes["dbq"], path)
                    extra = {"p50_from_commit": percentile(self.after_commit, 0.5) * 1000,
                             "p95_from_commit": percentile(self.after_commit, 0.95) * 1000}
                finally:
                    proc.stop()
            elif system == "raw1":
                import psycopg

                from tests.benchmarks import rawq

                rawq.clear(self.raw_dsn)
                proc = Proc([sys.executable, "-m", "tests.benchmarks.rawq", "listen", "--dsn",
                             self.raw_dsn, "--file", str(path)], self.log_path("raw"), self.env)
                try:
                    time.sleep(1.0)
                    self.after_commit = []
                    with psycopg.connect(self.raw_dsn, autocommit=True) as conn:
                        latencies = self.pickup(sizes["dbq"], path,
                                                lambda k: rawq.enqueue_notify(conn, k))
                    extra = {"p50_from_commit": percentile(self.after_commit, 0.5) * 1000,
                             "p95_from_commit": percentile(self.after_commit, 0.95) * 1000}
                finally:
                    proc.stop()
            else:
                tuned = system == "tdb_tuned"
                self.tdb("clear")
                proc = self.tdb_worker(tuned, burst=False, BENCH_PICKUP_FILE=str(path))
                try:
                    time.sleep(2.0)  # past the default random start-up delay (up to 1 s)
                    latencies = self.tdb("pickup", str(sizes[system]), str(path))["latencies"]
                    extra = {}
                finally:
                    proc.stop()
            ms = [x * 1000 for x in latencies]
            return {"samples": len(ms), "p50": percentile(ms, 0.5), "p95": percentile(ms, 0.95),
                    "max": max(ms), "log": scan_logs([proc]), **extra}

        self.rounds("figure4", measure, ["dbq", "tdb_default", "tdb_tuned", "raw1"])

    def dbq_pickup(self, n: int, path: Path) -> list[float]:
        from django_dbq.models import Job

        return self.pickup(n, path, lambda k: Job.objects.create(
            name="bench_pickup", workspace={"k": k}))

    def pickup(self, n: int, path: Path, enqueue: Callable[[int], Any]) -> list[float]:
        """Enqueue ``n`` jobs one at a time with ``enqueue(k)``; wait for each to start."""
        latencies = []
        buffer = b""
        with path.open("rb") as handle:
            for k in range(n):
                sent = time.time()
                enqueue(k)
                committed = time.time()
                deadline = time.monotonic() + 30
                started = None
                while started is None:
                    buffer += handle.read()
                    while started is None and b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        key, value = line.split()
                        if int(key) == k:
                            started = float(value)
                    if started is None:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"pickup job {k} did not start within 30 s")
                        time.sleep(0.0005)
                latencies.append(started - sent)
                self.after_commit.append(started - committed)
                time.sleep(random.uniform(0.05, 0.1))  # let the worker go idle again
        return latencies

    def figure5(self) -> None:
        n = self.sizes["enqueue"]

        def measure(system: str, run: int) -> dict[str, Any]:
            if system == "dbq":
                return self.dbq_enqueue(n, run)
            if system.startswith("tdb"):
                self.tdb("clear")
                seconds = self.tdb("enqueue", str(n))["seconds"]
                return {"n": n, "rate": n / seconds}
            from tests.benchmarks import rawq

            rawq.clear(self.raw_dsn)
            return {"n": n, "rate": n / rawq.enqueue_single(self.raw_dsn, n)}

        # django-tasks-db's enqueue() is the same code whatever the worker's tuning (the
        # connection settings only act at the end of a request): measured once.
        self.rounds("figure5", measure, ["dbq", "tdb_default", "raw1"])

    def dbq_enqueue(self, n: int, run: int) -> dict[str, Any]:
        """``n`` Job creates and ``n`` bare creates, alternating one by one.

        Alternating each create (rather than timing two blocks) keeps the load of a
        busy machine from favouring one side. Also times the first create on a new
        connection (``CONN_MAX_AGE = 0``, Django's default, opens one per request),
        where the NOTIFY trigger's PL/pgSQL function is compiled.
        """
        from django.db import connection

        from django_dbq.models import Job
        from tests.benchmarks.models import BareJob

        self.dbq_clear()
        clock = time.perf_counter
        job_time = bare_time = 0.0
        for i in range(n):
            pair = ("job", "bare") if i % 2 == 0 else ("bare", "job")
            for which in pair:
                start = clock()
                if which == "job":
                    Job.objects.create(name="noop")
                    job_time += clock() - start
                else:
                    BareJob.objects.create(name="noop", next_task="tests.tasks.noop")
                    bare_time += clock() - start
        first: dict[str, list[float]] = {"job": [], "bare": []}
        for i in range(10):
            for which in (("job", "bare") if i % 2 == 0 else ("bare", "job")):
                connection.close()
                connection.ensure_connection()
                start = clock()
                if which == "job":
                    Job.objects.create(name="noop")
                else:
                    BareJob.objects.create(name="noop", next_task="tests.tasks.noop")
                first[which].append((clock() - start) * 1000)
        rate, bare_rate = n / job_time, n / bare_time
        return {"n": n, "rate": rate, "bare_rate": bare_rate, "ratio": rate / bare_rate,
                "first_create_ms": statistics.median(first["job"]),
                "first_bare_create_ms": statistics.median(first["bare"])}

    def figure6(self) -> None:
        sizes = self.sizes["bulk"]

        def measure(system: str, run: int) -> dict[str, Any]:
            n = sizes[system]
            if system == "dbq":
                from django.db import transaction

                from django_dbq.models import Job
                from tests.benchmarks.models import BareJob

                self.dbq_clear()
                start = time.perf_counter()
                Job.objects.bulk_enqueue("noop", [{} for _ in range(n)])
                rate = n / (time.perf_counter() - start)
                # The same jobs as Job instances (bulk_create_jobs), and the same rows
                # through Django's own bulk_create() (batches of 1,000 in one
                # transaction), for reference.
                self.dbq_clear()
                start = time.perf_counter()
                Job.objects.bulk_create_jobs([{"name": "noop"} for _ in range(n)])
                instances = n / (time.perf_counter() - start)
                start = time.perf_counter()
                with transaction.atomic():
                    BareJob.objects.bulk_create(
                        [BareJob(name="noop", next_task="tests.tasks.noop") for _ in range(n)],
                        batch_size=1000)
                bare = n / (time.perf_counter() - start)
                return {"n": n, "rate": rate, "instances_rate": instances, "bare_rate": bare,
                        "ratio": rate / bare}
            from tests.benchmarks import rawq

            rawq.clear(self.raw_dsn)
            return {"n": n, "rate": n / rawq.enqueue_copy(self.raw_dsn, n), "how": "COPY"}

        self.rounds("figure6", measure, ["dbq", "raw1"])

    def figure7(self) -> None:
        from django.db import connections

        finished, ready = self.sizes["big_finished"], self.sizes["big_ready"]
        window = self.sizes["big_window"]
        say(f"figure7: filling {finished:,} finished jobs into {PG_DATABASES['big']}")
        self.dbq_clear("big")
        with connections["big"].cursor() as cursor:
            cursor.execute(*fill_sql("big", finished, finished=True))
        self.dbq_analyze("big", vacuum=True)

        def measure(system: str, run: int) -> dict[str, Any]:
            out = {}
            for label, alias in (("empty", "default"), ("big", "big")):
                out[label] = self.window_rate(alias, ready, window)
            out["rate"] = out["big"]["rate"]
            out["empty_rate"] = out["empty"]["rate"]
            out["ratio"] = out["rate"] / out["empty_rate"]
            return out

        self.rounds("figure7", measure, ["dbq"])

    def window_rate(self, alias: str, ready: int, window: float) -> dict[str, Any]:
        """Jobs/s of one worker over ``window`` s, with ``ready`` jobs waiting throughout."""
        from django.db import connections
        from django.utils import timezone

        from django_dbq.models import Job

        with connections[alias].cursor() as cursor:
            cursor.execute(f"DELETE FROM django_dbq_job WHERE created > '{OLD}'")
            cursor.execute(*fill_sql(alias, ready, finished=False))
        self.dbq_analyze(alias, vacuum=True)
        name = connections[alias].settings_dict["NAME"]
        proc = self.dbq_worker(env={"DBQ_DATABASE_NAME": name})
        recent = Job.objects.using(alias).filter(created__gt=OLD_DT)
        try:
            deadline = time.monotonic() + 60
            first = None
            while first is None and time.monotonic() < deadline:
                time.sleep(0.1)
                first = recent.exclude(started_at=None).order_by("started_at").values_list(
                    "started_at", flat=True).first()
            if first is None:
                raise RuntimeError(f"no job started:\n{proc.output()[-1500:]}")
            begin = first + datetime.timedelta(seconds=1.0)
            end = begin + datetime.timedelta(seconds=window)
            time.sleep(max(0.0, (end - timezone.now()).total_seconds() + 0.5))
        finally:
            proc.stop()
        done = recent.filter(finished_at__gte=begin, finished_at__lt=end).count()
        left = recent.exclude(state="COMPLETED").count()
        return {"rate": done / window, "done_in_window": done, "window": window,
                "still_ready_at_end": left, "log": scan_logs([proc])}

    def figure8(self) -> None:
        n = self.sizes["rss_jobs"]

        def measure(system: str, run: int) -> dict[str, Any]:
            from django.db import connection

            from django_dbq.models import Job

            self.dbq_clear()
            proc = self.dbq_worker()
            try:
                wait_for_text(proc, "Listening for new jobs" if self.pg else "starting", 60)
                time.sleep(1.0)
                start_rss, _ = proc.rss()
                with connection.cursor() as cursor:
                    cursor.execute(*fill_sql("default", n, finished=False))
                samples = []
                warm = None
                deadline = time.monotonic() + max(300, n / 100)
                while time.monotonic() < deadline:
                    time.sleep(0.5)
                    done = Job.objects.filter(state="COMPLETED").count()
                    rss, hwm = proc.rss()
                    samples.append((done, rss))
                    if warm is None and done >= n // 10:
                        warm = rss
                    if done >= n:
                        break
                end_rss, hwm = proc.rss()
            finally:
                proc.stop()
            if warm is None or samples[-1][0] < n:
                raise RuntimeError(f"only {samples[-1][0] if samples else 0} of {n} jobs done")
            return {"n": n, "start": start_rss, "after_10pct": warm, "end": end_rss,
                    "peak": hwm, "growth": end_rss - warm, "growth_from_start": end_rss - start_rss,
                    "samples": samples[:: max(1, len(samples) // 20)], "log": scan_logs([proc])}

        self.rounds("figure8", measure, ["dbq"])

    def figure9(self) -> None:
        finished, waiting = self.sizes["big_finished"], self.sizes["big_ready"]
        env = {**self.env, "DBQ_DATABASE_NAME": PG_DATABASES["big"]}

        def measure(system: str, run: int) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for scenario in DASHBOARD_SCENARIOS:
                argv = [sys.executable, "-m", "tests.benchmarks.dashboard", "--scenario",
                        scenario, "--finished", str(finished), "--waiting", str(waiting),
                        "--repeat", "15"]
                done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                                      timeout=1800)
                if done.returncode:
                    raise RuntimeError(f"dashboard {scenario}:\n{done.stderr[-3000:]}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                out[scenario] = result
                warm, steady = result["warm"], result["steady"]
                out.update({
                    f"{scenario}_first_roll_up_ms": result["first_roll_up_ms"],
                    f"{scenario}_warm_median_ms": warm["median_ms"],
                    f"{scenario}_warm_p95_ms": warm["p95_ms"],
                    f"{scenario}_steady_median_ms": steady["median_ms"],
                    f"{scenario}_steady_p95_ms": steady["p95_ms"],
                    f"{scenario}_queries": steady["queries"],
                })
                say(f"figure9 {scenario}: first roll-up {result['first_roll_up_ms']:.0f} ms; "
                    f"snapshot warm {warm['median_ms']:.1f} / p95 {warm['p95_ms']:.1f} ms, "
                    f"steady {steady['median_ms']:.1f} / p95 {steady['p95_ms']:.1f} ms; "
                    f"{steady['queries']} queries; locks rows: {result['locks_rows']}")
            # The page's figure: the worse scenario, in the steady state.
            out["snapshot_ms"] = max(out[f"{s}_steady_median_ms"] for s in DASHBOARD_SCENARIOS)
            out["snapshot_p95_ms"] = max(out[f"{s}_steady_p95_ms"] for s in DASHBOARD_SCENARIOS)
            out["queries"] = max(out[f"{s}_queries"] for s in DASHBOARD_SCENARIOS)
            out["locks_rows"] = any(out[s]["locks_rows"] for s in DASHBOARD_SCENARIOS)
            return out

        self.rounds("figure9", measure, ["dbq"])

    # --- the whole run ----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        began = time.monotonic()
        source = source_fingerprint()
        self.setup()
        say(f"database {self.db}; figures {', '.join(self.figures)}; systems "
            f"{', '.join(self.systems)}; {self.runs} run(s) each; logs in {self.workdir}")
        for figure in self.figures:
            t = time.monotonic()
            try:
                getattr(self, figure)()
            except Exception as exc:  # report it and go on with the other figures
                say(f"{figure} FAILED: {type(exc).__name__}: {exc}")
                self.results[figure] = {"title": self.title(figure), "systems": {},
                                        "error": f"{type(exc).__name__}: {exc}"}
            self.results[figure]["seconds"] = time.monotonic() - t
        if source_fingerprint() != source:
            self.notes.append(
                "django_dbq's source files changed while the suite ran: the figures mix "
                "versions (run the suite from a snapshot of the work tree)")
            say("WARNING: " + self.notes[-1])
        report = {
            "database": self.db,
            "quick": self.quick,
            "runs": self.runs,
            "machine": machine_info(self),
            "sizes": self.sizes,
            "figures": self.results,
            "targets": evaluate_targets(self),
            "notes": self.notes,
            "django_dbq_sources": source,
            "seconds": time.monotonic() - began,
        }
        return report

    def cleanup(self) -> None:
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def fill_sql(using: str, n: int, *, finished: bool, when: str | None = None,
             columns_sql: dict[str, str] | None = None) -> tuple[str, list[Any]]:
    """``INSERT ... SELECT ... generate_series`` of ``n`` no-op jobs, from the model.

    Every column gets the value a ``Job(name="noop")`` would be saved with, so the
    statement follows the Job model as it changes; ``finished`` rows are COMPLETED
    and dated in the year 2000 (before ``OLD``), the others NEW and dated now.
    ``when`` replaces that date (SQL of the row number ``i``; it is ``t`` in the
    row), and ``columns_sql`` the values of some fields (SQL of ``i`` and ``t``).
    """
    from django.db import connections

    from django_dbq.models import Job

    connection = connections[using]
    job = Job(name="noop")
    job.prepare_for_insert()
    if when is None:
        when = ("timestamptz '2000-01-01' + i * interval '10 ms'" if finished
                else "clock_timestamp()")
    overrides = {"id": "gen_random_uuid()", "created": "t", "modified": "t"}
    if finished:
        job.state, job.next_task, job.attempts = "COMPLETED", "", 1
        overrides.update(started_at="t", finished_at="t")
    overrides.update(columns_sql or {})
    columns, values, params = [], [], []
    for field in Job._meta.local_concrete_fields:
        columns.append(connection.ops.quote_name(field.column))
        if field.name in overrides:
            values.append(overrides[field.name])
        else:
            values.append("%s")
            params.append(field.get_db_prep_save(getattr(job, field.attname), connection))
    source = f"(SELECT i, {when} AS t FROM generate_series(1, %s) AS i) AS s"
    sql = (f"INSERT INTO {Job._meta.db_table} ({', '.join(columns)}) "
           f"SELECT {', '.join(values)} FROM {source}")
    return sql, [*params, n]


def steady(finished: list[float]) -> dict[str, float]:
    """The rate between the 10th and the 90th percentile of finish times: the steady
    state, without the ramp-up (processes starting one after another) and the tail."""
    if len(finished) < 20:
        return {}
    lo, hi = finished[len(finished) // 10], finished[(len(finished) * 9) // 10]
    count = (len(finished) * 9) // 10 - len(finished) // 10
    return {"steady_rate": count / (hi - lo)} if hi > lo else {}


def source_fingerprint() -> str:
    """A hash of django_dbq's sources: the code the worker processes run."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((ROOT / "django_dbq").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def wait_for_text(proc: Proc, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in proc.output():
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker never said {text!r}:\n{proc.output()[-1500:]}")
        time.sleep(0.05)


def find_python312() -> Path:
    """An interpreter new enough for Django 6 (3.12+)."""
    if sys.version_info >= (3, 12):
        return Path(sys.executable)
    for name in ("python3.13", "python3.12"):
        found = shutil.which(name)
        # A pyenv shim is on PATH even where it has no such version to run.
        if found and subprocess.run([found, "-c", ""], capture_output=True).returncode == 0:
            return Path(found)
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
    except FileNotFoundError:
        root = str(Path.home() / ".pyenv")
    for candidate in sorted(Path(root, "versions").glob("3.1[23]*/bin/python3")):
        return candidate
    raise SystemExit("django-tasks-db 0.13 needs Django 6 and so Python 3.12+; none found")


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median/min/max of each numeric key the runs share."""
    ok = [r for r in runs if "error" not in r]
    out: dict[str, Any] = {"errors": [r["error"] for r in runs if "error" in r]}
    keys = ("rate", "steady_rate", "wall_rate", "jobs_per_claim", "jobs_per_completion_write",
            "percent_of_ideal", "steady_percent_of_ideal",
            "p50", "p95", "p50_from_commit",
            "p95_from_commit", "bare_rate", "instances_rate", "ratio",
            "empty_rate", "first_create_ms", "first_bare_create_ms", "start", "after_10pct",
            "end", "peak", "growth", "growth_from_start", *DASHBOARD_KEYS, *FEATURE_KEYS,
            *SCALE_KEYS)
    for key in keys:
        values = [r[key] for r in ok if isinstance(r.get(key), (int, float))]
        if values:
            out[key] = summary(values)
    logs: dict[str, int] = {}
    for r in runs:
        for needle, count in r.get("log", {}).items():
            logs[needle] = logs.get(needle, 0) + count
        for part in ("empty", "big"):
            for needle, count in r.get(part, {}).get("log", {}).items():
                logs[needle] = logs.get(needle, 0) + count
    out["log"] = logs
    if any("locks_rows" in r for r in ok):
        out["locks_rows"] = any(r["locks_rows"] for r in ok)
    return out


def brief(run: dict[str, Any]) -> str:
    if "error" in run:
        return "ERROR"
    if "line" in run:
        return run["line"]
    parts = []
    for key, fmt in (("rate", "{:,.0f}/s"), ("percent_of_ideal", "{:.0f}% of ideal"),
                     ("p50", "p50 {:.1f} ms"), ("p95", "p95 {:.1f} ms"),
                     ("bare_rate", "bare {:,.0f}/s"), ("empty_rate", "empty {:,.0f}/s"),
                     ("ratio", "ratio {:.2f}"), ("start", "rss {:.1f}"), ("end", "-> {:.1f} MB"),
                     ("snapshot_ms", "snapshot {:.1f} ms"), ("snapshot_p95_ms", "p95 {:.1f} ms")):
        if isinstance(run.get(key), (int, float)):
            parts.append(fmt.format(run[key]))
    return ", ".join(parts)


# --- targets and the printed table -----------------------------------------------------------


def med(results: dict[str, Any], figure: str, system: str, key: str = "rate") -> float | None:
    try:
        return results[figure]["systems"][system][key]["median"]
    except KeyError:
        return None


def evaluate_targets(suite: Suite) -> dict[str, Any]:
    r = suite.results
    t: dict[str, Any] = {}

    def put(figure: str, text: str, met: bool | None, detail: str = "") -> None:
        if figure in r:
            t[figure] = {"target": text, "met": met, "detail": detail}

    def best_tdb(figure: str) -> float | None:
        values = [v for v in (med(r, figure, "tdb_default"), med(r, figure, "tdb_tuned")) if v]
        return max(values) if values else None

    ours1, ours2 = med(r, "figure1", "dbq"), med(r, "figure2", "dbq")
    if not suite.pg:
        for figure, ours in (("figure1", ours1), ("figure2", ours2)):
            best = best_tdb(figure)
            locked = r.get(figure, {}).get("systems", {}).get("dbq", {}).get("log", {}).get(
                "database is locked", 0)
            put(figure, ">= 5x tasks-db best, no 'database is locked'",
                (ours >= 5 * best and locked == 0) if ours and best else None,
                f"{ours / best:.1f}x, {locked} 'database is locked'" if ours and best else "")
        return t
    put("figure1", ">= 2,500/s", ours1 >= 2500 if ours1 else None)
    best = best_tdb("figure2")
    put("figure2", ">= 5,000/s and >= 8x tasks-db best",
        (ours2 >= 5000 and (best is None or ours2 >= 8 * best)) if ours2 else None,
        f"{ours2 / best:.1f}x tasks-db best" if ours2 and best else "")
    io, pct = med(r, "figure3", "dbq"), med(r, "figure3", "dbq", "percent_of_ideal")
    put("figure3", ">= 80% of ideal and >= 1,000/s", (io >= 1000 and pct >= 80) if io else None)
    p50, p95 = med(r, "figure4", "dbq", "p50"), med(r, "figure4", "dbq", "p95")
    put("figure4", "p50 <= 3 ms, p95 <= 10 ms", (p50 <= 3 and p95 <= 10) if p50 else None)
    ratio = med(r, "figure5", "dbq", "ratio")
    put("figure5", ">= 90% of bare create()", ratio >= 0.9 if ratio else None,
        f"{100 * ratio:.0f}% of bare" if ratio else "")
    bulk = med(r, "figure6", "dbq")
    put("figure6", ">= 30,000/s", bulk >= 30000 if bulk else None)
    ratio7 = med(r, "figure7", "dbq", "ratio")
    put("figure7", ">= 80% of empty table", ratio7 >= 0.8 if ratio7 else None,
        f"{100 * ratio7:.0f}% of empty" if ratio7 else "")
    peak, growth = med(r, "figure8", "dbq", "peak"), med(r, "figure8", "dbq", "growth")
    put("figure8", "<= 80 MB RSS, no growth (<= 4 MB after warm-up)",
        (peak <= 80 and growth <= 4) if peak else None)
    page, page95 = med(r, "figure9", "dbq", "snapshot_ms"), med(r, "figure9", "dbq",
                                                                   "snapshot_p95_ms")
    locks = r.get("figure9", {}).get("systems", {}).get("dbq", {}).get("locks_rows")
    put("figure9", "<= 200 ms in total, no row locks",
        (page <= 200 and locks is False) if page else None,
        f"steady p95 {page95:.0f} ms, locks rows: {locks}" if page else "")
    t.update(feature_targets(r))
    return t


def fmt_range(s: dict[str, Any] | None, fmt: str = "{:,.0f}") -> str:
    if not s or s.get("median") is None:
        return "—"
    if len(s["runs"]) == 1:
        return fmt.format(s["median"])
    return f"{fmt.format(s['median'])} [{fmt.format(s['min'])}-{fmt.format(s['max'])}]"


def cell(figure: str, data: dict[str, Any] | None) -> str:
    if not data:
        return "—"
    if (text := feature_cell(figure, data)) is not None:
        return text
    if (text := scale_cell(figure, data)) is not None:
        return text
    if figure == "figure3":
        text = fmt_range(data.get("rate"))
        pct, steady = data.get("percent_of_ideal"), data.get("steady_percent_of_ideal")
        if pct and steady:
            return f"{text} = {pct['median']:.0f}% (steady {steady['median']:.0f}%)"
        return f"{text} = {pct['median']:.0f}%" if pct else text
    if figure == "figure4":
        if "p50" not in data:
            return "ERROR" if data.get("errors") else "—"
        return f"{fmt_range(data['p50'], '{:.1f}')} / {fmt_range(data['p95'], '{:.1f}')}"
    if figure == "figure6" and "ratio" in data:
        text = f"{fmt_range(data['rate'])} (Django bulk_create: {data['bare_rate']['median']:,.0f}"
        if "instances_rate" in data:
            text += f"; bulk_create_jobs: {fmt_range(data['instances_rate'])}"
        return text + ")"
    if figure == "figure5" and "ratio" in data:
        return f"{fmt_range(data['rate'])} = {100 * data['ratio']['median']:.0f}% of bare " \
               f"{data['bare_rate']['median']:,.0f}"
    if figure == "figure7" and "ratio" in data:
        return f"{fmt_range(data['rate'])} vs {data['empty_rate']['median']:,.0f} empty " \
               f"= {100 * data['ratio']['median']:.0f}%"
    if figure == "figure9" and "snapshot_ms" in data:
        def ms(key: str) -> str:
            return fmt_range(data.get(key), "{:.0f}")

        return "; ".join(
            f"{s}: {ms(f'{s}_steady_median_ms')} (p95 {ms(f'{s}_steady_p95_ms')}), "
            f"first roll-up {ms(f'{s}_first_roll_up_ms')}" for s in DASHBOARD_SCENARIOS
        ) + f"; {data['queries']['median']:.0f} queries"
    if figure == "figure8" and "end" in data:
        return (f"{data['start']['median']:.1f} -> {fmt_range(data['end'], '{:.1f}')}, "
                f"peak {data['peak']['median']:.1f}, +{data['growth']['median']:.1f} after warm-up")
    if "rate" not in data:
        return "ERROR" if data.get("errors") else "—"
    return fmt_range(data["rate"])


def dbq_cell(figure: str, systems: dict[str, Any]) -> str:
    text = cell(figure, systems.get("dbq"))
    quiet = systems.get("dbq_quiet", {}).get("rate")
    return f"{text}; -v0: {fmt_range(quiet)}" if quiet else text


def table(report: dict[str, Any]) -> str:
    """The printed table: one row per figure, one column per system."""
    systems = [s for s in SYSTEMS if report["database"] == "postgres" or not s.startswith("raw")]
    header = ["figure", *(COLUMNS[s] for s in systems), "target", "met?"]
    rows = [header]
    for figure, data in report["figures"].items():
        target = report["targets"].get(figure, {})
        met = target.get("met")
        rows.append([
            f"{figure.removeprefix('figure')}. {data['title']}",
            *(("(as default)" if figure == "figure5" and s == "tdb_tuned" and
                "tdb_default" in data["systems"] else dbq_cell(figure, data["systems"])
                if s == "dbq" else cell(figure, data["systems"].get(s)))
              for s in systems),
            target.get("target", ""),
            ({True: "yes", False: "NO", None: "?"}[met] if target else "")
            + (f" ({target['detail']})" if target.get("detail") else ""),
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def rst_table(report: dict[str, Any]) -> str:
    """The table as an reStructuredText list-table (for docs/performance.rst)."""
    systems = [s for s in SYSTEMS if report["database"] == "postgres" or not s.startswith("raw")]
    header = ["figure", *(COLUMNS[s] for s in systems), "target", "met?"]
    lines = [".. list-table::", "   :header-rows: 1", ""]
    rows = [header]
    for figure, data in report["figures"].items():
        target = report["targets"].get(figure, {})
        met = {True: "yes", False: "**no**", None: "?"}[target.get("met")] if target else "—"
        rows.append([
            f"{figure.removeprefix('figure')}. {data['title']}",
            *(("(as default)" if figure == "figure5" and s == "tdb_tuned" and
                "tdb_default" in data["systems"] else dbq_cell(figure, data["systems"])
                if s == "dbq" else cell(figure, data["systems"].get(s)))
              for s in systems),
            (target.get("target") or "—").replace(">=", "≥").replace("<=", "≤"),
            met + (f" ({target['detail']})" if target.get("detail") else ""),
        ])
    for row in rows:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {c}" for c in row[1:])
    return "\n".join(lines) + "\n"


def machine_info(suite: Suite) -> dict[str, Any]:
    import django

    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu": next((line.split(":", 1)[1].strip() for line in
                     Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name")), platform.processor()),
        "python": platform.python_version(),
        "django": django.get_version(),
        "platform": platform.platform(),
    }
    from django.db import connection

    with connection.cursor() as cursor:
        if suite.pg:
            cursor.execute("SHOW server_version")
            info["postgresql"] = cursor.fetchone()[0]
            import psycopg

            info["psycopg"] = psycopg.__version__
        else:
            cursor.execute("SELECT sqlite_version()")
            info["sqlite"] = cursor.fetchone()[0]
    git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "django_dbq"], cwd=ROOT,
                           capture_output=True, text=True)
    info["django_dbq_commit"] = git.stdout.strip() + (" (modified)" if dirty.stdout.strip() else "")
    if suite.tdb_python:
        out = subprocess.run(
            [str(suite.tdb_python), "-c",
             "import sys, django, importlib.metadata as m; print(sys.version.split()[0], "
             "django.get_version(), m.version('django-tasks-db'))"],
            capture_output=True, text=True)
        parts = out.stdout.split()
        if len(parts) == 3:
            info["tasksdb_env"] = dict(zip(("python", "django", "django_tasks_db"), parts,
                                           strict=True))
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG",
                                                       "postgres://postgres@127.0.0.1:5432"),
                        help="the PostgreSQL server, a superuser without a password "
                             "(default $BENCH_PG or postgres://postgres@127.0.0.1:5432)")
    parser.add_argument("--db-prefix", default="bench",
                        help="name the benchmark databases <prefix>_dbq, ... (default bench)")
    parser.add_argument("--pg-log", metavar="PATH",
                        help="the server's log file as the server sees it, for figures 13 and "
                             "14 (default: pg_current_logfile(), else Debian's "
                             "/var/log/postgresql/postgresql-<cluster>.log)")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: a smoke test")
    parser.add_argument("--only", help="comma-separated figures, e.g. figure1,figure4")
    parser.add_argument("--systems", help=f"comma-separated subset of {','.join(SYSTEMS)}")
    parser.add_argument("--runs", type=int, help="runs per figure (default 3; 1 with --quick)")
    parser.add_argument("--rst", metavar="FILE", help="also write the table as RST here")
    parser.add_argument("--keep", action="store_true", help="keep worker logs and SQLite files")
    parser.add_argument("--py-spy", metavar="DIR",
                        help="record figure 1's django_dbq worker with py-spy (raw stacks) "
                             "into DIR; slows that worker a little")
    args = parser.parse_args(argv)
    suite = Suite(args)
    try:
        report = suite.run()
    finally:
        suite.cleanup()
    print()
    print(table(report))
    details = scale_details(report)
    if details:
        print()
        print(details)
    print(f"\nsuite took {report['seconds']:.0f} s")
    if args.rst:
        Path(args.rst).write_text(rst_table(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2, default=str))
        print(f"results written to {args.out}")
    return 0
