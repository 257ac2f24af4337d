"""Claiming runnable jobs: with :mod:`django_dbq.inserting` (COPY for bulk inserts on
PostgreSQL), the only module whose SQL differs by database.

Every claim takes up to ``limit`` runnable jobs of the given queues (NEW or
READY, ``run_after`` passed), highest priority first then oldest, and marks
them PROCESSING with this worker as lease owner, in one short transaction:

- PostgreSQL: one ``UPDATE ... FROM (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n)
  RETURNING`` statement. Idle workers are woken by ``LISTEN``; a statement-level
  trigger on INSERT sends ``NOTIFY`` (one per queue per statement, delivered at
  commit, so bulk inserts are debounced by the server for free).
- MySQL 8 / MariaDB 10.6+: ``SELECT ... FOR UPDATE SKIP LOCKED`` then ``UPDATE``
  in one transaction, the ORDER BY served by the claim index.
- SQLite: ``BEGIN IMMEDIATE`` (the single writer lock) and one
  ``UPDATE ... RETURNING``; WAL mode and a busy timeout on every worker
  connection.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Mapping, Sequence

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count, F, Min, Q
from django.utils import timezone

from . import conf
from .jobs import Batch
from .models import RUNNABLE_STATES, Job, JobStates

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "django_dbq"
CLAIM_INDEX = "django_dbq_claim"
LEASE_INDEX = "django_dbq_lease"
BATCH_INDEX = "django_dbq_batch"
PRUNE_INDEX = "django_dbq_prune"
TRIGGER_FUNCTION = "django_dbq_notify_insert"
TRIGGER = "django_dbq_job_notify"


def _q(connection: BaseDatabaseWrapper, name: str) -> str:
    return connection.ops.quote_name(name)


# Columns whose value after a claim we already know: not read back, set in Python.
_SET_BY_CLAIM = (
    "state",
    "lease_owner",
    "lease_expires_at",
    "started_at",
    "modified",
    "finished_at",
)


_RETURNED = [f for f in Job._meta.concrete_fields if f.name not in _SET_BY_CLAIM]
_RETURNED_NAMES = [f.attname for f in _RETURNED]


def _columns(connection: BaseDatabaseWrapper, table: str = "") -> str:
    prefix = f"{table}." if table else ""
    return ", ".join(prefix + _q(connection, f.column) for f in _RETURNED)


def _returned_jobs(connection: BaseDatabaseWrapper, sql: str, params: list[object]) -> list[Job]:
    """Run a claim ``... RETURNING <_columns>`` and build its jobs as the ORM would
    (the same converters per column), without compiling a queryset for every claim."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    converters = _converters(connection)
    jobs = []
    for row in rows:
        values = list(row)
        for index, column, functions in converters:
            for convert in functions:
                values[index] = convert(values[index], column, connection)
        jobs.append(Job.from_db(connection.alias, _RETURNED_NAMES, values))
    return jobs


_converter_cache: dict[str, list[tuple[int, object, list]]] = {}


def _converters(connection: BaseDatabaseWrapper) -> list[tuple[int, object, list]]:
    found = _converter_cache.get(connection.alias)
    if found is None:
        found = []
        for index, field in enumerate(_RETURNED):
            column = field.get_col(Job._meta.db_table)
            functions = connection.ops.get_db_converters(column) + field.get_db_converters(
                connection
            )
            if functions:
                found.append((index, column, functions))
        _converter_cache[connection.alias] = found
    return found


def _fill_claimed(
    jobs: list[Job], owner: str, now: datetime.datetime, expires: datetime.datetime
) -> None:
    for job in jobs:
        job.state = JobStates.PROCESSING
        job.lease_owner = owner
        job.lease_expires_at = expires
        job.started_at = now
        job.modified = now
        job.finished_at = None


def _order_key(job: Job) -> tuple[int, datetime.datetime]:
    return (-job.priority, job.created)


