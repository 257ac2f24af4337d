"""The worker: claims jobs, runs them on threads, keeps their leases, shuts down cleanly.

Threads of one worker process:

- the main thread claims jobs (batches sized to how fast jobs finish) and hands
  them to the runner threads through a local buffer; it never runs task code, so
  it always notices signals. On its one connection it also does the worker's
  housekeeping, each chore when it is due: the heartbeat (a check that the
  database takes writes, the worker's row in the registry,
  :mod:`django_dbq.operations.registry`), reading cancel requests, writing the
  outcome of runs the watchdog ended, firing periodic jobs
  (:mod:`django_dbq.runtime.scheduler`) and, when the database elects this worker
  for the interval, the rescue pass. Where the database can (PostgreSQL), it
  LISTENs for new jobs while idle (:mod:`django_dbq.runtime.wakeup`);
- ``concurrency`` runner threads, each with its own database connection, run
  one job (or batch) at a time through :mod:`django_dbq.runtime.executor`;
- a completer thread writes completions in batches and renews the leases of
  every job the worker holds (one connection for both: two connections updating
  overlapping rows of ours could deadlock). No task or hook code runs on it, so
  nothing a user writes can hold back a lease renewal;
- a watchdog thread (no connection) notices the attempts that run past their job
  type's ``timeout`` and the jobs asked to stop that do not within
  ``DBQ_CANCEL_GRACE``; the main thread writes their outcome, leaves the stuck
  runner thread behind and starts a fresh one (Python cannot kill a thread); once
  as many runners are stuck as the worker has, it stops gracefully so that its
  supervisor starts a clean process.

So a worker holds ``concurrency + 2`` connections to its queue database (one
more, direct, if ``DBQ_LISTEN_DATABASE`` names another alias), opened at start,
none per job.

No SQL is written here: every write is a function of :mod:`django_dbq.store`.
"""

from __future__ import annotations

import heapq
import logging
import os
import queue
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from django.db import DatabaseError, InterfaceError, connections
from django.db.backends.signals import connection_created
from django.utils import timezone

from .. import conf, job_types, limits, store
from ..db import backend_for
from ..models import Job
from ..operations import pauses, registry, stats
from ..store import Outcome
from . import executor
from .scheduler import Scheduler
from .stop_signals import relay_stop_signals
from .wakeup import Listening, Wake

logger = logging.getLogger("django_dbq.worker")

# Aim to claim about this much work (in seconds of task time) per claim query.
CLAIM_WINDOW_SECONDS = 0.05
DB_ERRORS = (DatabaseError, InterfaceError)
# A second SIGTERM/SIGINT sooner than this after the first is the same stop request.
SECOND_SIGNAL_AFTER = 1.0
# How often a worker looks for batches that are due (at most; sooner for short waits).
BATCH_CHECK_SECONDS = 1.0
BATCH_CHECK_MIN_SECONDS = 0.1
# A running task is marked as started (and so charged if the worker is lost) once it
# has run this long; one that finishes sooner is marked by its outcome's write.
MARK_STARTED_AFTER = 0.05
# How often a worker rolls up the per-minute counts of finished jobs (at a rescue pass).
ROLL_UP_SECONDS = 30.0
# A limited job type or queue at its max_running is tried again this soon (a job of it
# finishing on another worker frees a slot; one finishing here retries at once).
LIMIT_CAPPED_RETRY_SECONDS = 0.1
# Longest wait before a limited group with no runnable job is looked at again.
LIMIT_EMPTY_RETRY_SECONDS = 1.0
# How often the watchdog looks at running jobs' clocks.
WATCHDOG_SECONDS = 0.1
# How often stale cancel requests (of jobs that ended) are deleted, at a rescue pass.
CANCEL_CLEANUP_SECONDS = 60.0
# Each worker's housekeeping intervals are spread by up to this fraction, at random, so
# that many workers started together do not all hit the database at the same instant.
JITTER = 0.1
# An idle worker that LISTENs looks for jobs this often at least (NOTIFY announces new
# jobs, retries and released jobs; it also looks when the next scheduled job is due).
LISTEN_POLL_SECONDS = 30.0
# Exit status of a worker that stopped to be replaced (its runner threads were stuck).
EXIT_RESTART = 3


class _Unit:
    """What one limited claim takes: jobs of ``queues`` (only ``only_name``, or not
    ``exclude_names``) within ``groups``; tried again at ``next_try`` (monotonic)."""

    def __init__(self, groups, queues, *, only_name=None, exclude_names=()) -> None:
        self.groups = groups
        self.queues = queues
        self.only_name = only_name
        self.exclude_names = exclude_names
        self.next_try = 0.0
        self.capped = False


class _Run:
    """A job a runner thread is running: since when, on which thread, its timeout,
    and the cancel request the worker has seen for it."""

    def __init__(self, job: Job, thread: threading.Thread, timeout: float | None) -> None:
        self.job = job
        self.thread = thread
        self.started = time.monotonic()
        self.timeout = timeout
        self.cancel_seen: float | None = None


def _prepare(sender: Any, connection: Any, **kwargs: Any) -> None:
    backend_for(connection).prepare_connection()


