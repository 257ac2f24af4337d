"""A chaos run: real workers killed, stopped and cut off while they run jobs.

:func:`run_chaos` enqueues ``jobs`` jobs of the ``chaos`` job type (see
:mod:`tests.chaos.tasks`: each execution of the task is a row with its worker's
pid and its start and end time), runs ``workers`` ``manage.py worker``
processes, SIGKILLs a random one every ``kill_every`` seconds and starts a new
one, optionally injects a database fault every ``fault_every`` seconds, waits
(up to a deadline) until every job is COMPLETED and then checks the rows:

- completed: every job COMPLETED; lost: jobs that are not (missing, FAILED,
  or still waiting at the deadline);
- stuck: jobs left PROCESSING with a lease that expired longer ago than a
  rescue pass takes;
- overlaps: two executions of one job that ran at the same time (an execution
  cut short by a SIGKILL ends at the kill);
- duplicates: jobs executed more than once. Each earlier execution must be
  explained: its worker was killed (mid-run, or after the task but before the
  completion was written), or, in fault runs, its worker lost the job's lease
  while cut off from the database. Unexplained re-executions fail the run.

:func:`run_shutdown` checks graceful shutdown under load: SIGTERM to every
worker while tasks run; within the grace period every worker exits and every job
is COMPLETED or back to waiting with its attempt not spent; new workers then
finish the run.

Both use the database Django is configured with (already migrated) and return a
JSON-able summary whose ``violations`` list is empty when every property held.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import DatabaseError, InterfaceError, connection
from django.db.models import Count
from django.utils import timezone

from django_dbq.models import Job
from tests.models import Execution

ROOT = Path(__file__).resolve().parent.parent.parent
JOB_NAME = "chaos"
ONCE_JOB_NAME = "chaos_once"
# "chaos" with "max_running": 3 (tests/settings.py): the run checks the limit held.
LIMITED_JOB_NAME = "chaos_limited"
LIMITED_MAX_RUNNING = 3
ENQUEUE_BATCH = 1000


@dataclasses.dataclass
class Config:
    jobs: int = 2000
    workers: int = 3
    concurrency: int = 4
    kill_every: float = 2.0
    max_kills: int | None = None
    lease: float = 3.0
    rescue_interval: float = 0.5
    task_ms: tuple[float, float] = (0.0, 10.0)
    touch_share: float = 0.5  # share of jobs whose task changes the workspace
    fault: str | None = None
    fault_every: float = 5.0
    fault_first: float = 2.0
    # Seconds over which the second half of the jobs is enqueued (0: at once).
    enqueue_over: float = 0.0
    max_faults: int | None = None
    sqlite_lock_hold: float = 5.0
    sqlite_busy_timeout: float | None = None
    deadline: float = 300.0
    grace: float = 10.0
    poll_interval: float = 0.2
    seed: int | None = None
    log_dir: Path = Path("/tmp/dbq-chaos")
    # Shutdown runs: SIGTERM every worker this long after the start.
    sigterm_after: float = 3.0
    # "chaos" allows 1000 attempts; "chaos_once" has the default max_attempts of 1, so
    # every charged kill fails a job: the run then checks that only jobs whose task
    # had started were failed.
    job_name: str = JOB_NAME

    @property
    def once(self) -> bool:
        return self.job_name == ONCE_JOB_NAME


class Worker:
    """One ``manage.py worker`` subprocess, its log in a file."""

    def __init__(self, number: int, config: Config, env: dict[str, str]) -> None:
        self.number = number
        self.log_path = config.log_dir / f"worker-{number}.log"
        self._log = self.log_path.open("wb")
        args = [
            sys.executable,
            str(ROOT / "manage.py"),
            "worker",
            "--concurrency",
            str(config.concurrency),
            "--poll-interval",
            str(config.poll_interval),
            "--grace",
            str(config.grace),
        ]
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.pid = self.proc.pid
        self.started = time.time()
        self.ended: float | None = None
        self.how = ""  # "killed", "stopped" or "died"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> float:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.ended = time.time()  # the process ran no later than this
        self.how = "killed"
        self.close()
        return self.ended

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if not self._log.closed:
            self._log.close()


def worker_env(config: Config) -> dict[str, str]:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["DBQ_DATABASE_NAME"] = str(connection.settings_dict["NAME"])
    env["DBQ_LEASE_SECONDS"] = str(config.lease)
    env["DBQ_RESCUE_INTERVAL"] = str(config.rescue_interval)
    if config.sqlite_busy_timeout is not None:
        env["DBQ_SQLITE_BUSY_TIMEOUT"] = str(config.sqlite_busy_timeout)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"  # a hung worker's threads are dumped on SIGABRT
    return env


def _retry(action: Callable[[], Any], *, seconds: float = 120.0) -> Any:
    """Run a query of the controller, riding out the faults it injects itself."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return action()
        except (DatabaseError, InterfaceError):
            if time.monotonic() > deadline:
                raise
            connection.close()
            time.sleep(0.3)