class ClaimCursor:
    """Where one worker's last claims stopped, per queue (PostgreSQL).

    After a claim, the claimed rows' entries in the claim index point at dead row
    versions until VACUUM removes them, and PostgreSQL cannot mark them dead
    while reading them (the same scan locked and updated those rows). A scan from
    the start of the index would step over every job claimed since the last
    VACUUM: claims would get slower as a drain goes on. So a worker first looks
    only at or after the position where its last claim of that queue stopped
    (and at higher priorities), and scans from the start only when that finds
    too little or ``FULL_SCAN_EVERY`` seconds have passed, so a job that became
    runnable again behind that position (a retry, a chain's next step) waits at
    most that long while the queue is busy.
    """

    FULL_SCAN_EVERY = 1.0

    def __init__(self) -> None:
        self.positions: dict[str, tuple[int, datetime.datetime]] = {}
        self.full_scan_at = 0.0
        self.busy = False

    def usable(self, queues: Sequence[str]) -> bool:
        fresh = time.monotonic() - self.full_scan_at < self.FULL_SCAN_EVERY
        return self.busy and fresh and all(queue in self.positions for queue in queues)

    def advance(self, jobs: list[Job], limit: int) -> None:
        # Only a busy queue (the last claim got all it asked for) is worth resuming: an
        # idle one is cheap to scan, and one statement beats a resume plus a rescan.
        self.busy = len(jobs) >= limit
        for job in jobs:  # in run order: the last one per queue is where we stopped
            self.positions[job.queue_name] = (job.priority, job.created)


def claim(
    owner: str,
    queues: Sequence[str],
    limit: int,
    lease_seconds: float,
    *,
    using: str = "default",
    now: datetime.datetime | None = None,
    cursor: ClaimCursor | None = None,
) -> list[Job]:
    """Claim up to ``limit`` runnable jobs for ``owner``; return them in run order.

    Each returned job is PROCESSING, leased to ``owner`` until now + ``lease_seconds``
    and has had its ``attempts`` counted. ``now`` defaults to the current time.
    A worker passes its :class:`ClaimCursor` so that busy queues are claimed from
    where it left off (PostgreSQL).
    """
    if limit <= 0 or not queues:
        return []
    connection = connections[using]
    now = now or timezone.now()
    expires = now + datetime.timedelta(seconds=lease_seconds)
    vendor = connection.vendor
    queues = list(queues)
    dt = connection.ops.adapt_datetimefield_value
    lock = vendor == "postgresql"
    if vendor == "postgresql":
        jobs: list[Job] = []
        if cursor is not None and cursor.usable(queues):
            pick = _pick_sql(connection, queues, dt(now), limit, lock=lock, after=cursor.positions)
            jobs = _claim_returning(connection, owner, pick, now, expires)
        if len(jobs) < limit:
            pick = _pick_sql(connection, queues, dt(now), limit - len(jobs), lock=lock)
            jobs += _claim_returning(connection, owner, pick, now, expires)
            if cursor is not None:
                cursor.full_scan_at = time.monotonic()
    elif vendor == "sqlite":
        pick = _pick_sql(connection, queues, dt(now), limit, lock=False)
        jobs = _claim_sqlite(connection, owner, pick, now, expires)
    else:
        candidates = [
            Job.objects.db_manager(using)
            .filter(state=state, batch_key__isnull=True, queue_name=queue)
            .filter(Q(run_after__isnull=True) | Q(run_after__lte=now))
            .order_by("-priority", "created")
            for state in RUNNABLE_STATES
            for queue in queues
        ]
        jobs = _claim_select_then_update(owner, candidates, limit, now, expires, using)
    jobs.sort(key=_order_key)
    if cursor is not None:
        cursor.advance(jobs, limit)
    return jobs


