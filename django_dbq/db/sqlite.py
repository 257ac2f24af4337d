"""SQLite: one writer at a time; a claim is one ``UPDATE ... RETURNING`` under the
write lock that ``BEGIN IMMEDIATE`` takes up front. Worker connections use WAL
mode and a long busy timeout (``DBQ_SQLITE_BUSY_TIMEOUT``)."""

from __future__ import annotations

from .. import conf
from . import base


class SQLiteBackend(base.ReturningBackend):
    vendor = "sqlite"

    def claim_statement(self, model, pick_text):
        connection = self.connection
        table = base.quote(connection, model._meta.db_table)
        pk = base.quote(connection, model._meta.pk.column)
        return (
            f"UPDATE {table} SET {base.update_set(connection, model)} "
            f"WHERE {pk} IN ({pick_text}) RETURNING {base.returned_columns(connection, model)}"
        )

    def run_claim(self, model, sql, pick_params, set_params):
        connection = self.connection
        params = [*set_params, *pick_params]
        connection.ensure_connection()
        if connection.in_atomic_block:
            return base.returned_jobs(connection, model, sql, params)
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
