"""The interface every database backend implements, and what the backends share.

A backend is made for one connection by :func:`django_dbq.db.backend_for`. It
knows the SQL of its database and nothing of job semantics: the store
(:mod:`django_dbq.store`) says what to claim and what to write; the backend
says how, on its database. The job model is passed in (``model``), so this
package imports nothing of django_dbq but its states and settings.

Every claim takes up to ``limit`` runnable jobs (NEW or READY, ``run_after``
passed), highest priority first then oldest, and marks them PROCESSING with the
given owner and lease, counting the attempt, in one short transaction.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

from ..states import RUNNABLE_STATES, JobStates

# Columns whose value after a claim we already know: not read back, set in Python.
SET_BY_CLAIM = ("state", "lease_owner", "lease_expires_at", "started_at", "modified", "finished_at")


class Names:
    """A claim's filter on job names: ``only`` these, or every name ``but`` these."""

    def __init__(self, *, only: Sequence[str] = (), but: Sequence[str] = ()) -> None:
        self.only = tuple(only)
        self.but = tuple(but)

    def __bool__(self) -> bool:
        return bool(self.only or self.but)

    def sql(self, name_column: str) -> tuple[str, list[object]]:
        """The condition (starting with AND) and its parameters."""
        if self.only:
            return f"AND {name_column} IN ({', '.join(['%s'] * len(self.only))})", [*self.only]
        if self.but:
            return f"AND {name_column} NOT IN ({', '.join(['%s'] * len(self.but))})", [*self.but]
        return "", []

    def apply(self, queryset: Any) -> Any:
        if self.only:
            return queryset.filter(name__in=self.only)
        if self.but:
            return queryset.exclude(name__in=self.but)
        return queryset


class Backend:
    """One database's way of doing what the store asks. Subclasses override what differs."""

    vendor = ""
    #: Whether the database can wake idle workers itself (``listen`` and ``notify``).
    supports_notify = False

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection

    # --- claiming ---------------------------------------------------------------------

    def claim(
        self,
        model: type[models.Model],
        owner: str,
        queues: Sequence[str],
        limit: int,
        now: datetime.datetime,
        expires: datetime.datetime,
        cursor: Any = None,
        names: Names | None = None,
    ) -> list[Any]:
        """Claim up to ``limit`` runnable jobs of ``queues`` (not of batch types); with
        ``names``, only jobs of those names or of no other (see :class:`Names`)."""
        raise NotImplementedError

    def claim_batch(
        self,
        model: type[models.Model],
        owner: str,
        name: str,
        queue: str,
        batch_key: str,
        size: int,
        now: datetime.datetime,
        expires: datetime.datetime,
    ) -> list[Any]:
        """Claim up to ``size`` runnable jobs of one batch (name, queue, key), oldest first."""
        raise NotImplementedError

    def new_claim_cursor(self) -> Any:
        """Per-worker state passed back to :meth:`claim` (``None``: none needed)."""
        return None

    # --- writing new rows -----------------------------------------------------------------

    def insert_cursor(self) -> Any:
        """The cursor a single-row INSERT is sent on."""
        return self.connection.cursor()

    def write_rows(self, sql: str, copy_sql: str, rows: list[list[Any]]) -> None:
        """Write prepared rows: ``sql`` is their INSERT, ``copy_sql`` the same as a COPY."""
        with self.connection.cursor() as cursor:
            cursor.executemany(sql, rows)

    # --- connections ------------------------------------------------------------------------

    def prepare_connection(self) -> None:
        """Tune a new worker connection (nothing by default)."""

    def check_writable(self) -> None:
        """One round trip that fails (DatabaseError) while the database takes no writes."""
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    # --- waking idle workers ------------------------------------------------------------------

    def notify(self, queues: Sequence[str]) -> None:
        """Wake workers of ``queues`` now (or at commit inside a transaction)."""

    def notify_payload(self, payload: str) -> None:
        """Send one notification with ``payload`` (a worker's start-up LISTEN check)."""
        raise NotImplementedError(f"{self.vendor} cannot NOTIFY")

    def start_listening(self, raw: Any, on_payload: Any) -> Any:
        """LISTEN on the driver connection ``raw``; ``on_payload(text)`` is called for
        each notification that arrives while a query runs on it. Returns the handler
        to pass to :meth:`stop_listening`."""
        raise NotImplementedError(f"{self.vendor} cannot LISTEN")

    def read_notifications(self, raw: Any, on_payload: Any) -> None:
        """Call ``on_payload(text)`` for each notification waiting on ``raw``'s socket,
        without blocking (a DatabaseError if the connection is gone)."""
        raise NotImplementedError(f"{self.vendor} cannot LISTEN")

    def stop_listening(self, raw: Any, handler: Any) -> None:
        """Forget ``handler`` and UNLISTEN on ``raw``."""
        raise NotImplementedError(f"{self.vendor} cannot LISTEN")