def _pick_sql(
    connection: BaseDatabaseWrapper,
    queues: list[str],
    now: object,
    limit: int,
    *,
    lock: bool,
    after: dict[str, tuple[int, datetime.datetime]] | None = None,
) -> tuple[str, list[object]]:
    """SELECT the ids of the next runnable jobs, in an order an index can serve.

    Each queue gets its own ``queue_name = %s`` branch: with ``IN``/``ANY`` the
    database can no longer read the claim index in (priority, created) order and
    sorts every runnable row instead. With ``after``, each queue is read only at
    or after a position: same priority and not older, or a higher priority.
    """
    table = _q(connection, Job._meta.db_table)
    col = lambda name: _q(connection, Job._meta.get_field(name).column)  # noqa: E731
    dt = connection.ops.adapt_datetimefield_value
    states = ", ".join(f"'{s}'" for s in RUNNABLE_STATES)
    order = f"ORDER BY {col('priority')} DESC, {col('created')} LIMIT %s"
    conditions: list[tuple[str, list[object]]] = []
    for queue in queues:
        if after is None:
            conditions.append(("", [queue]))
        else:
            priority, created = after[queue]
            conditions.append(
                (
                    f"AND {col('priority')} = %s AND {col('created')} >= %s",
                    [queue, priority, dt(created)],
                )
            )
            conditions.append((f"AND {col('priority')} > %s", [queue, priority]))
    # A lone branch selects ids only; branches of a UNION also carry the sort key.
    selected = (
        col("id") if len(conditions) == 1 else f"{col('id')}, {col('priority')}, {col('created')}"
    )
    branch = (
        f"SELECT {selected} FROM {table} "
        f"WHERE {col('state')} IN ({states}) AND {col('batch_key')} IS NULL "
        f"AND {col('queue_name')} = %s {{extra}} "
        f"AND ({col('run_after')} IS NULL OR {col('run_after')} <= %s) {order}"
        + (" FOR UPDATE SKIP LOCKED" if lock else "")
    )
    params: list[object] = []
    parts = []
    for extra, values in conditions:
        parts.append(branch.replace("{extra}", extra))
        params += [*values, now, limit]
    if len(parts) == 1:
        return parts[0], params
    branches = " UNION ALL ".join(
        f"SELECT * FROM ({part}) AS q{number}" for number, part in enumerate(parts)
    )
    return f"SELECT {col('id')} FROM ({branches}) AS runnable {order}", [*params, limit]


