"""Helpers shared by tests/test_models.py and tests/db/test_inserting.py: the creation
hooks that ran, and the SQL statements a test captured."""

from __future__ import annotations

from django.test.utils import CaptureQueriesContext

from tests import tasks


def hook_calls():
    return [arg for name, arg in tasks.calls if name == "creation_hook"]


def statements(queries: CaptureQueriesContext, verb: str) -> list[str]:
    """The captured SQL statements that start with ``verb`` (INSERT, DELETE, ...)."""
    sqls = (q["sql"] for q in queries.captured_queries)
    return [sql for sql in sqls if sql.lstrip().upper().startswith(verb)]


def inserts(queries: CaptureQueriesContext) -> list[str]:
    """INSERT statements, each ``executemany`` call (logged as "N times: INSERT ...")
    and each COPY (PostgreSQL's bulk insert) counted once."""
    sqls = [q["sql"].split(" times: ", 1)[-1] for q in queries.captured_queries]
    return [sql for sql in sqls if sql.lstrip().upper().startswith(("INSERT", "COPY"))]
