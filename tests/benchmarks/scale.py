"""Figures 13 and 14 of the suite: what scaling out costs (issue 19). PostgreSQL only.

``ScaleFigures`` is a part of :class:`tests.benchmarks.suite.Suite` (it uses the
suite's workers, drains and ``rounds()``); both figures are ``dbq`` only.

- **Figure 13**, one idle worker's cost, in two modes: with LISTEN (the default on
  PostgreSQL) and polling (``DBQ_LISTEN_DATABASE = None``, set through
  ``BENCH_LISTEN_DATABASE=""``: no LISTEN connection, a claim every
  ``--poll-interval``). Both modes get ``--poll-interval scale_poll_interval``
  explicitly. The statements are counted exactly by PostgreSQL itself: the suite
  sets ``log_statement = 'all'`` on the benchmark database (``ALTER DATABASE``:
  only new sessions of that database log, nothing else on the server changes) and
  reads the server's log over its own connection (``pg_read_binary_file``, so it
  needs a superuser). Every statement a worker's connection sends is one line
  there, ``BEGIN``, ``COMMIT`` and ``LISTEN`` included; the transactions are
  counted from the same lines (a statement outside ``BEGIN ... COMMIT`` is one) and,
  as figure 11 does, from ``pg_stat_database`` (``xact_commit + xact_rollback``).
  Each log line names the server process; the worker's statement census
  (:mod:`tests.benchmarks.census`) knows which thread opened the connection of each
  server process, so the statements are grouped by thread and by the shape of
  their text (literals replaced by ``?``). The window is ``scale_idle_window``
  seconds (60: every periodic duty of an idle worker falls into it at least once)
  starting ``scale_idle_settle`` seconds after the worker's start-up banner; the
  start-up's statements are counted apart.
- **Figure 14**, drains by 4, 16 and 32 worker processes (``worker --burst
  --concurrency 1 --processes P``, as figure 2) of the same ``scale_jobs`` no-op
  jobs, the process counts in a rotating order each round. Besides the rate (first
  claim to last completion, and the steady rate between the 10th and 90th
  percentile of finish times): while the workers run, the suite samples the
  server every 0.2 s from a connection to another database (``pg_stat_activity``
  of the benchmark database: connections, active backends, backends waiting for a
  heavyweight lock, their wait events; ``pg_locks`` not granted); around the drain
  it reads ``pg_stat_database`` (transactions, deadlocks) and, where the server's
  log is readable, turns on ``log_lock_waits`` for the database and counts the
  lock waits longer than ``deadlock_timeout`` (1 s). Each worker process counts
  its statements (the census, one file per process): claim statements (the main
  thread's statements with ``SKIP LOCKED``, those that found nothing included; jobs
  per claim is the jobs over them), rescue passes (the reads
  of expired leases), every statement per job. Before each drain the suite checks
  that the server has the connections for it (about ``CONNECTIONS_PER_PROCESS``
  per process) and skips that process count with an error if not, instead of
  starving other users of the server.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCALE_FIGURES = {
    "figure13": "idle worker, LISTEN vs polling: statements/s and transactions/s it sends",
    "figure14": "drain no-op jobs with 4 / 16 / 32 worker processes (jobs/s); lock waits",
}
#: Figure 13's modes: (label, worker environment).
IDLE_MODES: dict[str, tuple[str, dict[str, str]]] = {
    "listen": ("LISTEN/NOTIFY (default)", {}),
    "poll": ("polling (DBQ_LISTEN_DATABASE = None)", {"BENCH_LISTEN_DATABASE": ""}),
}
#: Connections to plan for per ``worker --burst --concurrency 1`` process: its main
#: thread, completer, heartbeat and watchdog (the 4 measured with no-op jobs), and the
#: runner's should its task use the database; the ``--processes`` supervisor holds one.
CONNECTIONS_PER_PROCESS = 5
#: The process counts whose keys the JSON summary knows (quick runs use 4 and 8).
PROCESS_COUNTS = (4, 8, 16, 32)
SAMPLE_SECONDS = 0.2
DRAIN_KEYS = ("rate", "steady_rate", "wall_rate", "jobs_per_claim", "claim_statements_per_1000",
              "statements_per_job", "tx_per_job", "peak_connections", "lock_wait_share",
              "max_lock_waiters", "deadlocks", "rescue_passes", "long_lock_waits")
IDLE_KEYS = ("statements_per_s", "tx_per_s", "tx_per_s_stat", "connections",
             "census_statements_per_s", "startup_statements")
SCALE_KEYS = (
    *(f"{mode}_{key}" for mode in IDLE_MODES for key in IDLE_KEYS),
    *(f"p{p}_{key}" for p in PROCESS_COUNTS for key in DRAIN_KEYS),
)


class LogUnavailable(RuntimeError):
    """The server's log cannot be read over the connection."""