def claim_batch(
    owner: str,
    name: str,
    queue: str,
    batch_key: str,
    size: int,
    lease_seconds: float,
    *,
    using: str = "default",
    now: datetime.datetime | None = None,
) -> list[Job]:
    """Claim up to ``size`` runnable jobs of batch job type ``name``, one queue and key.

    Oldest first; priority does not apply within a batch.
    """
    connection = connections[using]
    now = now or timezone.now()
    expires = now + datetime.timedelta(seconds=lease_seconds)
    if connection.vendor == "mysql":
        candidates = [
            Job.objects.db_manager(using)
            .filter(state=state, name=name, queue_name=queue, batch_key=batch_key)
            .filter(Q(run_after__isnull=True) | Q(run_after__lte=now))
            .order_by("created")
            for state in RUNNABLE_STATES
        ]
        jobs = _claim_select_then_update(owner, candidates, size, now, expires, using)
    else:
        dt = connection.ops.adapt_datetimefield_value
        col = lambda field: _q(connection, Job._meta.get_field(field).column)  # noqa: E731
        states = ", ".join(f"'{s}'" for s in RUNNABLE_STATES)
        pick = (
            f"SELECT {col('id')} FROM {_q(connection, Job._meta.db_table)} "
            f"WHERE {col('state')} IN ({states}) AND {col('name')} = %s "
            f"AND {col('queue_name')} = %s AND {col('batch_key')} = %s "
            f"AND ({col('run_after')} IS NULL OR {col('run_after')} <= %s) "
            f"ORDER BY {col('created')} LIMIT %s"
            + (" FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""),
            [name, queue, batch_key, dt(now), size],
        )
        if connection.vendor == "postgresql":
            jobs = _claim_returning(connection, owner, pick, now, expires)
        else:
            jobs = _claim_sqlite(connection, owner, pick, now, expires)
    jobs.sort(key=lambda job: job.created)
    return jobs


def ripe_batches(
    batches: Mapping[str, Batch],
    queues: Sequence[str],
    *,
    using: str = "default",
    now: datetime.datetime | None = None,
    flush: bool = False,
) -> list[tuple[str, str, str]]:
    """The (name, queue, batch key) groups whose batch is due: ``size`` runnable jobs,
    or the oldest has waited ``wait`` seconds (``batches`` maps a batch job type's
    name to its :class:`~django_dbq.jobs.Batch`). With ``flush``, every group with
    a runnable job is due."""
    if not batches or not queues:
        return []
    now = now or timezone.now()
    rows = (
        Job.objects.db_manager(using)
        .runnable(now=now)
        .filter(name__in=list(batches), queue_name__in=list(queues), batch_key__isnull=False)
        .order_by()
        .values("name", "queue_name", "batch_key")
        .annotate(count=Count("pk"), oldest=Min("created"))
    )
    due = []
    for row in rows:
        batch = batches[row["name"]]
        waited = (now - row["oldest"]).total_seconds()
        if flush or row["count"] >= batch.size or waited >= batch.wait:
            due.append((row["oldest"], row["name"], row["queue_name"], row["batch_key"]))
    return [(name, queue, key) for _, name, queue, key in sorted(due)]


def _update_set(connection: BaseDatabaseWrapper) -> str:
    col = lambda name: _q(connection, Job._meta.get_field(name).column)  # noqa: E731
    return (
        f"{col('state')} = '{JobStates.PROCESSING}', {col('lease_owner')} = %s, "
        f"{col('lease_expires_at')} = %s, {col('attempts')} = {col('attempts')} + 1, "
        f"{col('started_at')} = %s, {col('modified')} = %s, {col('finished_at')} = NULL"
    )


_statements: dict[tuple[str, str], str] = {}


def _claim_statement(connection: BaseDatabaseWrapper, pick_sql: str) -> str:
    """The claim statement around ``pick_sql``; its text depends only on the number
    of queues and the kind of scan, so it is built once per connection alias."""
    key = (connection.alias, pick_sql)
    sql = _statements.get(key)
    if sql is None:
        table = _q(connection, Job._meta.db_table)
        pk = _q(connection, Job._meta.pk.column)
        if connection.vendor == "postgresql":
            # A MATERIALIZED CTE runs the locking SELECT exactly once; the rows it
            # locked cannot change under us, so the UPDATE needs no second state check.
            sql = (
                f"WITH picked AS MATERIALIZED ({pick_sql}) "
                f"UPDATE {table} SET {_update_set(connection)} FROM picked "
                f"WHERE {table}.{pk} = picked.{pk} "
                f"RETURNING {_columns(connection, table)}"
            )
        else:
            sql = (
                f"UPDATE {table} SET {_update_set(connection)} WHERE {pk} IN ({pick_sql}) "
                f"RETURNING {_columns(connection)}"
            )
        _statements[key] = sql
    return sql


def _claim_returning(connection, owner, pick, now, expires) -> list[Job]:
    """PostgreSQL: lock the picked rows and mark them PROCESSING in one statement."""
    dt = connection.ops.adapt_datetimefield_value
    pick_sql, pick_params = pick
    sql = _claim_statement(connection, pick_sql)
    params = [*pick_params, owner, dt(expires), dt(now), dt(now)]
    jobs = _returned_jobs(connection, sql, params)
    _fill_claimed(jobs, owner, now, expires)
    return jobs


def _claim_sqlite(connection, owner, pick, now, expires) -> list[Job]:
    """SQLite: one UPDATE ... RETURNING under the write lock of BEGIN IMMEDIATE."""
    dt = connection.ops.adapt_datetimefield_value
    pick_sql, pick_params = pick
    sql = _claim_statement(connection, pick_sql)
    params = [owner, dt(expires), dt(now), dt(now), *pick_params]
    connection.ensure_connection()
    if connection.in_atomic_block:
        jobs = _returned_jobs(connection, sql, params)
        _fill_claimed(jobs, owner, now, expires)
        return jobs
    # BEGIN IMMEDIATE takes SQLite's single write lock up front (waiting up to the
    # busy timeout), so the select-and-update below can never see a stale snapshot.
    with connection.cursor() as cursor:
        cursor.execute("BEGIN IMMEDIATE")
    try:
        jobs = _returned_jobs(connection, sql, params)
    except BaseException:
        with connection.cursor() as cursor:
            cursor.execute("ROLLBACK")
        raise
    with connection.cursor() as cursor:
        cursor.execute("COMMIT")
    _fill_claimed(jobs, owner, now, expires)
    return jobs


def _claim_select_then_update(owner, candidates, limit, now, expires, using) -> list[Job]:
    """MySQL/MariaDB: SELECT ... FOR UPDATE SKIP LOCKED, then UPDATE, in one transaction.

    ``candidates`` are querysets with one equality per index column (one state, one
    queue), each read in index order: InnoDB locks every row a scan touches, so a
    scan must not sort (``state IN (...)`` would). The best ``limit`` rows of their
    union are claimed; the few extra rows locked are released at commit.
    """
    with transaction.atomic(using=using):
        found: list[Job] = []
        for queryset in candidates:
            found += list(queryset.select_for_update(skip_locked=True)[:limit])
        if not found:
            return []
        order = queryset.query.order_by
        if order and order[0] == "-priority":
            found.sort(key=_order_key)
        else:
            found.sort(key=lambda job: job.created)
        jobs = found[:limit]
        Job.objects.db_manager(using).filter(pk__in=[j.pk for j in jobs]).update(
            **_claimed_values(owner, now, expires)
        )
    for job in jobs:
        job.attempts += 1
    _fill_claimed(jobs, owner, now, expires)
    return jobs


# --- waking idle workers -----------------------------------------------------------


def supports_notify(using: str = "default") -> bool:
    """Whether the database can wake idle workers itself (PostgreSQL LISTEN/NOTIFY)."""
    return connections[using].vendor == "postgresql"


def notify(queues: Sequence[str], using: str = "default") -> None:
    """Wake workers of ``queues`` now (or at commit inside a transaction)."""
    if not supports_notify(using) or not queues:
        return
    with connections[using].cursor() as cursor:
        for queue in sorted(set(queues)):
            cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, queue])


