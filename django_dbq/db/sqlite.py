"""SQLite: one writer at a time; a claim is one ``UPDATE ... RETURNING`` under the
write lock that ``BEGIN IMMEDIATE`` takes up front. Worker connections use WAL
mode and a long busy timeout (``DBQ_SQLITE_BUSY_TIMEOUT``)."""

from __future__ import annotations

from typing import Any

from .. import conf
from . import base

_statements: dict[tuple[str, str], str] = {}


class SQLiteBackend(base.Backend):
    vendor = "sqlite"

    def claim(self, model, owner, queues, limit, now, expires, cursor=None):
        dt = self.connection.ops.adapt_datetimefield_value
        pick = base.pick_sql(self.connection, model, list(queues), dt(now), limit, lock=False)
        jobs = self._claim(model, owner, pick, now, expires)
        jobs.sort(key=base.order_key)
        return jobs

    def claim_batch(self, model, owner, name, queue, batch_key, size, now, expires):
        dt = self.connection.ops.adapt_datetimefield_value
        pick = base.pick_batch_sql(
            self.connection, model, name, queue, batch_key, dt(now), size, lock=False
        )
        jobs = self._claim(model, owner, pick, now, expires)
        jobs.sort(key=lambda job: job.created)
        return jobs

    def _claim(self, model, owner, pick, now, expires) -> list[Any]:
        connection = self.connection
        dt = connection.ops.adapt_datetimefield_value
        pick_sql, pick_params = pick
        key = (connection.alias, pick_sql)
        sql = _statements.get(key)
        if sql is None:
            table = base.quote(connection, model._meta.db_table)
            pk = base.quote(connection, model._meta.pk.column)
            sql = _statements[key] = (
                f"UPDATE {table} SET {base.update_set(connection, model)} "
                f"WHERE {pk} IN ({pick_sql}) RETURNING {base.returned_columns(connection, model)}"
            )
        params = [owner, dt(expires), dt(now), *pick_params]
        connection.ensure_connection()
        if connection.in_atomic_block:
            jobs = base.returned_jobs(connection, model, sql, params)
            base.fill_claimed(jobs, owner, now, expires)
            return jobs
        # BEGIN IMMEDIATE takes SQLite's single write lock up front (waiting up to the
        # busy timeout), so the select-and-update below can never see a stale snapshot.
        with connection.cursor() as cursor:
            cursor.execute("BEGIN IMMEDIATE")
        try:
            jobs = base.returned_jobs(connection, model, sql, params)
        except BaseException:
            with connection.cursor() as cursor:
                cursor.execute("ROLLBACK")
            raise
        with connection.cursor() as cursor:
            cursor.execute("COMMIT")
        base.fill_claimed(jobs, owner, now, expires)
        return jobs

    def prepare_connection(self) -> None:
        """WAL, a long busy timeout and ``synchronous = NORMAL`` on a worker connection."""
        with self.connection.cursor() as cursor:
            timeout_ms = int(conf.sqlite_busy_timeout() * 1000)  # DBQ_SQLITE_BUSY_TIMEOUT
            cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")

    def check_writable(self) -> None:
        """Take and drop the write lock: fails while another process holds it too long."""
        with self.connection.cursor() as cursor:
            if self.connection.in_atomic_block:
                cursor.execute("SELECT 1")
            else:
                cursor.execute("BEGIN IMMEDIATE")
                cursor.execute("ROLLBACK")
