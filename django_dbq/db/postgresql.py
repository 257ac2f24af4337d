"""PostgreSQL: claims in one locking statement, COPY for bulk inserts, LISTEN/NOTIFY.

- A claim is one ``WITH picked AS MATERIALIZED (SELECT ... FOR UPDATE SKIP LOCKED
  LIMIT n) UPDATE ... RETURNING`` statement.
- Idle workers are woken by ``LISTEN``; a statement-level trigger on INSERT
  (migrations 0002 and 0005) sends ``NOTIFY`` per runnable row, which PostgreSQL
  folds to one per queue per transaction and delivers at commit.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Sequence
from typing import Any

from . import base

logger = logging.getLogger("django_dbq.db")

NOTIFY_CHANNEL = "django_dbq"


class ClaimCursor:
    """Where one worker's last claims stopped, per queue.

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

    def advance(self, jobs: list[Any], limit: int) -> None:
        # Only a busy queue (the last claim got all it asked for) is worth resuming: an
        # idle one is cheap to scan, and one statement beats a resume plus a rescan.
        self.busy = len(jobs) >= limit
        for job in jobs:  # in run order: the last one per queue is where we stopped
            self.positions[job.queue_name] = (job.priority, job.created)


class PostgreSQLBackend(base.ReturningBackend):
    vendor = "postgresql"
    supports_notify = True
    lock_rows = True

    def claim(self, model, owner, queues, limit, now, expires, cursor=None, names=None):
        if not isinstance(cursor, ClaimCursor):
            return super().claim(model, owner, queues, limit, now, expires, names=names)
        dt = self.connection.ops.adapt_datetimefield_value
        queues = list(queues)
        jobs: list[Any] = []
        if cursor.usable(queues):
            pick = base.pick_sql(
                self.connection,
                model,
                queues,
                dt(now),
                limit,
                lock=True,
                after=cursor.positions,
                names=names,
            )
            jobs = self.claim_picked(model, owner, pick, now, expires)
        if len(jobs) < limit:
            jobs += super().claim(
                model, owner, queues, limit - len(jobs), now, expires, names=names
            )
            cursor.full_scan_at = time.monotonic()
        jobs.sort(key=base.order_key)
        cursor.advance(jobs, limit)
        return jobs

    def new_claim_cursor(self) -> ClaimCursor:
        return ClaimCursor()

    def claim_statement(self, model, pick_text):
        connection = self.connection
        table = base.quote(connection, model._meta.db_table)
        pk = base.quote(connection, model._meta.pk.column)
        # A MATERIALIZED CTE runs the locking SELECT exactly once; the rows it locked
        # cannot change under us, so the UPDATE needs no second state check.
        return (
            f"WITH picked AS MATERIALIZED ({pick_text}) "
            f"UPDATE {table} SET {base.update_set(connection, model)} FROM picked "
            f"WHERE {table}.{pk} = picked.{pk} "
            f"RETURNING {base.returned_columns(connection, model, table)}"
        )

    def run_claim(self, model, sql, pick_params, set_params):
        return base.returned_jobs(self.connection, model, sql, [*pick_params, *set_params])

    def insert_cursor(self) -> Any:
        """Django's cursor, sending parameters apart from the SQL where that is known
        to be safe.

        With psycopg 3, Django binds parameters on the client unless
        ``OPTIONS["server_side_binding"]`` is set: psycopg quotes every value into
        the SQL text, which for a job row takes longer than the rest of the
        enqueue's own Python. Here the values go beside the statement instead, in
        the same round trip, as an unnamed statement (fine behind PgBouncer in
        transaction mode).

        Only Django's own default cursor is replaced, and only when nothing could
        tell: not while queries are logged (``DEBUG``, ``CaptureQueriesContext``:
        the log shows the values only when they are in the text), not when the
        connection has a ``prepare_threshold`` (this cursor would prepare where
        Django's never does), not under a custom ``cursor_factory`` (a tracing
        tool's, say). Django's wrapper stays: its checks, errors and
        ``execute_wrapper`` hooks apply as to any query.
        """
        connection = self.connection
        wrapper = connection.cursor()
        if connection.queries_logged:
            return wrapper
        from django.db.backends.postgresql.psycopg_any import is_psycopg3

        if not is_psycopg3:
            return wrapper
        import psycopg
        from django.db.backends.postgresql.base import Cursor

        raw = connection.connection
        if type(wrapper.cursor) is Cursor and raw.prepare_threshold is None:
            wrapper.cursor.close()
            with connection.wrap_database_errors:
                wrapper.cursor = psycopg.Cursor(raw)
        return wrapper

    def write_rows(self, sql: str, copy_sql: str, rows: list[list[Any]]) -> None:
        connection = self.connection
        start = time.monotonic()
        # COPY is psycopg's own API, under Django's cursor: errors are still raised as
        # Django's DatabaseError, and the statement is logged as Django logs its own.
        with (
            connection.cursor() as cursor,
            connection.wrap_database_errors,
            cursor.cursor.copy(copy_sql) as copy,
        ):
            for values in rows:
                copy.write_row(values)
        if connection.queries_logged:
            connection.queries_log.append(
                {"sql": f"{copy_sql} ({len(rows)} rows)", "time": f"{time.monotonic() - start:.3f}"}
            )

    def notify(self, queues: Sequence[str]) -> None:
        if not queues:
            return
        with self.connection.cursor() as cursor:
            for queue in sorted(set(queues)):
                cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, queue])

    def notify_payload(self, payload: str) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, payload])

    def start_listening(self, raw, on_payload):
        # Notifications that arrive during a query on this connection go to the
        # handler; those that arrive while it is idle are read by read_notifications.
        def handler(note):
            on_payload(note.payload)

        raw.add_notify_handler(handler)
        with self.connection.wrap_database_errors:
            raw.execute(f"LISTEN {NOTIFY_CHANNEL}")
        return handler

    def read_notifications(self, raw, on_payload) -> None:
        with self.connection.wrap_database_errors, raw.lock:
            pgconn = raw.pgconn
            pgconn.consume_input()  # raises if the connection is gone
            encoding = raw.info.encoding
            while (note := pgconn.notifies()) is not None:
                on_payload(note.extra.decode(encoding))

    def stop_listening(self, raw, handler) -> None:
        raw.remove_notify_handler(handler)
        with self.connection.wrap_database_errors:
            raw.execute(f"UNLISTEN {NOTIFY_CHANNEL}")