class ReturningBackend(Backend):
    """A database whose claim is one ``UPDATE ... RETURNING`` statement (PostgreSQL,
    SQLite): the backend says how the statement wraps the pick of ids
    (:meth:`claim_statement`) and how it is run (:meth:`run_claim`)."""

    #: Whether the pick locks its rows (``FOR UPDATE SKIP LOCKED``).
    lock_rows = False

    def claim(self, model, owner, queues, limit, now, expires, cursor=None, names=None):
        dt = self.connection.ops.adapt_datetimefield_value
        pick = pick_sql(
            self.connection, model, list(queues), dt(now), limit, lock=self.lock_rows, names=names
        )
        jobs = self.claim_picked(model, owner, pick, now, expires)
        jobs.sort(key=order_key)
        return jobs

    def claim_batch(self, model, owner, name, queue, batch_key, size, now, expires):
        dt = self.connection.ops.adapt_datetimefield_value
        pick = pick_batch_sql(
            self.connection, model, name, queue, batch_key, dt(now), size, lock=self.lock_rows
        )
        jobs = self.claim_picked(model, owner, pick, now, expires)
        jobs.sort(key=lambda job: job.created)
        return jobs

    def claim_picked(self, model, owner, pick, now, expires) -> list[Any]:
        """Mark the rows ``pick`` (SQL, params) selects PROCESSING for ``owner``."""
        connection = self.connection
        dt = connection.ops.adapt_datetimefield_value
        pick_text, pick_params = pick
        key = (type(self), connection.alias, pick_text)
        sql = _statements.get(key)
        if sql is None:
            sql = _statements[key] = self.claim_statement(model, pick_text)
        jobs = self.run_claim(model, sql, pick_params, [owner, dt(expires), dt(now)])
        fill_claimed(jobs, owner, now, expires)
        return jobs

    def claim_statement(self, model: type[models.Model], pick_text: str) -> str:
        """The claim around ``pick_text``; built once per connection and pick."""
        raise NotImplementedError

    def run_claim(
        self, model: type[models.Model], sql: str, pick_params: list[object], set_params: list
    ) -> list[Any]:
        """Run the claim statement; ``set_params`` are those of :func:`update_set`."""
        raise NotImplementedError


# The claim statements, by backend class, connection alias and pick: their text depends
# only on the number of queues and the kind of scan.
_statements: dict[tuple[type, str, str], str] = {}


# --- helpers of the backends whose claim is one UPDATE ... RETURNING ----------------------


def quote(connection: BaseDatabaseWrapper, name: str) -> str:
    return connection.ops.quote_name(name)


def column(connection: BaseDatabaseWrapper, model: type[models.Model], name: str) -> str:
    return quote(connection, model._meta.get_field(name).column)


_returned_cache: dict[type[models.Model], tuple[list[models.Field], list[str]]] = {}


def returned_fields(model: type[models.Model]) -> tuple[list[models.Field], list[str]]:
    """The fields a claim reads back (all but :data:`SET_BY_CLAIM`) and their attnames."""
    found = _returned_cache.get(model)
    if found is None:
        fields = [f for f in model._meta.concrete_fields if f.name not in SET_BY_CLAIM]
        found = _returned_cache[model] = (fields, [f.attname for f in fields])
    return found


def returned_columns(
    connection: BaseDatabaseWrapper, model: type[models.Model], table: str = ""
) -> str:
    prefix = f"{table}." if table else ""
    return ", ".join(prefix + quote(connection, f.column) for f in returned_fields(model)[0])


_converter_cache: dict[tuple[str, type[models.Model]], list[tuple[int, Any, list[Any]]]] = {}


def _converters(connection: BaseDatabaseWrapper, model: type[models.Model]) -> list[Any]:
    key = (connection.alias, model)
    found = _converter_cache.get(key)
    if found is None:
        found = []
        for index, field in enumerate(returned_fields(model)[0]):
            col = field.get_col(model._meta.db_table)
            functions = connection.ops.get_db_converters(col) + field.get_db_converters(connection)
            if functions:
                found.append((index, col, functions))
        _converter_cache[key] = found
    return found