def state_counts() -> dict[str, int]:
    return dict(Job.objects.order_by().values_list("state").annotate(n=Count("pk")))


def overdue_count(config: Config) -> int:
    """PROCESSING jobs whose lease expired longer ago than a rescue pass takes."""
    cutoff = timezone.now() - timezone.timedelta(seconds=config.rescue_interval + 2.0)
    return Job.objects.processing().filter(lease_expires_at__lt=cutoff).count()


def enqueue(count: int, config: Config, rng: random.Random) -> None:
    low, high = config.task_ms
    Job.objects.bulk_create_jobs(
        [
            {
                "name": config.job_name,
                "workspace": {
                    "min_ms": low,
                    "max_ms": high,
                    "touch": rng.random() < config.touch_share,
                },
                "priority": rng.choice((0, 0, 0, 1)),
            }
            for _ in range(count)
        ]
    )


def _log_counts(workers: list[Worker]) -> dict[str, int]:
    """How often the workers logged each kind of trouble."""
    patterns = {
        "database_unavailable": "Database unavailable",
        "heartbeat_lost_db": "Heartbeat could not reach the database",
        "renewals_failed": "Could not renew leases",
        "completions_retried": "Could not save completed jobs",
        "save_retried": "Database error while saving a job",
        "listen_lost": "LISTEN connection lost",
        "jobs_rescued": "Job rescued",
        "lost_claims_released": "claimed by a query whose reply was lost",
        "outcome_discarded": "Job outcome discarded",
        "completions_not_held": "were no longer held by this worker",
        "gave_up": "Giving up on a database action",
        "could_not_record": "Could not record the outcome",
        "job_failed": "Job failed",
        "traceback": "Traceback (most recent call last)",
    }
    counts: Counter[str] = Counter()
    for worker in workers:
        text = worker.output()
        for key, pattern in patterns.items():
            counts[key] += text.count(pattern)
    return dict(counts)