class Worker:
    """Runs jobs from ``queues`` until stopped (or, with ``burst``, until none are left)."""

    def __init__(
        self,
        queues: Sequence[str] = ("default",),
        *,
        concurrency: int = 1,
        rate_limit: float = 0.0,
        poll_interval: float = 1.0,
        grace: float = 25.0,
        burst: bool = False,
        using: str | None = None,
        handle_signals: bool = True,
        schedules: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.queues = list(dict.fromkeys(queues)) or ["default"]
        self.concurrency = concurrency
        self.rate_limit = rate_limit
        self.poll_interval = poll_interval
        self.grace = grace
        self.burst = burst
        self.using = using or conf.database()
        self.handle_signals = handle_signals
        # A burst worker drains the queue and exits: it fires no schedules.
        self.schedules = schedules and not burst
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.claim_batch = conf.claim_batch()
        self.lease = conf.lease_seconds()

        self._ready: queue.SimpleQueue[tuple[Any, Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # Every job this worker holds: id -> (lease length, the claimed Job instance).
        self._held: dict[Any, tuple[float, Job]] = {}
        self._running: set[Any] = set()
        self._done: list[Outcome] = []
        # (monotonic start, job) of the jobs whose task started, not yet marked as such.
        self._started: list[tuple[float, Job]] = []
        self._wake = Wake()
        self._stop = threading.Event()
        self._force = threading.Event()
        self._threads_stop = threading.Event()
        self._completer_stop = threading.Event()
        self._completer: threading.Thread | None = None
        # Until jobs are seen to be fast, claim as for slow ones (one per free runner):
        # a first batch of slow jobs would be held back from the other workers.
        self._avg_duration = CLAIM_WINDOW_SECONDS
        self._low_water = 1
        self._cursor = store.new_claim_cursor(using)
        self._batches = job_types.batch_types()
        waits = [batch.wait for batch in self._batches.values()]
        self._batch_check_seconds = max(
            BATCH_CHECK_MIN_SECONDS, min([BATCH_CHECK_SECONDS, *[w / 2 for w in waits]])
        )
        self._next_batch_check = 0.0
        self._ripe: list[tuple[str, str, str]] = []
        self._done_ready = threading.Event()
        leases = [self.lease] + [t.lease() for t in job_types.job_types().values()]
        self._renew_every = max(0.2, min(leases) / 3)
        self._last_start = 0.0  # monotonic; --rate_limit spaces job starts by it
        self._lost_reply = False
        self._runners: list[threading.Thread] = []
        self._helpers: list[threading.Thread] = []
        self._record: Any = None  # this worker's row in the registry
        self._runs: dict[Any, _Run] = {}  # by job id, under self._lock
        self._abandoned: set[threading.Thread] = set()
        self._settle_lock = threading.Lock()  # the watchdog's writes vs the completer's
        self.restart = False  # stopped to be replaced: runner threads were stuck
        # The job types with a timeout (seconds), by name.
        self._timeouts = {
            name: job_type.timeout
            for name, job_type in job_types.job_types().items()
            if job_type.timeout is not None
        }
        self._limited_names: list[str] = []
        self._limited_queues: set[str] = set()
        self._units: list[_Unit] = []
        # Rate-limited jobs claimed ahead of their tokens: (due, sequence, item), handed
        # to the runners by the pacer thread.
        self._not_yet: list[tuple[float, int, Any]] = []
        self._sequence = 0
        self._pacer = threading.Condition()
        self._paused: set[str] = set()
        self._next_pause_check = 0.0
        # Housekeeping done by the main thread (see _chores), by monotonic due time.
        self._listening: Listening | None = None
        self._wake_mode = "polling"
        self._scheduler = Scheduler(self.owner, using=self.using) if self.schedules else None
        self._next_beat = 0.0
        self._next_rescue = 0.0
        self._next_roll_up = 0.0
        self._next_cleanup = 0.0
        self._next_requests = 0.0
        self._next_schedule = 0.0
        self._poll_at = 0.0  # when the main loop claims next without being woken
        self._healthy_since: float | None = float("-inf")
        self._overdue: list[_Run] = []  # runs the watchdog found overdue, under self._lock
        self.processed = 0
        self.crashed = False  # a thread of the worker failed; it stopped (exit status 1)

    # --- public -----------------------------------------------------------------------

    def request_stop(self, *, force: bool = False) -> None:
        """Stop claiming and shut down (``force``: release running jobs at once)."""
        if force:
            self._force.set()
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        """Run until stopped; returns once every held job is finished or released."""
        job_types.job_types()  # a malformed JOBS setting fails here, before any claim
        self._plan_limits()
        connection_created.connect(_prepare, dispatch_uid="django_dbq.prepare")
        # A connection opened before (the command's migration check) was not tuned.
        connections[self.using].close()
        if self.handle_signals:
            self._install_signal_handlers()
        self._safely(self._check_pauses)
        self._start_listening()
        self._banner()
        self._record = self._safely(
            lambda: registry.register(
                self.owner,
                queues=self.queues,
                concurrency=self.concurrency,
                interval=self._renew_every,
                using=self.using,
            )
        )
        self._start_threads()
        now = time.monotonic()
        self._next_beat = now + self._jittered(self._renew_every)
        self._next_rescue = self._next_roll_up = now + self._jittered(conf.rescue_interval())
        self._next_cleanup = now + CANCEL_CLEANUP_SECONDS
        try:
            self._safely(self._rescue_at_start)
            self._loop()
        finally:
            self._shutdown()

    # --- limits ------------------------------------------------------------------------

    def _plan_limits(self) -> None:
        """Split this worker's claims: the job types and queues with limits
        (:mod:`django_dbq.limits`) are claimed apart, each within its limits."""
        by_job = limits.job_groups()
        by_queue = {q: g for q, g in limits.queue_groups().items() if q in self.queues}
        self._limited_names = sorted(by_job)
        self._limited_queues = set(by_queue)
        free = [q for q in self.queues if q not in by_queue]
        units = []
        for name, group in sorted(by_job.items()):
            if free:
                units.append(_Unit([group], free, only_name=name))
            for name_of_queue, queue_group in sorted(by_queue.items()):
                units.append(_Unit([group, queue_group], [name_of_queue], only_name=name))
        for name_of_queue, group in sorted(by_queue.items()):
            names = tuple(self._limited_names)
            units.append(_Unit([group], [name_of_queue], exclude_names=names))
        self._units = units

    def _claim_limited(self, room: int) -> int:
        """Claim from the limited groups that are due, within ``room``."""
        claimed = 0
        now = time.monotonic()
        active = set(self._active_queues())
        for unit in self._units:
            if room - claimed <= 0:
                break
            queues = [q for q in unit.queues if q in active]
            if unit.next_try > now or not queues:
                continue
            result = store.claim_limited(
                self.owner,
                unit.groups,
                queues,
                room - claimed,
                self.lease,
                only_name=unit.only_name,
                exclude_names=unit.exclude_names,
                using=self.using,
            )
            # Count the delays from the claim's own time, not from now: the claim's
            # round trips must not push its jobs' starts later than their tokens.
            late = (timezone.now() - result.at).total_seconds() if result.at else 0.0
            if result.at is not None:
                # When each job's token lets it start (wall clock): what the database
                # guarantees; the start itself may come later on a busy host.
                for job, delay in zip(result.jobs, result.delays, strict=False):
                    job._token_at = result.at.timestamp() + delay
            self._take(result.jobs, [max(0.0, delay - late) for delay in result.delays])
            claimed += len(result.jobs)
            unit.capped = result.reason == "capped"
            if result.reason == "capped":
                unit.next_try = now + LIMIT_CAPPED_RETRY_SECONDS
            elif result.reason == "rate":
                unit.next_try = now + result.wait
            elif result.reason == "empty":
                unit.next_try = now + min(self.poll_interval, LIMIT_EMPTY_RETRY_SECONDS)
            else:
                unit.next_try = now  # it got all it asked for: there may be more
        return claimed

    def _next_limited_try(self) -> float | None:
        return min((unit.next_try for unit in self._units), default=None)

    def _slot_freed(self) -> None:
        """A job finished here: the groups at their max_running may claim again now."""
        for unit in self._units:
            if unit.capped:
                unit.next_try = 0.0

    # --- main loop ----------------------------------------------------------------------

    def _loop(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            # Claim when woken (a NOTIFY, a runner, a signal) or when a poll is due; an
            # iteration that only had housekeeping due claims nothing.
            claim = self._wake.is_set() or time.monotonic() >= self._poll_at
            self._wake.clear()
            room: int = 0
            found: int | None = None
            batched = 0
            try:
                if self._lost_reply:
                    # The query that failed may have been a claim that committed before
                    # its connection went: hand back what we hold without knowing it.
                    self._release_untracked()
                    self._lost_reply = False
                # Burst mode may stop only if nothing was held when a claim found nothing:
                # a job held then could still come back READY (its chain's next step).
                idle_before = not self._held_count()
                if self._listening is not None and self._listening.refresh():
                    claim = True  # listening (again): jobs enqueued before were not announced
                self._chores()
                if claim:
                    self._check_pauses()
                    room = self._room() if self._active_queues() else 0
                    found = self._claim(room) if room else None
                    if self._units and room:
                        found = (found or 0) + self._claim_limited(room - (found or 0))
                    batched = self._claim_batches(flush=self.burst and found == 0)
                backoff = 0.5
            except DB_ERRORS as exc:
                logger.warning("Database unavailable (%s); retrying in %.1fs", exc, backoff)
                connections[self.using].close()
                self._lost_reply = True
                self._poll_at = 0.0  # claim again as soon as the database answers
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if (found and found == room) or batched:
                self._poll_at = 0.0
                continue  # the queue may hold more: go straight back for it
            if (
                claim
                and self.burst
                and found == 0
                and idle_before
                and not batched
                and not self._safely(self._runnable_left)
            ):
                logger.info("Burst mode: no runnable jobs left; stopping")
                return
            if claim:
                self._poll_at = self._next_poll(room, found)
            timeout = max(0.0, min(self._poll_at, self._next_chore()) - time.monotonic())
            self._wake.wait(timeout, also=self._listening.fileno() if self._listening else None)

    def _next_poll(self, room: int, found: int | None) -> float:
        """When to look for jobs again if nothing wakes the worker (monotonic). Busy: a
        runner wakes it for more (and it looks every second anyway). Idle: every
        ``poll_interval``; while listening, when the next scheduled job is due, or
        after ``LISTEN_POLL_SECONDS`` (NOTIFY announces new jobs and retries). Sooner
        for a rate limit's next start, a batch check, a paused queue's re-read or a
        limited group's next try."""
        now = time.monotonic()
        idle = bool(room and not found)
        timers = [float("inf")]
        if self.rate_limit and not self._held_count():
            # While a job is held, its end (a runner or the completer) wakes us.
            timers.append(self._last_start + self.rate_limit)
        if self._batches:
            timers.append(self._next_batch_check)
        if self._paused:
            timers.append(self._next_pause_check)
        next_limited = self._next_limited_try()
        if next_limited is not None and room:
            timers.append(next_limited)
        soonest = min(timers)
        wait = self.poll_interval if idle else 1.0
        if (
            idle
            and soonest >= now + self.poll_interval  # no timer brings us back sooner anyway
            and self._listening is not None
            and self._listening.fileno() is not None
        ):
            wait = max(self.poll_interval, LISTEN_POLL_SECONDS)
            due = self._safely(lambda: store.next_due(self.queues, using=self.using))
            if due is not None:
                wait = min(wait, max(0.0, (due - timezone.now()).total_seconds()) + 0.002)
        return min(now + wait, soonest)

    def _check_pauses(self) -> None:
        """Read the paused queues again if the last read is older than
        :data:`~django_dbq.operations.pauses.CHECK_SECONDS` (one small query a second
        at most, only while the worker claims)."""
        if time.monotonic() < self._next_pause_check:
            return
        paused = pauses.paused_queues(using=self.using) & set(self.queues)
        self._next_pause_check = time.monotonic() + pauses.CHECK_SECONDS
        if paused != self._paused:
            if paused - self._paused:
                logger.info(
                    "Queue(s) paused: %s; claiming none of their jobs",
                    ",".join(sorted(paused - self._paused)),
                )
            if self._paused - paused:
                logger.info("Queue(s) resumed: %s", ",".join(sorted(self._paused - paused)))
            self._paused = paused

    def _active_queues(self) -> list[str]:
        """This worker's queues that are not paused."""
        if not self._paused:
            return self.queues
        return [name for name in self.queues if name not in self._paused]

    def _runnable_left(self) -> bool:
        """Whether a plain read still sees runnable jobs. A claim skips rows locked by
        another transaction (SKIP LOCKED), so finding nothing does not prove the queue
        empty: a row just made READY may still be locked for an instant by a statement
        that waited on it (a lease renewal) or by another worker's claim."""
        return store.runnable_left(self._active_queues(), set(self._batches), using=self.using)

    def _room(self) -> int:
        """How many jobs to claim now.

        Fast jobs are double-buffered: a new batch is claimed while the runners
        still have one to work through, each batch sized to about
        ``CLAIM_WINDOW_SECONDS`` of work (at most ``DBQ_CLAIM_BATCH``). Slow jobs are
        claimed only as runners free up, so that they are not held back from
        other workers.
        """
        buffered = self._ready.qsize() + len(self._not_yet)
        if self.rate_limit:
            if time.monotonic() - self._last_start < self.rate_limit or self._held_count():
                return 0
            return 1
        with self._lock:
            running = len(self._running)
        if self._avg_duration >= CLAIM_WINDOW_SECONDS:
            self._low_water = 1
            return max(0, self.concurrency - buffered - running)
        per_runner = int(CLAIM_WINDOW_SECONDS / max(self._avg_duration, 1e-6))
        batch = max(self.concurrency, min(self.claim_batch, self.concurrency * per_runner))
        self._low_water = batch
        if buffered >= batch:
            return 0
        return min(self.claim_batch, max(0, 2 * batch - buffered - running))

    def _claim(self, room: int) -> int:
        queues = [q for q in self._active_queues() if q not in self._limited_queues]
        claimed = store.claim(
            self.owner,
            queues,
            room,
            self.lease,
            using=self.using,
            cursor=self._cursor,
            exclude_names=self._limited_names,
        )
        return self._take(claimed)

    def _take(self, claimed: list[Job], delays: Sequence[float] = ()) -> int:
        """Hold claimed jobs and hand them to the runners; a job with a delay (a rate
        limit's token due later) waits in the worker until its time."""
        with self._lock:
            for job in claimed:
                job_type = job_types.job_type_for(job)
                self._hold(job, job_type.lease() if job_type else self.lease)
        now = time.monotonic()
        for index, job in enumerate(claimed):
            delay = delays[index] if index < len(delays) else 0.0
            if delay > 0:
                with self._pacer:
                    self._sequence += 1
                    item = (job, executor.snapshot(job))
                    heapq.heappush(self._not_yet, (now + delay, self._sequence, item))
                    self._pacer.notify()
            else:
                self._ready.put((job, executor.snapshot(job)))
        return len(claimed)

    def _pace(self) -> None:
        """Pacer thread: hand each rate-limited job to the runners at its token's time
        (a thread of its own, so a slow claim in the main loop does not bunch them)."""
        with self._pacer:
            while not self._threads_stop.is_set():
                now = time.monotonic()
                while self._not_yet and self._not_yet[0][0] <= now:
                    self._ready.put(heapq.heappop(self._not_yet)[2])
                self._pacer.wait(self._not_yet[0][0] - now if self._not_yet else 0.5)

    def _claim_batches(self, *, flush: bool = False) -> int:
        """Claim due batches (see :func:`django_dbq.store.ripe_batches`), one per free runner.

        Due groups are looked up at most every ``BATCH_CHECK_SECONDS`` (and at once
        with ``flush``); a group that filled a whole batch is claimed from again
        straight away.
        """
        if not self._batches or not self._active_queues():
            return 0
        if not self._ripe:
            if not flush and time.monotonic() < self._next_batch_check:
                return 0
            self._next_batch_check = time.monotonic() + self._batch_check_seconds
            self._ripe = store.ripe_batches(
                self._batches, self._active_queues(), using=self.using, flush=flush
            )
        claimed = 0
        while self._ripe and self._ready.qsize() < self.concurrency:
            name, queue, key = self._ripe[0]
            size = self._batches[name].size
            batch = store.claim_batch(
                self.owner, name, queue, key, size, self.lease, using=self.using
            )
            if len(batch) < size:
                self._ripe.pop(0)
            if not batch:
                continue
            lease = job_types.get_job_type(name).lease()
            with self._lock:
                for job in batch:
                    self._hold(job, lease)
            self._ready.put((batch, [executor.snapshot(job) for job in batch]))
            claimed += len(batch)
        return claimed

    def _held_count(self) -> int:
        with self._lock:
            return len(self._held)

    def _flush(self) -> None:
        """Write the completions the runners reported, in one or two statements."""
        with self._settle_lock:
            self._flush_settled()

    def _flush_settled(self) -> None:
        with self._lock:
            done, self._done = self._done, []
        # A job the watchdog ended meanwhile keeps the outcome it wrote.
        done = [outcome for outcome in done if not executor.abandoned(outcome.job)]
        if not done:
            return
        try:
            written = store.complete(self.owner, done)
        except BaseException:
            with self._lock:
                # Keep those not yet handled for the next try; let the others go.
                self._done[:0] = [o for o in done if o.written is None]
                for outcome in done:
                    if outcome.written is not None:
                        self._drop(outcome.job)
            raise
        if self._units:
            self._slot_freed()
        if written != len(done):
            logger.warning(
                "%d of %d completed jobs were no longer held by this worker (their lease "
                "expired and another worker took them over, or an earlier try that lost "
                "its connection wrote them); they may run again",
                len(done) - written,
                len(done),
            )
        with self._lock:
            for outcome in done:
                self._drop(outcome.job)

    def _hold(self, job: Job, lease: float) -> None:
        """Note a claimed job (under ``self._lock``): its lease is renewed until dropped.
        The watchdog reads its cancel requests (``job.cancel_requested()`` then need
        not ask the database at each checkpoint)."""
        self._held[job.pk] = (lease, job)
        job._cancel_watched = True

    def _drop(self, job: Job) -> None:
        """Forget a job this worker finished with (under ``self._lock``), unless the entry
        is a newer claim of the same job: a chain's next step, claimed again by the main
        thread between the runner's READY write and this call."""
        entry = self._held.get(job.pk)
        if entry is not None and entry[1] is job:
            del self._held[job.pk]

    # --- runner threads -------------------------------------------------------------------

    def _start_runner(self) -> None:
        thread = threading.Thread(target=self._run_jobs, name=f"dbq-runner-{len(self._runners)}")
        thread.start()
        self._runners.append(thread)

    def _start_threads(self) -> None:
        for _ in range(self.concurrency):
            self._start_runner()
        watchdog = threading.Thread(target=self._watch, name="dbq-watchdog", daemon=True)
        watchdog.start()
        self._helpers.append(watchdog)
        if any(g.rate for unit in self._units for g in unit.groups):
            pacer = threading.Thread(target=self._pace, name="dbq-pacer", daemon=True)
            pacer.start()
            self._helpers.append(pacer)
        completer = threading.Thread(target=self._complete, name="dbq-completer", daemon=True)
        completer.start()
        self._completer = completer

    def _start_listening(self) -> None:
        """LISTEN for new jobs where the database can; the banner's ``wake=`` says how
        the worker wakes: ``LISTEN/NOTIFY`` (on its queue database),
        ``LISTEN/NOTIFY@alias`` (on the alias ``DBQ_LISTEN_DATABASE`` names) or
        ``polling`` (every ``poll_interval``)."""
        alias = conf.listen_database(self.using)
        if self.burst or alias is None or not backend_for(alias).supports_notify:
            return
        listening = Listening(alias, self.using, self.queues, self._wake)
        try:
            listening_works = listening.start()
        except Exception as exc:  # a driver without psycopg 3's notification API, say
            logger.warning("Cannot LISTEN on database %r (%s); polling", alias, exc)
            return
        if listening_works:
            self._listening = listening
            self._wake_mode = "LISTEN/NOTIFY" if alias == self.using else f"LISTEN/NOTIFY@{alias}"
            return
        logger.warning(
            "A NOTIFY sent through database %r did not reach this worker's LISTEN on %r "
            "(a transaction-pooling PgBouncer in between?): polling every %gs instead. "
            "Set DBQ_LISTEN_DATABASE to a database alias that connects to PostgreSQL "
            "directly to be woken at once, or to None to poll without this check.",
            self.using,
            alias,
            self.poll_interval,
        )

    def _run_jobs(self) -> None:
        try:
            while True:
                item = self._ready.get()
                if item is None:
                    return
                work, before = item
                batch = work if isinstance(work, list) else [work]
                now, started = timezone.now(), time.monotonic()
                me = threading.current_thread()
                with self._lock:
                    for job in batch:
                        self._running.add(job.pk)
                        job.started_at = now
                        self._started.append((started, job))  # the completer marks it
                        self._runs[job.pk] = _Run(job, me, self._timeouts.get(job.name))
                    # Read after started_at, so the next start is >= rate_limit after it.
                    self._last_start = started
                if self._ready.qsize() < self._low_water:
                    self._wake.set()
                self._run(batch, before if isinstance(work, list) else [before])
                with self._lock:
                    for job in batch:
                        run = self._runs.get(job.pk)
                        if run is not None and run.job is job:
                            del self._runs[job.pk]
                    if me in self._abandoned:
                        return  # the watchdog gave up on us and started another runner
        finally:
            connections.close_all()

    def _run(self, batch: list[Job], befores: list[str | None]) -> None:
        """Run one claimed job (a batch of one) or one batch, and note the outcomes."""
        try:
            if len(batch) == 1 and batch[0].batch_key is None:
                outcomes = [executor.run(batch[0], self.owner, befores[0])]
            else:
                outcomes = executor.run_batch(batch, self.owner, befores)
        except BaseException:
            # Saving the outcome failed even after retries: forget the jobs so their leases
            # run out and a worker rescues them (they will run again: at-least-once).
            logger.exception("Could not record the outcome of job(s) %s", [j.pk for j in batch])
            with self._lock:
                for job in batch:
                    self._running.discard(job.pk)
                    self._drop(job)
            return
        outcomes = [o for o in outcomes if not executor.abandoned(o.job)]
        if len(outcomes) == 1:
            self._avg_duration = 0.8 * self._avg_duration + 0.2 * outcomes[0].duration
        self.processed += len(outcomes)
        with self._lock:
            for outcome in outcomes:
                self._running.discard(outcome.job.pk)
                if outcome.kind == "completed":
                    self._done.append(outcome)
                else:
                    self._drop(outcome.job)
        if self._units and outcomes:
            self._slot_freed()
        self._done_ready.set()
        self._wake_if_hungry()

    def _wake_if_hungry(self) -> None:
        """A runner is free and little is buffered: have the main thread claim now,
        without waiting for the completions to be written first."""
        if self._ready.qsize() < self._low_water:
            self._wake.set()

    def _complete(self) -> None:
        """Completer thread: write finished jobs in batches, on its own connection.

        It waits briefly after the first completion so that a burst of fast jobs is
        written in one statement; a slow job's completion is written within a few
        milliseconds.
        """
        backoff = 0.5
        next_renewal = time.monotonic() + self._renew_every
        try:
            while True:
                self._done_ready.wait(min(0.5, self._renew_every))
                if self._completer_stop.is_set() and not self._done:
                    return
                if time.monotonic() >= next_renewal:
                    # Leases are renewed here, on the connection that writes completions:
                    # two connections updating overlapping rows of ours could deadlock.
                    next_renewal = time.monotonic() + self._renew_every
                    try:
                        self._renew()
                    except DB_ERRORS as exc:
                        logger.warning("Could not renew leases (%s)", exc)
                        connections[self.using].close()
                self._mark_started()
                if not self._done:
                    continue
                self._completer_stop.wait(0.002)
                self._done_ready.clear()
                try:
                    self._flush()
                    backoff = 0.5
                except DB_ERRORS as exc:
                    logger.warning("Could not save completed jobs (%s); retrying", exc)
                    connections[self.using].close()
                    self._completer_stop.wait(backoff)
                    # Never back off past a renewal: this thread renews the leases too.
                    backoff = min(backoff * 2, self._renew_every)
                    self._done_ready.set()
                self._wake.set()
        except BaseException:
            # Without this thread no lease is renewed and no completion written: a worker
            # that went on would see its running jobs rescued under it. Stop instead.
            logger.exception("The completer thread failed; stopping this worker")
            self.crashed = True
            self.request_stop()
        finally:
            connections.close_all()

    def _mark_started(self) -> None:
        """Record, in one statement, that the tasks of the jobs running for at least
        ``MARK_STARTED_AFTER`` seconds have started: only such a job is charged an
        attempt if this worker is lost (see :func:`django_dbq.store.mark_started`).
        Jobs that finish sooner are marked by the write of their outcome."""
        due = time.monotonic() - MARK_STARTED_AFTER
        with self._lock:
            # In start order: while the oldest is not due, none is (and the entries of
            # jobs that finished meanwhile are dropped on a later pass, in one go).
            if not self._started or self._started[0][0] > due:
                return
            # A job whose outcome is noted has left _running: its write marks it.
            running = [(at, job) for at, job in self._started if job.pk in self._running]
            ready = [job for at, job in running if at <= due]
            self._started = [(at, job) for at, job in running if at > due]
        if ready:
            try:
                store.mark_started(self.owner, ready)
            except DB_ERRORS as exc:
                logger.warning("Could not mark started jobs (%s)", exc)
                connections[self.using].close()
                with self._lock:
                    self._started[:0] = [(due, job) for job in ready]

    # --- watchdog: timeouts and cancellation ----------------------------------------------

    def _watch(self) -> None:
        """Watchdog thread: notice the runs that outlived their timeout or their cancel
        grace, and have the main thread end them (it owns the connection for that)."""
        while not self._threads_stop.wait(WATCHDOG_SECONDS):
            now = time.monotonic()
            grace = conf.cancel_grace()
            with self._lock:
                overdue = [
                    run
                    for run in self._runs.values()
                    if run not in self._overdue
                    and (
                        (run.timeout is not None and now - run.started > run.timeout)
                        or (run.cancel_seen is not None and now - run.cancel_seen > grace)
                    )
                ]
                self._overdue.extend(overdue)
            if overdue:
                self._wake.set()

    def _see_cancel_requests(self) -> None:
        with self._lock:
            held = list(self._held)
        if not held:
            return
        requests = store.cancel_requests(held, using=self.using)
        if not requests:
            return
        now = time.monotonic()
        with self._lock:
            for pk, by in requests.items():
                entry = self._held.get(pk)
                if entry is not None and getattr(entry[1], "_cancel_by", None) is None:
                    entry[1]._cancel_by = by or "someone"
                    logger.info("Job %s: asked to stop by %s", pk, by)
                run = self._runs.get(pk)
                if run is not None and run.cancel_seen is None:
                    run.cancel_seen = now

    def _end_overdue(self) -> None:
        """Write the outcome of the runs the watchdog found overdue (main thread)."""
        with self._lock:
            overdue, self._overdue = self._overdue, []
        now = time.monotonic()
        for index, run in enumerate(overdue):
            try:
                with self._settle_lock:
                    if executor.abandoned(run.job):
                        continue
                    by = getattr(run.job, "_cancel_by", None)
                    timed_out = run.timeout is not None and now - run.started > run.timeout
                    if timed_out and by is None:
                        executor.time_out(run.job, self.owner, run.timeout)
                    else:
                        executor.cancel_overdue(
                            run.job, self.owner, by or "someone", now - run.started
                        )
            except BaseException:
                with self._lock:  # not written: the watchdog's next look retries
                    self._overdue[:0] = overdue[index + 1 :]
                raise
            self._abandon(run)

    def _abandon(self, run: _Run) -> None:
        """Leave a stuck runner thread behind and start a fresh one; once as many are
        stuck as the worker has runners, stop so that a clean process replaces it."""
        with self._lock:
            self._running.discard(run.job.pk)
            self._drop(run.job)
            if self._runs.get(run.job.pk) is run:
                del self._runs[run.job.pk]
            if run.thread in self._abandoned:
                return
            self._abandoned.add(run.thread)
            stuck = len(self._abandoned)
        logger.warning(
            "Runner %s is stuck in job %s; left behind, a new runner takes its place "
            "(%d stuck so far)",
            run.thread.name,
            run.job.pk,
            stuck,
        )
        if not self._stop.is_set():
            self._start_runner()
        if self._units:
            self._slot_freed()
        if stuck >= self.concurrency and not self._stop.is_set():
            logger.warning(
                "%d runner threads are stuck (Python cannot stop a thread): stopping this "
                "worker gracefully so that its supervisor starts a fresh process "
                "(exit status %d)",
                stuck,
                EXIT_RESTART,
            )
            self.restart = True
            self.request_stop()
        self._wake.set()

    # --- heartbeat: leases and rescue -------------------------------------------------------

    def _renew(self) -> None:
        """Push back the lease of every job this worker holds (from the completer)."""
        with self._lock:
            by_lease: dict[float, list[Any]] = {}
            for pk, (seconds, _) in self._held.items():
                by_lease.setdefault(seconds, []).append(pk)
        if by_lease:
            store.renew_leases(self.owner, by_lease)

    # --- housekeeping: chores of the main thread ---------------------------------------------

    @staticmethod
    def _jittered(seconds: float) -> float:
        return seconds * (1 + JITTER * (2 * secrets.randbelow(1001) / 1000 - 1))

    def _next_chore(self) -> float:
        """When the main thread has housekeeping to do next (monotonic)."""
        due = min(self._next_beat, self._next_requests if self._held_count() else float("inf"))
        if self._scheduler is not None:
            due = min(due, self._next_schedule)
        if self._overdue:
            due = 0.0
        return due

    def _chores(self) -> None:
        """Do the housekeeping that is due, on the main thread's connection. A chore that
        cannot reach the database is logged and tried again at its next time."""
        now = time.monotonic()
        chores = []
        if self._overdue:
            chores.append(("Watchdog", self._end_overdue))
        if now >= self._next_requests:
            self._next_requests = now + self._renew_every
            chores.append(("Watchdog", self._see_cancel_requests))
        if now >= self._next_beat:
            self._next_beat = now + self._jittered(self._renew_every)
            chores.append(("Heartbeat", self._housekeep))
        for name, chore in chores:
            try:
                chore()
            except DB_ERRORS as exc:
                logger.warning("%s could not reach the database (%s)", name, exc)
                connections[self.using].close()
                if chore == self._housekeep:
                    self._healthy_since = None
            except Exception:
                logger.exception("%s failed; going on", name)
        if self._scheduler is not None and now >= self._next_schedule and not self._stop.is_set():
            self._next_schedule = time.monotonic() + self._scheduler.step()

    def _rescue_at_start(self) -> None:
        if store.take_chore("rescue", self.owner, conf.rescue_interval(), using=self.using):
            executor.rescue_expired(self.owner)

    def _housekeep(self) -> None:
        """The heartbeat: check that the database takes writes, renew this worker's row
        in the registry and, when due, take part in the rescue pass."""
        if self._record is None:
            backend_for(self.using).check_writable()  # else the beat's write notices it
        if self._healthy_since is None:
            self._healthy_since = time.monotonic()
        self._beat()
        now = time.monotonic()
        # Rescue only once the database has worked for a whole lease since the last
        # failure to reach it: after an outage, live workers (cut off too, their leases
        # running out meanwhile) must get to renew first; they renew every third.
        if (
            now < self._next_rescue
            or now - self._healthy_since < self.lease
            or self._stop.is_set()
        ):
            return
        interval = conf.rescue_interval()
        self._next_rescue = now + self._jittered(interval)
        # One worker per interval does the pass, whichever the database elects first.
        if not store.take_chore("rescue", self.owner, interval, using=self.using):
            return
        if executor.rescue_expired(self.owner):
            self._wake.set()
        registry.prune_dead(using=self.using)
        if now >= self._next_roll_up:
            self._next_roll_up = now + ROLL_UP_SECONDS
            stats.roll_up(using=self.using)
        if now >= self._next_cleanup:
            self._next_cleanup = now + CANCEL_CLEANUP_SECONDS
            store.forget_stale_cancel_requests(using=self.using)

    def _beat(self) -> None:
        """Renew this worker's row in the registry."""
        if self._record is None:
            return
        registry.beat(
            self._record,
            jobs_held=self._held_count(),
            jobs_done=self.processed,
            interval=self._renew_every,
            using=self.using,
        )

    # --- shutdown ----------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        first_at: list[float] = []

        def act(signum: int) -> None:
            if first_at and time.monotonic() - first_at[0] < SECOND_SIGNAL_AFTER:
                # The same stop delivered twice (e.g. systemd signals the whole control
                # group and the --processes supervisor forwards it too): not a second one.
                return
            if self._stop.is_set():
                logger.warning("Second %s: releasing running jobs now", signal.Signals(signum).name)
                self.request_stop(force=True)
            else:
                logger.info(
                    "%s received: finishing running jobs (up to %ss), then stopping",
                    signal.Signals(signum).name,
                    self.grace,
                )
                first_at.append(time.monotonic())
                self.request_stop()

        relay_stop_signals(act)

    def _shutdown(self) -> None:
        # Jobs claimed but not started go straight back, without spending an attempt.
        with self._pacer:
            pending = [item[0].pk for _, _, item in self._not_yet]
            self._not_yet.clear()
        while True:
            try:
                item = self._ready.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                work = item[0]
                pending += [job.pk for job in work] if isinstance(work, list) else [work.pk]
        if pending:
            self._safely(lambda: self._release(pending))
        with self._lock:
            runners = [t for t in self._runners if t not in self._abandoned]
        for _ in runners:
            self._ready.put(None)
        deadline = time.monotonic() + self.grace
        while any(t.is_alive() for t in runners):
            if self._force.is_set() or time.monotonic() >= deadline:
                break
            # Running jobs still need the heartbeat, their cancel requests and timeouts.
            self._chores()
            self._wake.wait(0.05)
            self._wake.clear()
        self._stop_completer()
        with self._lock:
            unfinished = list(self._running)
        if any(t.is_alive() for t in runners):
            # Tasks still running past the grace period: hand them back and leave now.
            self._safely(lambda: self._release(unfinished))
            logger.warning("Stopped with %d job(s) still running; released them", len(unfinished))
            self._safely(lambda: registry.unregister(self.owner, using=self.using))
            self._exit_now(0)
        self._threads_stop.set()
        with self._pacer:
            self._pacer.notify_all()
        for helper in self._helpers:
            helper.join(timeout=5)
        self._safely(lambda: registry.unregister(self.owner, using=self.using))
        if self._listening is not None:
            self._listening.close()
        connection_created.disconnect(dispatch_uid="django_dbq.prepare")
        connections.close_all()
        logger.info("Worker %s stopped after %d job step(s)", self.owner, self.processed)
        if any(t.is_alive() for t in self._abandoned):
            # Stuck runner threads would keep the interpreter from exiting.
            self._exit_now(EXIT_RESTART if self.restart else 0)

    def _exit_now(self, status: int) -> None:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)

    def _stop_completer(self) -> None:
        """Let the completer write what is left, then flush anything it could not."""
        self._completer_stop.set()
        self._done_ready.set()
        if self._completer is not None:
            self._completer.join(timeout=30)
        self._safely(self._flush)

    def _release_untracked(self) -> None:
        with self._lock:
            tracked = set(self._held)
        released = store.release_untracked(self.owner, tracked)
        if released:
            logger.warning(
                "Released %d job(s) claimed by a query whose reply was lost with the connection",
                released,
            )

    def _release(self, ids: list[Any]) -> None:
        released = store.release(self.owner, ids)
        with self._lock:
            for pk in ids:
                self._held.pop(pk, None)
        if released:
            logger.info("Released %d unfinished job(s) back to READY", released)
            backend_for(self.using).notify(self.queues)

    def _safely(self, action: Any) -> Any:
        """Run a database action, retrying a lost connection a few times."""
        try:
            return executor.persist(action)
        except DB_ERRORS:
            logger.exception("Giving up on a database action")
            return None

    def _banner(self) -> None:
        connection = connections[self.using]
        wake = self._wake_mode
        logger.info(
            "django_dbq worker %s starting: queues=%s concurrency=%d database=%s lease=%gs "
            "poll=%gs wake=%s schedules=%s%s%s",
            self.owner,
            ",".join(self.queues),
            self.concurrency,
            connection.vendor,
            self.lease,
            self.poll_interval,
            wake,
            "on" if self.schedules else "off",
            " burst" if self.burst else "",
            f" paused={','.join(sorted(self._paused))}" if self._paused else "",
        )