class ServerLog:
    """PostgreSQL's server log, read over a superuser connection (``admin``, autocommit).

    ``path`` as the server sees it; by default ``pg_current_logfile()`` (the logging
    collector's file), else Debian's ``/var/log/postgresql/postgresql-<cluster>.log``
    (the server's stderr).
    """

    def __init__(self, admin: Any, path: str | None = None) -> None:
        self.admin = admin
        self.path = path or self._find()
        prefix = admin.execute("SHOW log_line_prefix").fetchone()[0]
        self.pattern = line_pattern(prefix)
        try:
            self.size()
        except Exception as exc:
            raise LogUnavailable(f"cannot read the server log {self.path}: {exc}") from exc

    def _find(self) -> str:
        current = self.admin.execute("SELECT pg_current_logfile()").fetchone()[0]
        if current:
            return current
        cluster = self.admin.execute("SHOW cluster_name").fetchone()[0]
        if cluster:
            return f"/var/log/postgresql/postgresql-{cluster.replace('/', '-')}.log"
        raise LogUnavailable("no logging collector and no cluster_name: pass --pg-log")

    def size(self) -> int:
        return int(self.admin.execute("SELECT size FROM pg_stat_file(%s)",
                                      [self.path]).fetchone()[0])

    def read(self, start: int, end: int) -> str:
        parts = []
        step = 4 << 20
        for offset in range(start, end, step):
            parts.append(self.admin.execute(
                "SELECT pg_read_binary_file(%s, %s, %s)",
                [self.path, offset, min(step, end - offset)]).fetchone()[0])
        return b"".join(bytes(p) for p in parts).decode("utf-8", "replace")

    def entries(self, text: str, database: str) -> list[tuple[int, str, str]]:
        """(server pid, level, message) of each entry of ``database`` in ``text``
        (a message's continuation lines start with a tab)."""
        out: list[tuple[int, str, str]] = []
        ours = False
        for line in text.split("\n"):
            if line.startswith("\t"):
                if ours:
                    pid, level, message = out[-1]
                    out[-1] = (pid, level, f"{message}\n{line[1:]}")
                continue
            match = self.pattern.match(line)
            ours = bool(match and match.group("db") == database)
            if ours:
                out.append((int(match.group("pid")), match.group("level"), match.group("msg")))
        return out


_PREFIX_ESCAPES = {"p": r"(?P<pid>\d+)", "d": r"(?P<db>.*?)", "q": "", "%": "%"}


def line_pattern(prefix: str) -> re.Pattern[str]:
    """A regular expression for the log lines written with ``log_line_prefix``
    ``prefix`` (which must show the process id, ``%p``, and the database, ``%d``)."""
    if "%p" not in prefix or "%d" not in prefix:
        raise LogUnavailable(f"log_line_prefix {prefix!r} does not show %p and %d")
    out, i = [], 0
    while i < len(prefix):
        if prefix[i] != "%":
            out.append(re.escape(prefix[i]))
            i += 1
            continue
        i += 1
        while i < len(prefix) and prefix[i] in "-0123456789":  # a padding, as in %-10u
            i += 1
        code = prefix[i] if i < len(prefix) else "%"
        out.append(_PREFIX_ESCAPES.get(code, r".*?"))
        i += 1
    return re.compile("^" + "".join(out) + r"(?P<level>[A-Z0-9]+):  (?P<msg>.*)$")