class Listener(threading.Thread):
    """A thread that LISTENs on its own connection and sets ``wake`` on NOTIFY."""

    def __init__(
        self, queues: Sequence[str], wake: threading.Event, stop: threading.Event, using: str
    ) -> None:
        super().__init__(name="dbq-listener", daemon=True)
        self.queues = set(queues)
        self.wake = wake
        self.stop = stop
        self.using = using
        self.listening = threading.Event()

    def run(self) -> None:
        delay = 0.5
        while not self.stop.is_set():
            connection = connections[self.using]
            try:
                connection.ensure_connection()
                raw = connection.connection
                raw.execute(f"LISTEN {NOTIFY_CHANNEL}")
                self.listening.set()
                logger.info("Listening for new jobs on channel %s", NOTIFY_CHANNEL)
                # Anything enqueued while we were not listening is found by this claim.
                self.wake.set()
                delay = 0.5
                while not self.stop.is_set():
                    for note in raw.notifies(timeout=0.5):
                        if note.payload in self.queues:
                            self.wake.set()
            except Exception as exc:
                self.listening.clear()
                logger.warning("LISTEN connection lost (%s); reconnecting in %.1fs", exc, delay)
                try:
                    connection.close()
                except Exception:
                    logger.debug("closing a broken listener connection failed", exc_info=True)
                self.stop.wait(delay)
                delay = min(delay * 2, 10.0)
        connections[self.using].close()


def check_writable(using: str = "default") -> None:
    """One round trip that fails (DatabaseError) while the database takes no writes:
    on SQLite it takes and drops the write lock, elsewhere ``SELECT 1``."""
    connection = connections[using]
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite" and not connection.in_atomic_block:
            cursor.execute("BEGIN IMMEDIATE")
            cursor.execute("ROLLBACK")
        else:
            cursor.execute("SELECT 1")


# --- per-connection set-up and schema objects ----------------------------------------


