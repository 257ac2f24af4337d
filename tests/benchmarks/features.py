"""Figures 10 to 12 of the suite: what unique keys, the scheduler and limits cost.

``FeatureFigures`` is a part of :class:`tests.benchmarks.suite.Suite` (it uses the
suite's workers, drains and ``rounds()``); every figure is ``dbq`` only.

- **Figure 10**, enqueueing with a unique key (PostgreSQL and SQLite): ``n``
  ``create()`` calls each with a distinct ``unique_key`` alternating one by one
  with ``n`` keyless ones (as figure 5), then ``n / 4`` creates of keys already
  held (duplicates: a read, no insert); and ``bulk_enqueue()`` of ``bulk_n`` jobs
  of a job type with ``"unique": "k:{n}"`` (workspaces ``{"n": i}``) against the
  same workspaces for the keyless ``noop`` (as figure 6). Jobs/s and the ratio to
  the keyless figure of the same run.
- **Figure 11**, an idle worker's cost (PostgreSQL): the transactions per second
  (``xact_commit + xact_rollback`` of ``pg_stat_database``) the benchmark
  database gets from one idle worker, over a window of ``idle_window`` seconds
  once the worker has started and settled, with nothing else connected to that
  database; for ``worker --no-schedules``, ``worker`` (its scheduler thread on,
  no schedule), ``worker`` with one schedule every ``schedule_every`` seconds
  (the window is then one period, the schedule's tick in its middle) and
  ``worker --no-schedules`` with the two job types with limits of figure 12.
  ``pg_stat_statements`` needs a server restart to load; the statements come
  instead from a count kept in the worker (:mod:`tests.benchmarks.census`): the
  statements per second and the most frequent ones, by thread.
- **Figure 12**, limited job types (PostgreSQL): (a) a drain of jobs of a type
  with ``"max_running": 3`` whose task sleeps 50 ms, by 4 worker processes of 4
  threads, against the ideal 3 / 0.05 = 60 jobs/s, with the most tasks seen
  running at once (the tasks record their spans); (b) a drain of no-op jobs of a
  type with ``"rate": "50/s"`` by 4 worker processes against the ideal 50/s,
  with the most tasks started in any one second; (c) the statements and the
  time of one claim in this process: a plain claim (``store.claim``) against a
  claim of a limited group (``store.claim_limited``) for the ``max_running``
  group, the ``rate`` group, and the ``max_running`` group at its limit
  (``capped``: no job claimed). BEGIN and COMMIT count as statements.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FEATURE_FIGURES = {
    "figure10": "enqueue with a unique key: create() / bulk_enqueue() (jobs/s, vs keyless)",
    "figure11": "idle worker: transactions/s it costs the database",
    "figure12": "limited job types: max_running 3 x 50 ms, 50/s (jobs/s); statements per claim",
}
#: The idle worker's cases in figure 11: (label, worker arguments, environment).
IDLE_CASES: dict[str, tuple[str, list[str], dict[str, str]]] = {
    "no_schedules": ("--no-schedules", ["--no-schedules"], {}),
    "scheduler": ("scheduler on, no schedule", [], {}),
    "schedule": ("one schedule every {every} s", [], {}),
    "limits": ("--no-schedules, 2 limited job types", ["--no-schedules"],
               {"BENCH_LIMITED_JOBS": "1"}),
}
IDLE_SHORT = {"no_schedules": "--no-schedules", "scheduler": "scheduler",
              "schedule": "1 schedule", "limits": "2 limited types"}
TARGET12 = "never > 3 running; <= 55 started in any 1 s"
CLAIM_CASES = ("plain", "max_running", "rate", "capped")
#: The ideal rates of figure 12's drains.
LIMITED_IDEAL = 3 / 0.05
RATED_IDEAL = 50.0
FEATURE_KEYS = (
    "keyless_rate", "duplicate_rate", "bulk_rate", "bulk_keyless_rate", "bulk_ratio",
    *(f"{case}_{key}" for case in IDLE_CASES for key in ("tx_per_s", "statements_per_s")),
    "limited_rate", "limited_percent_of_ideal", "limited_steady_rate", "peak_running",
    "rated_rate", "rated_percent_of_ideal", "max_started_in_1s",
    *(f"{case}_{key}" for case in CLAIM_CASES for key in ("statements", "claim_ms")),
)


class FeatureFigures:
    """Figures 10 to 12, mixed into the suite."""

    # Provided by the Suite.
    sizes: dict[str, Any]
    workdir: Path
    pg: bool
    rounds: Callable[..., None]
    drain: Callable[..., dict[str, Any]]
    dbq_clear: Callable[..., None]
    dbq_analyze: Callable[..., None]
    dbq_worker: Callable[..., Any]
    log_path: Callable[[str], Path]

    # --- figure 10: unique keys ------------------------------------------------------------

    def figure10(self) -> None:
        self.rounds("figure10", lambda system, run: self.unique_enqueue(run), ["dbq"])

    def unique_enqueue(self, run: int) -> dict[str, Any]:
        from django_dbq.models import Job

        n, bulk_n = self.sizes["enqueue"], self.sizes["unique_bulk"]
        clock = time.perf_counter
        self.dbq_clear()
        keyed = keyless = 0.0
        for i in range(n):
            for which in (("keyed", "keyless") if i % 2 == 0 else ("keyless", "keyed")):
                start = clock()
                if which == "keyed":
                    job = Job.objects.create(name="noop", unique_key=f"k:{i}")
                    keyed += clock() - start
                    if job.duplicate:
                        raise RuntimeError(f"key k:{i} was taken: the table was not empty")
                else:
                    Job.objects.create(name="noop")
                    keyless += clock() - start
        duplicates = max(1, n // 4)
        start = clock()
        for i in range(duplicates):
            job = Job.objects.create(name="noop", unique_key=f"k:{i}")
        duplicate_seconds = clock() - start
        if not job.duplicate or Job.objects.count() != 2 * n:
            raise RuntimeError("a create() of a key already held inserted a job")
        workspaces = [{"n": i} for i in range(bulk_n)]
        bulk: dict[str, float] = {}
        for which in (("keyed", "keyless") if run % 2 == 0 else ("keyless", "keyed")):
            self.dbq_clear()
            self.dbq_analyze()
            start = clock()
            ids = Job.objects.bulk_enqueue("bench_unique" if which == "keyed" else "noop",
                                           workspaces)
            bulk[which] = bulk_n / (clock() - start)
            held = Job.objects.exclude(active_key=None).count()
            if len(set(ids)) != bulk_n or held != (bulk_n if which == "keyed" else 0):
                raise RuntimeError(f"bulk_enqueue ({which}): {len(set(ids))} ids, {held} keys")
        result = {
            "n": n, "bulk_n": bulk_n,
            "rate": n / keyed, "keyless_rate": n / keyless, "ratio": keyless / keyed,
            "duplicate_rate": duplicates / duplicate_seconds,
            "bulk_rate": bulk["keyed"], "bulk_keyless_rate": bulk["keyless"],
            "bulk_ratio": bulk["keyed"] / bulk["keyless"],
        }
        result["line"] = (
            f"create {result['rate']:,.0f}/s = {100 * result['ratio']:.0f}% of keyless "
            f"{result['keyless_rate']:,.0f}/s (duplicates {result['duplicate_rate']:,.0f}/s); "
            f"bulk_enqueue {result['bulk_rate']:,.0f}/s = {100 * result['bulk_ratio']:.1f}% "
            f"of keyless {result['bulk_keyless_rate']:,.0f}/s")
        return result

    # --- figure 11: an idle worker ------------------------------------------------------------

    def figure11(self) -> None:
        def measure(system: str, run: int) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for case in IDLE_CASES:
                result = self.idle_cost(case, run)
                out[case] = result
                out[f"{case}_tx_per_s"] = result["tx_per_s"]
                out[f"{case}_statements_per_s"] = result["statements_per_s"]
                from tests.benchmarks.suite import say

                say(f"figure11 {case}: {result['tx_per_s']:.2f} tx/s, "
                    f"{result['statements_per_s']:.2f} statements/s over {result['window']:.0f} s"
                    f" ({result['backends']} connections); top: " + "; ".join(
                        f"{s['per_minute']:.0f}/min {s['statement'][:70]}"
                        for s in result["top"][:4]))
            out["line"] = ", ".join(
                f"{case} {out[f'{case}_tx_per_s']:.2f}" for case in IDLE_CASES) + " tx/s"
            return out

        self.rounds("figure11", measure, ["dbq"])

    def idle_cost(self, case: str, run: int) -> dict[str, Any]:
        import psycopg
        from django.db import connections
        from django.utils import timezone

        from django_dbq.records import Schedule, ScheduleTick
        from tests.benchmarks import census
        from tests.benchmarks.suite import PG, PG_DATABASES, wait_for_text

        name = PG_DATABASES["dbq"]
        every = self.sizes["schedule_every"]
        window = float(every if case == "schedule" else self.sizes["idle_window"])
        self.dbq_clear()
        Schedule.objects.all().delete()
        if case == "schedule":
            now = timezone.now()
            Schedule.objects.create(name="bench-idle", job_name="noop", every_seconds=every,
                                    created=now, modified=now)
        connections.close_all()  # nothing but the worker may be connected to the database
        _, args, env = IDLE_CASES[case]
        path = self.workdir / f"census-{case}-{run}.json"
        dsn = f"host={PG['host']} port={PG['port']} user={PG['user']} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as admin:
            others = _backends(admin, name)
            if others:
                raise RuntimeError(f"{others} other connection(s) to {name}")
            proc = self.dbq_worker(*args, env={**env, "BENCH_STATEMENT_CENSUS": str(path)})
            try:
                wait_for_text(proc, "Listening for new jobs", 60)
                time.sleep(self.sizes["idle_settle"])
                if case == "schedule":
                    # One whole period, its tick in the middle (ticks fall on multiples of
                    # `every` seconds since the epoch): far from the window's edges.
                    start = math.ceil((time.time() - every / 2) / every) * every + every / 2
                    time.sleep(max(0.0, start - time.time()))
                tx_before, census_before = _transactions(admin, name), census.read(str(path))
                began = time.monotonic()
                time.sleep(window)
                tx_after, census_after = _transactions(admin, name), census.read(str(path))
                seconds = time.monotonic() - began
                backends = _backends(admin, name)
            finally:
                proc.stop()
        census_seconds, counts = census.difference(census_before, census_after)
        statements = sum(counts.values())
        from tests.benchmarks.suite import scan_logs

        result = {
            "case": IDLE_CASES[case][0].format(every=every), "window": seconds,
            "transactions": tx_after - tx_before, "tx_per_s": (tx_after - tx_before) / seconds,
            "statements": statements, "statements_per_s": statements / census_seconds,
            "backends": backends, "log": scan_logs([proc]),
            "top": [{"statement": statement, "calls": calls,
                     "per_minute": 60 * calls / census_seconds}
                    for statement, calls in counts.most_common(12)],
        }
        if case == "schedule":
            result["ticks_fired"] = ScheduleTick.objects.count()
            if not result["ticks_fired"]:
                raise RuntimeError(f"the schedule every {every} s never fired")
        return result

    # --- figure 12: limited job types ---------------------------------------------------------

    @contextmanager
    def limited_jobs(self) -> Iterator[None]:
        """This process knows the job types with limits (workers get BENCH_LIMITED_JOBS)."""
        from django.conf import settings
        from django.test import override_settings

        with override_settings(JOBS={**settings.JOBS, **settings.BENCH_LIMITED_JOBS}):
            yield

    def figure12(self) -> None:
        def measure(system: str, run: int) -> dict[str, Any]:
            with self.limited_jobs():
                limited = self.limited_drain("bench_limited", run)
                rated = self.limited_drain("bench_rated", run)
                claims = self.claim_costs()
            out: dict[str, Any] = {
                "limited": limited, "rated": rated, "claims": claims,
                "limited_rate": limited["rate"], "limited_steady_rate": limited["steady_rate"],
                "limited_percent_of_ideal": limited["percent_of_ideal"],
                "peak_running": limited["peak_running"],
                "rated_rate": rated["rate"], "rated_percent_of_ideal": rated["percent_of_ideal"],
                "max_started_in_1s": rated["max_started_in_1s"],
                "log": {k: limited["log"].get(k, 0) + rated["log"].get(k, 0)
                        for k in {*limited["log"], *rated["log"]}},
            }
            for case in CLAIM_CASES:
                out[f"{case}_statements"] = claims[case]["statements"]
                out[f"{case}_claim_ms"] = claims[case]["median_ms"]
            out["line"] = (
                f"max_running 3: {limited['rate']:.1f}/s = {limited['percent_of_ideal']:.0f}% "
                f"of {LIMITED_IDEAL:.0f} (peak {limited['peak_running']}); 50/s: "
                f"{rated['rate']:.1f}/s (max {rated['max_started_in_1s']} in 1 s); claim "
                + ", ".join(f"{case} {claims[case]['statements']} st "
                            f"{claims[case]['median_ms']:.2f} ms" for case in CLAIM_CASES))
            return out

        self.rounds("figure12", measure, ["dbq"])

    def limited_drain(self, job: str, run: int) -> dict[str, Any]:
        spans = self.workdir / f"spans-{job}-{run}.txt"
        spans.write_text("")
        env = {"BENCH_LIMITED_JOBS": "1", "BENCH_SPAN_FILE": str(spans)}
        if job == "bench_limited":
            n, ideal = self.sizes["limited_jobs"], LIMITED_IDEAL
            result = self.drain("dbq", n, 4, job=job, concurrency=4, env=env)
        else:
            n, ideal = self.sizes["rated_jobs"], RATED_IDEAL
            result = self.drain("dbq", n, 4, job=job, env=env)
        if result.get("error"):
            raise RuntimeError(result["error"])
        lines = [line.split() for line in spans.read_text().splitlines() if line.strip()]
        result.update(ideal=ideal, percent_of_ideal=100 * result["rate"] / ideal,
                      tasks_run=len(lines))
        if job == "bench_limited":
            result["peak_running"] = peak_overlap([(float(a), float(b)) for a, b in lines])
        else:
            result["max_started_in_1s"] = most_in_window(sorted(float(a) for a, in lines), 1.0)
        return result

    def claim_costs(self) -> dict[str, dict[str, Any]]:
        """Statements and time of one claim of one job: plain, and of a limited group."""
        from django.db import connection

        from django_dbq import limits, store
        from django_dbq.models import Job
        from django_dbq.states import JobStates

        samples = self.sizes["claim_samples"]
        self.dbq_clear()
        Job.objects.bulk_create_jobs([
            {"name": name} for name in ("noop", "bench_limited", "bench_rated")
            for _ in range(samples + 5)])
        self.dbq_analyze()
        groups = limits.job_groups()
        limited = sorted(groups)
        owner = "bench-claims"

        def claim(case: str, room: int = 1) -> list[Any]:
            if case == "plain":
                return store.claim(owner, ["default"], room, 30.0, exclude_names=limited)
            name = "bench_rated" if case == "rate" else "bench_limited"
            return store.claim_limited(owner, [groups[name]], ["default"], room, 30.0,
                                       only_name=name).jobs

        out: dict[str, dict[str, Any]] = {}
        for case in CLAIM_CASES:
            Job.objects.filter(state=JobStates.PROCESSING).delete()
            if case == "capped":
                if len(claim("max_running", room=3)) != 3:
                    raise RuntimeError("could not fill the max_running group's 3 slots")
            else:
                claim(case)  # warm-up (the first limited claim creates the group's row)
            counts, times, sql = [], [], []
            for _ in range(samples):
                if case != "capped":
                    Job.objects.filter(state=JobStates.PROCESSING).delete()
                    time.sleep(0.03)  # the rate's bucket has a token again (one per 20 ms)
                seen: list[tuple[str, bool]] = []

                def record(execute: Any, query: str, params: Any, many: bool,
                           context: dict[str, Any], seen: list[tuple[str, bool]] = seen) -> Any:
                    seen.append((query, context["connection"].in_atomic_block))
                    return execute(query, params, many, context)

                with connection.execute_wrapper(record):
                    start = time.perf_counter()
                    jobs = claim(case)
                    times.append((time.perf_counter() - start) * 1000)
                if len(jobs) != (0 if case == "capped" else 1):
                    raise RuntimeError(f"a {case} claim took {len(jobs)} jobs")
                # BEGIN and COMMIT of a transaction are sent past Django's cursor.
                counts.append(len(seen) + (2 if any(atomic for _, atomic in seen) else 0))
                sql = [" ".join(query.split())[:100] for query, _ in seen]
            out[case] = {"statements": statistics.median(counts), "min_statements": min(counts),
                         "max_statements": max(counts), "median_ms": statistics.median(times),
                         "samples": samples, "sql": sql}
        Job.objects.filter(state=JobStates.PROCESSING).delete()
        return out


def _transactions(admin: Any, name: str) -> int:
    """Transactions the database ``name`` has had (as far as its backends reported)."""
    admin.execute("SELECT pg_stat_clear_snapshot()")
    row = admin.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                        "WHERE datname = %s", [name]).fetchone()
    return int(row[0])


def _backends(admin: Any, name: str) -> int:
    row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                        "AND pid <> pg_backend_pid()", [name]).fetchone()
    return int(row[0])


def peak_overlap(spans: list[tuple[float, float]]) -> int:
    """The most spans (start, end) open at one instant (one ending as another starts:
    not both)."""
    events = sorted([(end, -1) for _, end in spans] + [(start, 1) for start, _ in spans])
    peak = running = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def most_in_window(times: list[float], width: float) -> int:
    """The most of the sorted ``times`` in any window [t, t + width)."""
    most = first = 0
    for last, t in enumerate(times):
        while t - times[first] >= width:
            first += 1
        most = max(most, last - first + 1)
    return most


# --- the printed table ---------------------------------------------------------------------------


def feature_cell(figure: str, data: dict[str, Any]) -> str | None:
    """The table's cell of figures 10 to 12 (None: not one of them, or no data)."""
    from tests.benchmarks.suite import fmt_range

    def m(key: str) -> float:
        return data[key]["median"]

    if figure == "figure10" and "ratio" in data:
        return (f"create {fmt_range(data['rate'])} = {100 * m('ratio'):.0f}% of keyless "
                f"{m('keyless_rate'):,.0f} (duplicate {m('duplicate_rate'):,.0f}); "
                f"bulk_enqueue {fmt_range(data['bulk_rate'])} = "
                f"{100 * m('bulk_ratio'):.1f}% of keyless {m('bulk_keyless_rate'):,.0f}")
    if figure == "figure11" and "no_schedules_tx_per_s" in data:
        return "; ".join(f"{IDLE_SHORT[case]}: {fmt_range(data.get(f'{case}_tx_per_s'), '{:.2f}')}"
                         for case in IDLE_CASES) + " tx/s"
    if figure == "figure12" and "limited_rate" in data:
        return (f"max_running 3: {fmt_range(data['limited_rate'], '{:.1f}')} = "
                f"{m('limited_percent_of_ideal'):.0f}% of {LIMITED_IDEAL:.0f} "
                f"(peak {m('peak_running'):.0f}); 50/s: {fmt_range(data['rated_rate'], '{:.1f}')}"
                f" (max {m('max_started_in_1s'):.0f} in 1 s); statements per claim: "
                + ", ".join(f"{case} {m(f'{case}_statements'):.0f}" for case in CLAIM_CASES)
                + " (BEGIN/COMMIT counted; " + " / ".join(
                    f"{m(f'{case}_claim_ms'):.2f}" for case in CLAIM_CASES) + " ms)")
    return None


def feature_targets(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Figure 12 checks what docs/flow-control.rst promises, in every run."""
    if "figure12" not in results:
        return {}
    runs = results["figure12"].get("systems", {}).get("dbq", {}).get("runs", [])
    peaks = [r["peak_running"] for r in runs if "peak_running" in r]
    mosts = [r["max_started_in_1s"] for r in runs if "max_started_in_1s" in r]
    if not peaks or not mosts:
        return {"figure12": {"target": TARGET12, "met": None, "detail": ""}}
    return {"figure12": {"target": TARGET12, "met": max(peaks) <= 3 and max(mosts) <= 55,
                         "detail": f"peak {max(peaks)} running, {max(mosts)} in 1 s"}}