def returned_jobs(
    connection: BaseDatabaseWrapper, model: type[models.Model], sql: str, params: list[object]
) -> list[Any]:
    """Run a claim ``... RETURNING <returned_columns>`` and build its jobs as the ORM
    would (the same converters per column), without compiling a queryset per claim."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    converters = _converters(connection, model)
    names = returned_fields(model)[1]
    jobs = []
    for row in rows:
        values = list(row)
        for index, col, functions in converters:
            for convert in functions:
                values[index] = convert(values[index], col, connection)
        jobs.append(model.from_db(connection.alias, names, values))
    return jobs


def fill_claimed(
    jobs: list[Any], owner: str, now: datetime.datetime, expires: datetime.datetime
) -> None:
    """Set on claimed jobs the columns the claim wrote but did not read back."""
    for job in jobs:
        job.state = JobStates.PROCESSING
        job.lease_owner = owner
        job.lease_expires_at = expires
        job.started_at = None  # set when a runner starts the task (see store.mark_started)
        job.modified = now
        job.finished_at = None


def order_key(job: Any) -> tuple[int, datetime.datetime]:
    return (-job.priority, job.created)


def claimed_values(owner: str, now: datetime.datetime, expires: datetime.datetime) -> dict:
    """The fields an ORM claim sets (the raw SQL claims set the same: :func:`update_set`)."""
    return {
        "state": JobStates.PROCESSING,
        "lease_owner": owner,
        "lease_expires_at": expires,
        "attempts": models.F("attempts") + 1,
        "started_at": None,
        "modified": now,
        "finished_at": None,
    }


def update_set(connection: BaseDatabaseWrapper, model: type[models.Model]) -> str:
    """The SET clause of a raw claim; its parameters: owner, expires, now.

    ``started_at`` is cleared: a claimed job may wait in the worker's buffer, and
    only a job whose task started is charged the attempt if its worker is lost.
    """
    col = lambda name: column(connection, model, name)  # noqa: E731
    return (
        f"{col('state')} = '{JobStates.PROCESSING}', {col('lease_owner')} = %s, "
        f"{col('lease_expires_at')} = %s, {col('attempts')} = {col('attempts')} + 1, "
        f"{col('started_at')} = NULL, {col('modified')} = %s, {col('finished_at')} = NULL"
    )


def pick_sql(
    connection: BaseDatabaseWrapper,
    model: type[models.Model],
    queues: list[str],
    now: object,
    limit: int,
    *,
    lock: bool,
    after: dict[str, tuple[int, datetime.datetime]] | None = None,
    names: Names | None = None,
) -> tuple[str, list[object]]:
    """SELECT the ids of the next runnable jobs, in an order an index can serve.

    Each queue gets its own ``queue_name = %s`` branch: with ``IN``/``ANY`` the
    database can no longer read the claim index in (priority, created) order and
    sorts every runnable row instead. With ``after``, each queue is read only at
    or after a position: same priority and not older, or a higher priority. With
    ``names``, only the jobs of those names (or of no other) are picked.
    """
    table = quote(connection, model._meta.db_table)
    col = lambda name: column(connection, model, name)  # noqa: E731
    dt = connection.ops.adapt_datetimefield_value
    states = ", ".join(f"'{s}'" for s in RUNNABLE_STATES)
    order = f"ORDER BY {col('priority')} DESC, {col('created')} LIMIT %s"
    conditions: list[tuple[str, list[object]]] = []
    name_sql, name_params = names.sql(col("name")) if names else ("", [])
    for queue in queues:
        if after is None:
            conditions.append((name_sql, [queue, *name_params]))
        else:
            priority, created = after[queue]
            conditions.append(
                (
                    f"AND {col('priority')} = %s AND {col('created')} >= %s {name_sql}",
                    [queue, priority, dt(created), *name_params],
                )
            )
            conditions.append(
                (f"AND {col('priority')} > %s {name_sql}", [queue, priority, *name_params])
            )
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


def pick_batch_sql(
    connection: BaseDatabaseWrapper,
    model: type[models.Model],
    name: str,
    queue: str,
    batch_key: str,
    now: object,
    size: int,
    *,
    lock: bool,
) -> tuple[str, list[object]]:
    """SELECT the ids of the oldest runnable jobs of one batch."""
    col = lambda field: column(connection, model, field)  # noqa: E731
    states = ", ".join(f"'{s}'" for s in RUNNABLE_STATES)
    return (
        f"SELECT {col('id')} FROM {quote(connection, model._meta.db_table)} "
        f"WHERE {col('state')} IN ({states}) AND {col('name')} = %s "
        f"AND {col('queue_name')} = %s AND {col('batch_key')} = %s "
        f"AND ({col('run_after')} IS NULL OR {col('run_after')} <= %s) "
        f"ORDER BY {col('created')} LIMIT %s" + (" FOR UPDATE SKIP LOCKED" if lock else ""),
        [name, queue, batch_key, now, size],
    )