def analyse(
    config: Config,
    workers: list[Worker],
    *,
    fault_windows: list[tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """Check the executions against the workers' lives; see the module docstring."""
    by_pid = {w.pid: w for w in workers}
    rows = list(Execution.objects.values_list("job_id", "pid", "started", "finished"))
    per_job: dict[Any, list[tuple[int, float, float]]] = defaultdict(list)
    for job_id, pid, started, finished in rows:
        per_job[job_id].append((pid, started, finished))
    overlaps: list[dict[str, Any]] = []
    unexplained: list[dict[str, Any]] = []
    causes: Counter[str] = Counter()
    unfinished_live = 0
    double_completed = 0
    completed_ids = set(Job.objects.filter(state=Job.STATES.COMPLETED).values_list("pk", flat=True))
    never_finished = len([pk for pk in completed_ids if not any(r[2] for r in per_job.get(pk, ()))])
    spans: list[tuple[float, float]] = []
    for job_id, runs in per_job.items():
        runs.sort(key=lambda r: r[1])
        ends = []
        for pid, started, finished in runs:
            worker = by_pid.get(pid)
            if finished:
                ends.append(finished)
            elif worker is not None and worker.how in ("killed", "stopped") and worker.ended:
                ends.append(worker.ended)
            else:
                unfinished_live += 1
                ends.append(started)
        spans += [(run[1], end) for run, end in zip(runs, ends, strict=True)]
        for i in range(len(runs) - 1):
            if ends[i] > runs[i + 1][1]:
                overlaps.append(
                    {"job": str(job_id), "first": runs[i], "second": runs[i + 1], "end": ends[i]}
                )
        if sum(1 for r in runs if r[2]) > 1:
            double_completed += 1
        for pid, started, finished in runs[:-1]:
            worker = by_pid.get(pid)
            if worker is not None and worker.how == "killed":
                causes[
                    "killed mid-run" if not finished else "killed before completion written"
                ] += 1
            elif worker is not None and worker.how == "stopped":
                # Handed back when the grace period ended: mid-task, or just after the
                # task returned but before its outcome was written.
                causes["released at shutdown past the grace period"] += 1
            elif fault_windows and any(
                a - config.lease - 2 <= started <= b + config.lease for a, b in fault_windows
            ):
                causes["lease lost during a database fault"] += 1
            else:
                unexplained.append({"job": str(job_id), "runs": runs})
    return {
        "executions": len(rows),
        "jobs_executed": len(per_job),
        "jobs_executed_more_than_once": sum(1 for r in per_job.values() if len(r) > 1),
        "jobs_completed_more_than_once": double_completed,
        "re_execution_causes": dict(causes),
        "unexplained_re_executions": len(unexplained),
        "unexplained_examples": unexplained[:5],
        "overlaps": len(overlaps),
        "overlap_examples": overlaps[:5],
        "unfinished_executions_of_live_workers": unfinished_live,
        "completed_without_a_finished_execution": never_finished,
        "most_running_at_once": _most_at_once(spans),
    }


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of executions running at one instant (a killed worker's
    run ends when the worker died)."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def _worker(workers: list[Worker], pid: int) -> Worker:
    return next(w for w in workers if w.pid == pid)


def _abort(worker: Worker) -> None:
    """End a hung worker with SIGABRT, so that its log shows where each thread was."""
    worker.proc.send_signal(signal.SIGABRT)
    try:
        worker.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        worker.proc.kill()
        worker.proc.wait()


def _stop_all(workers: list[Worker], config: Config) -> dict[int, int | None]:
    """SIGTERM every live worker; wait for them; return their exit codes."""
    live = [w for w in workers if w.alive() and not w.how]
    for worker in live:
        worker.proc.send_signal(signal.SIGTERM)
    codes: dict[int, int | None] = {}
    for worker in live:
        try:
            codes[worker.pid] = worker.proc.wait(timeout=config.grace + 30)
        except subprocess.TimeoutExpired:
            _abort(worker)
            codes[worker.pid] = None
        worker.ended = time.time()
        worker.how = "stopped"
    for worker in workers:
        if worker.proc.poll() is None:  # never: every worker was killed or stopped
            worker.proc.kill()
            worker.proc.wait()
        worker.close()
    return codes


def _kill_leftovers(workers: list[Worker]) -> None:
    """After a run, or a run that raised: no worker process outlives it."""
    for worker in workers:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait()
        worker.close()


def run_chaos(config: Config, *, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the chaos run described by ``config``; see the module docstring."""
    workers: list[Worker] = []
    try:
        return _run_chaos(config, progress, workers)
    finally:
        _kill_leftovers(workers)


def run_shutdown(config: Config, *, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """SIGTERM every worker under load, check the rows, then let new workers finish."""
    workers: list[Worker] = []
    try:
        return _run_shutdown(config, progress, workers)
    finally:
        _kill_leftovers(workers)


def _run_chaos(
    config: Config, progress: Callable[[str], None], workers: list[Worker]
) -> dict[str, Any]:
    from tests.chaos import faults

    rng = random.Random(config.seed)
    config.log_dir.mkdir(parents=True, exist_ok=True)
    env = worker_env(config)
    Execution.objects.all().delete()
    Job.objects.all().delete()
    inject = None
    if config.fault:
        inject = faults.injector(
            config.fault,
            sqlite_path=str(connection.settings_dict["NAME"]),
            hold=config.sqlite_lock_hold,
        )

    # Half the jobs before the workers start, the rest while they run.
    first = config.jobs // 2
    enqueue(first, config, rng)
    to_enqueue = config.jobs - first
    workers += [Worker(n, config, env) for n in range(config.workers)]
    start = time.monotonic()
    started_at = time.time()
    next_kill = start + config.kill_every if config.kill_every else float("inf")
    # Faults start fault_first seconds after every first worker is up and running.
    next_fault = float("inf")
    first_workers = list(workers)
    fault_log: list[dict[str, Any]] = []
    fault_windows: list[tuple[float, float]] = []
    unexpected_exits: list[dict[str, Any]] = []
    kills = 0
    max_overdue = 0
    counts: dict[str, int] = {}
    finished = False
    next_report = start + 5
    while True:
        now = time.monotonic()
        if to_enqueue:
            batch = min(ENQUEUE_BATCH, to_enqueue)
            if config.enqueue_over:  # spread evenly: the run lasts at least that long
                share = min(1.0, (now - start) / config.enqueue_over)
                batch = min(
                    batch, int((config.jobs - first) * share) - (config.jobs - first - to_enqueue)
                )
            if batch > 0:
                _retry(lambda batch=batch: enqueue(batch, config, rng))
                to_enqueue -= batch
        counts = _retry(state_counts)
        done = counts.get(Job.STATES.COMPLETED, 0)
        if config.once:
            done += counts.get(Job.STATES.FAILED, 0)
        if not to_enqueue and done == config.jobs:
            finished = True
            break
        if now - start > config.deadline:
            break
        overdue = _retry(lambda: overdue_count(config))
        if not fault_windows or time.time() > fault_windows[-1][1] + config.lease + 5:
            max_overdue = max(max_overdue, overdue)
        for worker in workers:
            if not worker.how and not worker.alive():
                worker.how, worker.ended = "died", time.time()
                unexpected_exits.append(
                    {
                        "pid": worker.pid,
                        "code": worker.proc.returncode,
                        "log": worker.output()[-2000:],
                    }
                )
                workers.append(Worker(len(workers), config, env))
        if now >= next_kill and (config.max_kills is None or kills < config.max_kills):
            live = [w for w in workers if not w.how]
            victim = rng.choice(live)
            victim.kill()
            kills += 1
            workers.append(Worker(len(workers), config, env))
            next_kill = now + config.kill_every
        if (
            inject
            and next_fault == float("inf")
            and all(w.how or "starting:" in w.output() for w in first_workers)
        ):
            next_fault = now + config.fault_first
        if (
            inject
            and now >= next_fault
            and (config.max_faults is None or len(fault_log) < config.max_faults)
        ):
            at = time.time()
            what = inject()
            held = config.sqlite_lock_hold if config.fault == "sqlite-lock" else 0.0
            fault_windows.append((at, max(time.time(), at + held)))
            fault_log.append({"at": round(at - started_at, 2), "what": what})
            progress(f"  fault at {at - started_at:.1f}s: {what}")
            next_fault = time.monotonic() + config.fault_every
        if now >= next_report:
            progress(
                f"  {now - start:5.1f}s: {dict(sorted(counts.items()))} kills={kills} "
                f"faults={len(fault_log)}"
            )
            next_report = now + 5
        time.sleep(0.2)
    duration = time.monotonic() - start
    if isinstance(inject, faults.SqliteLock):
        inject.wait()
    # Jobs left PROCESSING with a lease long expired, measured after the last kill's
    # leases had time to expire and be rescued.
    time.sleep(0 if finished else config.lease + config.rescue_interval + 1)
    stuck = _retry(lambda: overdue_count(config))
    exit_codes = _stop_all(workers, config)
    counts = _retry(state_counts)
    total = _retry(lambda: Job.objects.count())
    checks = _retry(lambda: analyse(config, workers, fault_windows=fault_windows))
    completed = counts.get(Job.STATES.COMPLETED, 0)
    summary: dict[str, Any] = {
        "mode": "chaos",
        "database": connection.vendor,
        "jobs": config.jobs,
        "workers": config.workers,
        "concurrency": config.concurrency,
        "kill_every": config.kill_every,
        "lease": config.lease,
        "rescue_interval": config.rescue_interval,
        "task_ms": list(config.task_ms),
        "fault": config.fault,
        "faults": fault_log,
        "kills": kills,
        "worker_processes": len(workers),
        "finished": finished,
        "duration_s": round(duration, 1),
        "states": counts,
        "completed": completed,
        "lost": config.jobs - completed,
        "missing_rows": config.jobs - total,
        "stuck": stuck,
        "max_overdue_outside_faults": max_overdue,
        "unexpected_worker_exits": unexpected_exits,
        "nonzero_exit_codes_at_stop": {p: c for p, c in exit_codes.items() if c != 0},
        "worker_log_counts": _log_counts(workers),
        **checks,
    }
    # A worker stopped before it installed its signal handlers (it logs its banner
    # right after) dies of the SIGTERM: it held nothing, so that is fine.
    summary["nonzero_exit_codes_at_stop"] = {
        pid: code
        for pid, code in summary["nonzero_exit_codes_at_stop"].items()
        if not (code == -signal.SIGTERM and "starting:" not in _worker(workers, pid).output())
    }
    if config.once:
        executed = set(_retry(lambda: Execution.objects.values_list("job_id", flat=True)))
        failed = list(Job.objects.filter(state=Job.STATES.FAILED).values_list("pk", flat=True))
        summary["failed"] = len(failed)
        summary["failed_never_started"] = len([pk for pk in failed if pk not in executed])
        summary["lost"] = config.jobs - completed - len(failed)
    summary["duplicates"] = summary["jobs_executed_more_than_once"]
    summary["duplicates_per_kill"] = round(summary["duplicates"] / kills, 2) if kills else None
    violations = []
    if not finished:
        violations.append(f"not every job completed within {config.deadline:g}s")
    if summary["lost"]:
        finals = "COMPLETED or FAILED" if config.once else "COMPLETED"
        violations.append(f"{summary['lost']} job(s) lost (not {finals}): {counts}")
    if summary.get("failed_never_started"):
        violations.append(
            f"{summary['failed_never_started']} job(s) FAILED without their task having started"
        )
    if stuck:
        violations.append(f"{stuck} job(s) stuck in PROCESSING after their lease expired")
    if summary["overlaps"]:
        violations.append(f"{summary['overlaps']} overlapping execution(s) of one job")
    if (
        config.job_name == LIMITED_JOB_NAME
        and summary["most_running_at_once"] > LIMITED_MAX_RUNNING
    ):
        violations.append(
            f"{summary['most_running_at_once']} jobs ran at once, over the job type's "
            f"max_running of {LIMITED_MAX_RUNNING}"
        )
    if summary["unexplained_re_executions"]:
        violations.append(
            f"{summary['unexplained_re_executions']} re-execution(s) not explained by a kill"
            + (" or a fault" if config.fault else "")
        )
    if summary["unfinished_executions_of_live_workers"]:
        violations.append("executions that never finished, by workers that were not killed")
    if unexpected_exits:
        violations.append(f"{len(unexpected_exits)} worker(s) exited on their own")
    if summary["nonzero_exit_codes_at_stop"]:
        violations.append(
            f"workers exited badly on SIGTERM: {summary['nonzero_exit_codes_at_stop']}"
        )
    if summary["completed_without_a_finished_execution"]:
        violations.append(
            f"{summary['completed_without_a_finished_execution']} job(s) COMPLETED "
            "without their task having finished"
        )
    if finished and summary["jobs_executed"] != total:
        violations.append(f"executions recorded for {summary['jobs_executed']} of {total} jobs")
    summary["violations"] = violations
    return summary


def _run_shutdown(
    config: Config, progress: Callable[[str], None], workers: list[Worker]
) -> dict[str, Any]:
    rng = random.Random(config.seed)
    config.log_dir.mkdir(parents=True, exist_ok=True)
    env = worker_env(config)
    Execution.objects.all().delete()
    Job.objects.all().delete()
    enqueue(config.jobs, config, rng)
    workers += [Worker(n, config, env) for n in range(config.workers)]
    start = time.monotonic()
    busy = config.workers * config.concurrency
    # Wait for every worker to run tasks and every runner to be busy (and for the moment).
    while time.monotonic() - start < config.deadline:
        processing = Job.objects.processing().count()
        running = all("Job started" in worker.output() for worker in workers)
        if time.monotonic() - start >= config.sigterm_after and processing >= busy and running:
            break
        time.sleep(0.1)
    before = state_counts()
    signalled = time.time()
    for worker in workers:
        worker.proc.send_signal(signal.SIGTERM)
    exits: dict[int, dict[str, Any]] = {}
    for worker in workers:
        try:
            code = worker.proc.wait(timeout=config.grace + 30)
        except subprocess.TimeoutExpired:
            _abort(worker)
            code = None
        worker.ended = time.time()
        worker.how = "stopped"
        exits[worker.pid] = {"code": code, "seconds": round(worker.ended - signalled, 2)}
    progress(f"  SIGTERM at {signalled - time.time() + time.monotonic() - start:.1f}s: {exits}")
    after = state_counts()
    rows = list(Job.objects.values("pk", "state", "attempts"))
    not_done = [r for r in rows if r["state"] != Job.STATES.COMPLETED]
    spent = [r for r in not_done if r["attempts"] != 0]
    bad_state = [r for r in not_done if r["state"] not in (Job.STATES.NEW, Job.STATES.READY)]
    interrupted = {
        job_id
        for job_id, finished in Execution.objects.values_list("job_id", "finished")
        if not finished
    }
    released_running = len(interrupted)
    interrupted_not_waiting = [
        r for r in not_done if r["pk"] in interrupted and r["state"] != Job.STATES.READY
    ]
    # Then new workers finish the run.
    second = [Worker(len(workers) + n, config, env) for n in range(config.workers)]
    workers += second
    while time.monotonic() - start < config.deadline:
        if state_counts().get(Job.STATES.COMPLETED, 0) == config.jobs:
            break
        time.sleep(0.2)
    finish_codes = _stop_all(second, config)
    for worker in workers:
        worker.close()
    counts = state_counts()
    checks = analyse(config, workers)
    summary: dict[str, Any] = {
        "mode": "shutdown",
        "database": connection.vendor,
        "jobs": config.jobs,
        "workers": config.workers,
        "concurrency": config.concurrency,
        "grace": config.grace,
        "task_ms": list(config.task_ms),
        "states_at_sigterm": before,
        "states_after_exit": after,
        "exits": exits,
        "running_tasks_cut_at_grace": released_running,
        "states_at_end": counts,
        "duration_s": round(time.monotonic() - start, 1),
        **checks,
    }
    violations = []
    late = {p: e for p, e in exits.items() if e["code"] != 0 or e["seconds"] > config.grace + 5}
    if late:
        violations.append(f"workers did not exit cleanly within the grace period: {late}")
    if bad_state:
        violations.append(f"{len(bad_state)} job(s) neither COMPLETED nor waiting after shutdown")
    if spent:
        violations.append(f"{len(spent)} unfinished job(s) had an attempt spent")
    if interrupted_not_waiting:
        violations.append(f"{len(interrupted_not_waiting)} interrupted job(s) not back in READY")
    if counts.get(Job.STATES.COMPLETED, 0) != config.jobs:
        violations.append(f"the restarted workers did not finish the run: {counts}")
    if checks["overlaps"]:
        violations.append(f"{checks['overlaps']} overlapping execution(s) of one job")
    if checks["unexplained_re_executions"]:
        violations.append(f"{checks['unexplained_re_executions']} unexplained re-execution(s)")
    if any(c != 0 for c in finish_codes.values()):
        violations.append(f"restarted workers exited badly: {finish_codes}")
    summary["violations"] = violations
    return summary


REPORT_KEYS = (
    "database",
    "jobs",
    "workers",
    "concurrency",
    "kills",
    "fault",
    "faults",
    "duration_s",
    "completed",
    "lost",
    "stuck",
    "overlaps",
    "duplicates",
    "jobs_completed_more_than_once",
    "re_execution_causes",
    "unexplained_re_executions",
    "max_overdue_outside_faults",
    "grace",
    "exits",
    "running_tasks_cut_at_grace",
    "states_at_sigterm",
    "states_after_exit",
    "states_at_end",
    "worker_log_counts",
)


def report(summary: dict[str, Any]) -> str:
    """The summary as aligned lines, then PASS or the violated properties."""
    lines = [f"{key:>32}: {summary[key]}" for key in REPORT_KEYS if key in summary]
    if summary["violations"]:
        lines += ["FAIL:", *[f"  - {v}" for v in summary["violations"]]]
    else:
        lines.append("PASS: every property held")
    return "\n".join(lines)