_STATEMENT = re.compile(r"^(?:statement|execute [^:]*): (.*)$", re.S)
_STRING = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![\w.\"$])-?\d+(?:\.\d+)?(?![\w\"])")
_LIST = re.compile(r"\(\s*'?\?'?(?:\s*,\s*'?\?'?)+\s*\)")
_SPACES = re.compile(r"\s+")


def statement_of(message: str) -> str | None:
    """The SQL of a ``log_statement`` message (simple or extended protocol), else None."""
    match = _STATEMENT.match(message)
    return match.group(1) if match else None


def shape(sql: str) -> str:
    """The statement's text with its literals (and bound parameters) replaced by ``?``
    and lists of them by ``(?, ...)``: statements that differ only in values match."""
    text = _STRING.sub("'?'", sql)
    text = re.sub(r"\$\d+", "?", text)
    text = _NUMBER.sub("?", text)
    text = _SPACES.sub(" ", text).strip()
    return _LIST.sub("(?, ...)", text)


def transactions(statements: list[str]) -> int:
    """The transactions a sequence of statements of one session made: a ``BEGIN ...
    COMMIT``/``ROLLBACK`` block is one, any statement outside a block is one."""
    count, block = 0, False
    for sql in statements:
        head = sql.lstrip().upper()
        if head.startswith(("BEGIN", "START TRANSACTION")):
            count += 1
            block = True
        elif head.startswith(("COMMIT", "END", "ABORT")) or (
                head.startswith("ROLLBACK") and not head.startswith("ROLLBACK TO")):
            if not block:
                count += 1  # the block began before the window: count it here
            block = False
        elif not block:
            count += 1
    return count


def _database_stats(admin: Any, name: str) -> dict[str, int]:
    admin.execute("SELECT pg_stat_clear_snapshot()")
    row = admin.execute(
        "SELECT xact_commit, xact_rollback, deadlocks, tup_updated, tup_returned, "
        "tup_fetched FROM pg_stat_database WHERE datname = %s", [name]).fetchone()
    keys = ("xact_commit", "xact_rollback", "deadlocks", "tup_updated", "tup_returned",
            "tup_fetched")
    return dict(zip(keys, (int(v) for v in row), strict=True))


def _thread_of(pid: int, backends: dict[str, str]) -> str:
    return backends.get(str(pid), f"server process {pid} (not the worker's)")