def prepare_connection(connection: BaseDatabaseWrapper) -> None:
    """Tune a worker's connection: WAL and a long busy timeout on SQLite."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            timeout_ms = int(conf.sqlite_busy_timeout() * 1000)  # DBQ_SQLITE_BUSY_TIMEOUT
            cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")


def _index_sql(vendor: str, table: str) -> list[str]:
    runnable = ", ".join(f"'{s}'" for s in RUNNABLE_STATES)
    finished = f"'{JobStates.COMPLETED}', '{JobStates.FAILED}'"
    if vendor in ("postgresql", "sqlite"):
        # Partial indexes: each row version sits in at most one of them, so a state
        # change touches the primary key and one small index, and a guard such as
        # "state = 'PROCESSING' AND id IN (...)" is always served by the primary key.
        return [
            f"CREATE INDEX {CLAIM_INDEX} ON {table} (queue_name, priority DESC, created) "
            f"WHERE state IN ({runnable}) AND batch_key IS NULL",
            f"CREATE INDEX {BATCH_INDEX} ON {table} (name, queue_name, batch_key, created) "
            f"WHERE state IN ({runnable}) AND batch_key IS NOT NULL",
            f"CREATE INDEX {LEASE_INDEX} ON {table} (lease_expires_at) "
            "WHERE lease_expires_at IS NOT NULL",
            f"CREATE INDEX {PRUNE_INDEX} ON {table} (created) WHERE state IN ({finished})",
        ]
    return [
        f"CREATE INDEX {CLAIM_INDEX} ON {table} "
        "(state, batch_key, queue_name, priority DESC, created)",
        f"CREATE INDEX {BATCH_INDEX} ON {table} (state, name, queue_name, batch_key, created)",
        f"CREATE INDEX {LEASE_INDEX} ON {table} (state, lease_expires_at)",
        f"CREATE INDEX {PRUNE_INDEX} ON {table} (state, created)",
    ]


def notify_function_sql() -> str:
    """The PostgreSQL trigger function: one NOTIFY per runnable row inserted.

    PostgreSQL folds identical notifications of one transaction into one, so a
    bulk insert still sends one per queue; asking for the distinct queue names
    first would cost a one-row INSERT (an enqueue) more than it saves.
    """
    states = ", ".join(f"'{s}'" for s in RUNNABLE_STATES)
    return f"""
        CREATE OR REPLACE FUNCTION {TRIGGER_FUNCTION}() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('{NOTIFY_CHANNEL}', queue_name)
            FROM new_jobs WHERE state IN ({states});
            RETURN NULL;
        END
        $$ LANGUAGE plpgsql
        """


def install_schema_objects(apps, schema_editor) -> None:
    """Migration step: the claim, lease and prune indexes, and the NOTIFY trigger."""
    connection = schema_editor.connection
    table = _q(connection, Job._meta.db_table)
    for statement in _index_sql(connection.vendor, table):
        schema_editor.execute(statement)
    if connection.vendor == "postgresql":
        schema_editor.execute(notify_function_sql())
        schema_editor.execute(
            f"CREATE TRIGGER {TRIGGER} AFTER INSERT ON {table} "
            f"REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT "
            f"EXECUTE FUNCTION {TRIGGER_FUNCTION}()"
        )


def remove_schema_objects(apps, schema_editor) -> None:
    """Reverse of :func:`install_schema_objects`."""
    connection = schema_editor.connection
    table = _q(connection, Job._meta.db_table)
    if connection.vendor == "postgresql":
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {table}")
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {TRIGGER_FUNCTION}()")
    for index in (CLAIM_INDEX, BATCH_INDEX, LEASE_INDEX, PRUNE_INDEX):
        if connection.vendor == "mysql":
            schema_editor.execute(f"DROP INDEX {index} ON {table}")
        else:
            schema_editor.execute(f"DROP INDEX IF EXISTS {index}")


def claim_job(
    owner: str, pk: object, lease_seconds: float, *, using: str = "default"
) -> Job | None:
    """Claim one given job if it is runnable now (used by the synchronous mode)."""
    now = timezone.now()
    expires = now + datetime.timedelta(seconds=lease_seconds)
    claimed = (
        Job.objects.db_manager(using)
        .runnable(now=now)
        .filter(pk=pk)
        .update(**_claimed_values(owner, now, expires))
    )
    return Job.objects.db_manager(using).get(pk=pk) if claimed else None


def _claimed_values(
    owner: str, now: datetime.datetime, expires: datetime.datetime
) -> dict[str, object]:
    """The fields an ORM claim sets (the raw SQL claims set the same: _update_set)."""
    return {
        "state": JobStates.PROCESSING,
        "lease_owner": owner,
        "lease_expires_at": expires,
        "attempts": F("attempts") + 1,
        "started_at": now,
        "modified": now,
        "finished_at": None,
    }