class ServerSampler:
    """While entered: samples ``pg_stat_activity`` and ``pg_locks`` of the database
    every :data:`SAMPLE_SECONDS` from a connection to another database, and reads
    ``pg_stat_database`` when entered and when left."""

    def __init__(self, dsn: str, name: str, before: Callable[[], None]) -> None:
        self.dsn = dsn
        self.name = name
        self.before_enter = before
        self.samples: list[dict[str, Any]] = []
        self.waits: Counter[str] = Counter()
        self._stop = threading.Event()
        self.summary: dict[str, Any] = {}

    def __enter__(self) -> ServerSampler:
        import psycopg

        self.before_enter()  # the suite's connection closed: its statistics are flushed
        self.admin = psycopg.connect(self.dsn, autocommit=True)
        self.sampler = psycopg.connect(self.dsn, autocommit=True)
        self.stats_before = _database_stats(self.admin, self.name)
        self.began = time.monotonic()
        self.thread = threading.Thread(target=self._sample, name="bench-sampler", daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        query = (
            "SELECT a.state, a.wait_event_type, a.wait_event, count(*), "
            "(SELECT count(*) FROM pg_locks l WHERE NOT l.granted AND l.pid IN "
            " (SELECT pid FROM pg_stat_activity WHERE datname = %s)) "
            "FROM pg_stat_activity a WHERE a.datname = %s AND a.pid <> pg_backend_pid() "
            "GROUP BY 1, 2, 3")
        while not self._stop.wait(SAMPLE_SECONDS):
            try:
                rows = self.sampler.execute(query, [self.name, self.name]).fetchall()
            except Exception as exc:  # a sample lost is not a reason to sink the run
                self.samples.append({"error": str(exc)})
                continue
            sample = {"t": time.monotonic() - self.began, "connections": 0, "active": 0,
                      "lock_waiters": 0, "idle_in_transaction": 0,
                      "not_granted": rows[0][4] if rows else 0}
            for state, wait_type, wait_event, count, _ in rows:
                sample["connections"] += count
                if state == "active":
                    sample["active"] += count
                    self.waits[f"{wait_type}:{wait_event}" if wait_type else "CPU"] += count
                if state and state.startswith("idle in transaction"):
                    sample["idle_in_transaction"] += count
                if wait_type == "Lock":
                    sample["lock_waiters"] += count
            self.samples.append(sample)

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        self.sampler.close()
        time.sleep(0.5)  # the workers' server processes end (and flush their statistics)
        after = _database_stats(self.admin, self.name)
        self.admin.close()
        delta = {key: after[key] - self.stats_before[key] for key in after}
        good = [s for s in self.samples if "error" not in s]
        # Only the samples with workers connected: the start-up and the exit are not
        # the drain.
        busy = [s for s in good if s["active"]] or good
        active = sum(s["active"] for s in busy)
        waiting = sum(s["lock_waiters"] for s in busy)
        self.summary = {
            "samples": len(good), "busy_samples": len(busy),
            "peak_connections": max((s["connections"] for s in good), default=0),
            "mean_active": active / len(busy) if busy else 0.0,
            "lock_wait_share": waiting / active if active else 0.0,
            "samples_with_lock_wait": sum(1 for s in busy if s["lock_waiters"]),
            "max_lock_waiters": max((s["lock_waiters"] for s in busy), default=0),
            "max_not_granted": max((s["not_granted"] for s in busy), default=0),
            "max_idle_in_transaction": max((s["idle_in_transaction"] for s in busy),
                                           default=0),
            "wait_events": dict(self.waits.most_common(12)),
            "database_delta": delta,
        }


class ScaleFigures:
    """Figures 13 and 14, mixed into the suite."""

    # Provided by the Suite.
    sizes: dict[str, Any]
    workdir: Path
    pg_log: str | None
    rounds: Callable[..., None]
    drain: Callable[..., dict[str, Any]]
    dbq_clear: Callable[..., None]
    dbq_worker: Callable[..., Any]

    def _admin_dsn(self) -> str:
        from tests.benchmarks.suite import PG

        return f"host={PG['host']} port={PG['port']} user={PG['user']} dbname=postgres"

    # --- figure 13: one idle worker, LISTEN vs polling ----------------------------------------

    def figure13(self) -> None:
        from tests.benchmarks.suite import say

        def measure(system: str, run: int) -> dict[str, Any]:
            out: dict[str, Any] = {}
            modes = list(IDLE_MODES) if run % 2 == 0 else list(reversed(IDLE_MODES))
            for mode in modes:
                result = self.idle_scale(mode, run)
                out[mode] = result
                for key in IDLE_KEYS:
                    out[f"{mode}_{key}"] = result[key]
                say(f"figure13 {mode}: {result['statements_per_s']:.2f} statements/s, "
                    f"{result['tx_per_s']:.2f} tx/s ({result['tx_per_s_stat']:.2f} by "
                    f"pg_stat_database) over {result['window']:.0f} s, "
                    f"{result['connections']} connections, LISTEN sent: {result['listens']}; "
                    + "; ".join(f"{t} {v:.2f}/s" for t, v in result["by_thread"].items()))
                if result.get("note"):
                    say(f"figure13 {mode}: NOTE {result['note']}")
            out["line"] = ", ".join(
                f"{mode} {out[f'{mode}_statements_per_s']:.2f} st/s "
                f"{out[f'{mode}_tx_per_s']:.2f} tx/s" for mode in IDLE_MODES)
            return out

        self.rounds("figure13", measure, ["dbq"])

    def idle_scale(self, mode: str, run: int) -> dict[str, Any]:
        import psycopg
        from django.db import connections

        from tests.benchmarks import census
        from tests.benchmarks.features import _backends, _transactions
        from tests.benchmarks.suite import PG_DATABASES, scan_logs, wait_for_text

        name = PG_DATABASES["dbq"]
        window = float(self.sizes["scale_idle_window"])
        poll = self.sizes["scale_poll_interval"]
        self.dbq_clear()
        connections.close_all()  # nothing but the worker may be connected to the database
        path = self.workdir / f"census-idle-{mode}-{run}.json"
        label, env = IDLE_MODES[mode]
        with psycopg.connect(self._admin_dsn(), autocommit=True) as admin:
            log = ServerLog(admin, self.pg_log)
            others = _backends(admin, name)
            if others:
                raise RuntimeError(f"{others} other connection(s) to {name}")
            admin.execute(f'ALTER DATABASE "{name}" SET log_statement = \'all\'')
            try:
                at_start = log.size()
                proc = self.dbq_worker("--poll-interval", str(poll),
                                       env={**env, "BENCH_STATEMENT_CENSUS": str(path)})
                try:
                    wait_for_text(proc, "starting", 60)
                    time.sleep(self.sizes["scale_idle_settle"])
                    offset_before, tx_before = log.size(), _transactions(admin, name)
                    census_before = census.read(str(path))
                    began = time.monotonic()
                    time.sleep(window)
                    offset_after, tx_after = log.size(), _transactions(admin, name)
                    census_after = census.read(str(path))
                    seconds = time.monotonic() - began
                    backends = admin.execute(
                        "SELECT pid, state, wait_event FROM pg_stat_activity WHERE datname = %s "
                        "AND pid <> pg_backend_pid()", [name]).fetchall()
                finally:
                    proc.stop()
            finally:
                admin.execute(f'ALTER DATABASE "{name}" RESET log_statement')
            startup = log.entries(log.read(at_start, offset_before), name)
            inside = log.entries(log.read(offset_before, offset_after), name)
        threads = census_after.get("backends", {})
        census_seconds, census_counts = census.difference(census_before, census_after)
        by_pid: dict[int, list[str]] = {}
        for pid, _, message in inside:
            sql = statement_of(message)
            if sql is not None:
                by_pid.setdefault(pid, []).append(sql)
        shapes: Counter[tuple[str, str]] = Counter()
        by_thread: Counter[str] = Counter()
        for pid, statements in by_pid.items():
            thread = _thread_of(pid, threads)
            by_thread[thread] += len(statements)
            for sql in statements:
                shapes[(thread, shape(sql))] += 1
        startup_statements = [statement_of(m) for _, _, m in startup]
        listens = any(sql and sql.strip().upper().startswith("LISTEN")
                      for sql in startup_statements + [s for v in by_pid.values() for s in v])
        statements = sum(by_thread.values())
        wake = re.search(r"wake=(\S+)", proc.output())
        result: dict[str, Any] = {
            "mode": label, "poll_interval": poll, "window": seconds,
            "statements": statements, "statements_per_s": statements / seconds,
            "transactions": sum(transactions(v) for v in by_pid.values()),
            "tx_stat": tx_after - tx_before, "tx_per_s_stat": (tx_after - tx_before) / seconds,
            "connections": len(backends),
            "connection_threads": sorted(_thread_of(pid, threads) for pid, _, _ in backends),
            "listens": listens, "wake": wake.group(1) if wake else None,
            "startup_statements": sum(1 for s in startup_statements if s is not None),
            "census_statements_per_s": sum(census_counts.values()) / census_seconds,
            "by_thread": {t: n / seconds for t, n in by_thread.most_common()},
            "top": [{"thread": thread, "statement": sql[:400], "calls": calls,
                     "per_minute": 60 * calls / seconds}
                    for (thread, sql), calls in shapes.most_common(20)],
            "log": scan_logs([proc]),
        }
        result["tx_per_s"] = result["transactions"] / seconds
        if mode == "poll" and listens:
            result["note"] = (
                "the worker sent LISTEN although DBQ_LISTEN_DATABASE was None: this "
                "django_dbq does not know the setting yet, so 'poll' measured the default "
                f"(LISTEN plus the --poll-interval {poll:g} s claim)")
        return result

    # --- figure 14: drains by many processes --------------------------------------------------

    def figure14(self) -> None:
        from tests.benchmarks.suite import say

        counts = list(self.sizes["scale_processes"])

        def measure(system: str, run: int) -> dict[str, Any]:
            out: dict[str, Any] = {}
            shift = run % len(counts)
            order = counts[shift:] + counts[:shift]
            for processes in order:
                try:
                    result = self.scale_drain(processes, run)
                except Exception as exc:
                    result = {"error": f"{type(exc).__name__}: {exc}"}
                out[f"p{processes}"] = result
                if "error" in result:
                    say(f"figure14 {processes} processes: FAILED {result['error'][:300]}")
                    continue
                for key in DRAIN_KEYS:
                    if isinstance(result.get(key), (int, float)):
                        out[f"p{processes}_{key}"] = result[key]
                say(f"figure14 {processes} processes: {result['rate']:,.0f} jobs/s (steady "
                    f"{result.get('steady_rate') or 0:,.0f}), {result['jobs_per_claim']:.0f} "
                    f"jobs/claim, {result['statements_per_job']:.3f} statements/job, "
                    f"{result['tx_per_job']:.3f} tx/job, peak {result['peak_connections']} "
                    f"connections, lock waits {100 * result['lock_wait_share']:.1f}% of "
                    f"active (max {result['max_lock_waiters']}), {result['deadlocks']} "
                    f"deadlocks, {result['rescue_passes']} rescue passes")
            out["line"] = ", ".join(
                f"{p}: {out[f'p{p}_rate']:,.0f}/s" if f"p{p}_rate" in out else f"{p}: ERROR"
                for p in counts)
            return out

        self.rounds("figure14", measure, ["dbq"])

    def _check_capacity(self, admin: Any, processes: int) -> int:
        need = processes * CONNECTIONS_PER_PROCESS + 4
        limit = int(admin.execute("SHOW max_connections").fetchone()[0])
        used = int(admin.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                                 "'client backend'").fetchone()[0])
        if used + need > limit:
            raise RuntimeError(
                f"{processes} processes need about {need} connections; the server allows "
                f"{limit} and {used} are in use: skipped, so as not to starve the server's "
                "other users (use --pg with a server that allows more)")
        return need

    def scale_drain(self, processes: int, run: int) -> dict[str, Any]:
        import psycopg
        from django.db import connections

        from django_dbq.models import Job
        from tests.benchmarks import census
        from tests.benchmarks.suite import PG_DATABASES

        name = PG_DATABASES["dbq"]
        n = self.sizes["scale_jobs"]
        folder = self.workdir / f"census-drain-p{processes}-{run}"
        folder.mkdir()
        env = {"BENCH_STATEMENT_CENSUS": str(folder / "{pid}.json")}
        with psycopg.connect(self._admin_dsn(), autocommit=True) as admin:
            need = self._check_capacity(admin, processes)
            try:
                log: ServerLog | None = ServerLog(admin, self.pg_log)
            except LogUnavailable:
                log = None
            if log is not None:
                admin.execute(f'ALTER DATABASE "{name}" SET log_lock_waits = on')
                at_start = log.size()
            try:
                sampler = ServerSampler(self._admin_dsn(), name, connections.close_all)
                result = self.drain("dbq", n, processes, env=env, watch=sampler)
            finally:
                if log is not None:
                    admin.execute(f'ALTER DATABASE "{name}" RESET log_lock_waits')
            entries = None
            if log is not None:
                entries = log.entries(log.read(at_start, log.size()), name)
        if result.get("error"):
            raise RuntimeError(result["error"])
        counts: Counter[str] = Counter()
        threads: dict[str, str] = {}
        for path in folder.glob("*.json"):
            dumped = census.read(str(path))
            counts.update(dumped["counts"])
            threads.update(dumped.get("backends", {}))
        waits = long_waits(entries, threads) if entries is not None else None
        by_thread: Counter[str] = Counter()
        claim_statements = rescue_passes = 0
        for key, calls in counts.items():
            thread, _, sql = key.partition(" | ")
            by_thread[re.sub(r"-\d+$", "-N", thread)] += calls
            if thread == "MainThread" and "SKIP LOCKED" in sql.upper():
                claim_statements += calls
            # The rescue pass's read of expired leases: on the heartbeat thread before
            # the housekeeping moved to the main thread, on the main thread since.
            if thread in ("dbq-heartbeat", "MainThread") and sql.startswith("SELECT") and \
                    "lease_expires_at" in sql:
                rescue_passes += calls
        s = sampler.summary
        delta = s["database_delta"]
        statements = sum(counts.values())
        # A claim leaves started_at empty (the runner's start is written later), so the
        # drain's count of distinct started_at values is not a count of claims: the
        # census counts the claim statements (those that found nothing included).
        result["distinct_started_at"] = result.pop("claims", None)
        result.update(
            processes=processes, connections_needed=need,
            claim_statements=claim_statements,
            jobs_per_claim=n / claim_statements if claim_statements else None,
            claim_statements_per_1000=1000 * claim_statements / n,
            statements=statements, statements_per_job=statements / n,
            statements_by_thread=dict(by_thread.most_common()),
            top_statements=[{"statement": k[:300], "calls": v}
                            for k, v in counts.most_common(10)],
            rescue_passes=rescue_passes,
            rescued_jobs=Job.objects.exclude(errors=[]).count(),
            transactions=delta["xact_commit"] + delta["xact_rollback"],
            tx_per_job=(delta["xact_commit"] + delta["xact_rollback"]) / n,
            rollbacks=delta["xact_rollback"], deadlocks=delta["deadlocks"],
            rows_updated_per_job=delta["tup_updated"] / n,
            long_lock_waits=waits["count"] if waits else None, long_waits=waits,
            server=s,
            **{k: s[k] for k in ("peak_connections", "lock_wait_share", "max_lock_waiters",
                                 "samples_with_lock_wait", "busy_samples", "mean_active")},
        )
        if result["rescued_jobs"]:
            result["note"] = f"{result['rescued_jobs']} job(s) carry an error: rescued"
        return result


def long_waits(entries: list[tuple[int, str, str]], threads: dict[str, str]) -> dict[str, Any]:
    """The lock waits longer than ``deadlock_timeout`` that ``log_lock_waits`` logged:
    how many, and which threads waited for which (a worker's threads by name, from the
    census's map of server processes), with what the waiter was doing (CONTEXT: locking
    or updating a row) and the first words of its statement."""
    def thread(pid: str) -> str:
        return re.sub(r"-\d+$", "-N", threads.get(pid, "other"))

    pairs: Counter[str] = Counter()
    statements: Counter[str] = Counter()
    contexts: Counter[str] = Counter()
    count = deadlocks = 0
    # A wait is logged as LOG "still waiting", DETAIL (the holder), CONTEXT, STATEMENT.
    pending: dict[int, str] = {}
    for pid, level, message in entries:
        if level == "ERROR" and "deadlock detected" in message:
            deadlocks += 1
        if "still waiting for" in message:
            count += 1
            pending[pid] = "detail"
        elif level == "DETAIL" and pending.get(pid) == "detail":
            holder = re.search(r"Process holding the locks?: (\d+)", message)
            pairs[f"{thread(str(pid))} waits for "
                  f"{thread(holder.group(1)) if holder else '?'}"] += 1
            pending[pid] = "statement"
        elif level == "CONTEXT" and pending.get(pid) == "statement":
            contexts[f"{thread(str(pid))}: {shape(message)}"] += 1
        elif level == "STATEMENT" and pending.pop(pid, None):
            statements[f"{thread(str(pid))}: {shape(message)[:60]}"] += 1
        else:
            pending.pop(pid, None)
    return {"count": count, "deadlocks": deadlocks, "pairs": dict(pairs.most_common()),
            "contexts": dict(contexts.most_common(8)),
            "statements": dict(statements.most_common(8))}


# --- the printed tables -------------------------------------------------------------------------


def scale_cell(figure: str, data: dict[str, Any]) -> str | None:
    """The main table's cell of figures 13 and 14 (None: not one of them, or no data)."""
    from tests.benchmarks.suite import fmt_range

    if figure == "figure13" and "listen_statements_per_s" in data:
        return "; ".join(
            f"{mode}: {fmt_range(data.get(f'{mode}_statements_per_s'), '{:.2f}')} statements/s, "
            f"{fmt_range(data.get(f'{mode}_tx_per_s'), '{:.2f}')} tx/s" for mode in IDLE_MODES)
    if figure == "figure14":
        parts = [f"{p}: {fmt_range(data[f'p{p}_rate'])}" for p in PROCESS_COUNTS
                 if f"p{p}_rate" in data]
        return "; ".join(parts) if parts else None
    return None


def scale_details(report: dict[str, Any]) -> str:
    """Figure 13's and 14's own tables (medians of the runs), for the printed report."""
    from tests.benchmarks.suite import fmt_range

    figures = report.get("figures", {})
    blocks = []
    idle = figures.get("figure13", {}).get("systems", {}).get("dbq")
    if idle and "listen_statements_per_s" in idle:
        rows = [["mode", "statements/s", "tx/s (log)", "tx/s (pg_stat_database)",
                 "connections", "LISTEN sent", "by thread (statements/s, last run)"]]
        last = [r for r in idle["runs"] if "error" not in r]
        for mode, (label, _) in IDLE_MODES.items():
            run = last[-1][mode] if last else {}
            rows.append([
                label, fmt_range(idle.get(f"{mode}_statements_per_s"), "{:.2f}"),
                fmt_range(idle.get(f"{mode}_tx_per_s"), "{:.2f}"),
                fmt_range(idle.get(f"{mode}_tx_per_s_stat"), "{:.2f}"),
                fmt_range(idle.get(f"{mode}_connections"), "{:.0f}"),
                str(run.get("listens")),
                ", ".join(f"{t} {v:.2f}" for t, v in run.get("by_thread", {}).items()),
            ])
        blocks.append("figure 13, one idle worker\n" + _text_table(rows))
        for mode in IDLE_MODES:
            if last:
                top = last[-1][mode]["top"]
                blocks.append(f"figure 13, {mode}: statements of the last run's window\n"
                              + "\n".join(f"  {t['per_minute']:6.1f}/min  {t['thread']:<14} "
                                          f"{t['statement'][:110]}" for t in top))
    drain = figures.get("figure14", {}).get("systems", {}).get("dbq")
    if drain:
        rows = [["processes", "jobs/s", "steady jobs/s", "jobs/claim st.", "claim st./1000 jobs",
                 "statements/job", "tx/job", "peak conns", "lock-wait share", "max waiters",
                 "deadlocks", "waits > 1 s", "rescue passes"]]
        for p in PROCESS_COUNTS:
            if f"p{p}_rate" not in drain:
                continue

            def f(key: str, fmt: str = "{:,.0f}", p: int = p) -> str:
                return fmt_range(drain.get(f"p{p}_{key}"), fmt)

            rows.append([str(p), f("rate"), f("steady_rate"), f("jobs_per_claim"),
                         f("claim_statements_per_1000", "{:.1f}"),
                         f("statements_per_job", "{:.3f}"), f("tx_per_job", "{:.3f}"),
                         f("peak_connections"), f("lock_wait_share", "{:.3f}"),
                         f("max_lock_waiters"), f("deadlocks"), f("long_lock_waits"),
                         f("rescue_passes")])
        blocks.append("figure 14, drains by many processes (median [min-max])\n"
                      + _text_table(rows))
        waits: dict[int, Counter[str]] = {}
        for run in drain.get("runs", []):
            for p in PROCESS_COUNTS:
                logged = run.get(f"p{p}", {}).get("long_waits") or {}
                for key in ("pairs", "contexts"):
                    waits.setdefault(p, Counter()).update(logged.get(key, {}))
        lines = [f"  {p} processes: {n} x {what}" for p, found in waits.items()
                 for what, n in found.most_common()]
        if lines:
            blocks.append("figure 14, lock waits over 1 s (log_lock_waits), all runs\n"
                          + "\n".join(lines))
    return "\n\n".join(blocks)


def _text_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)

