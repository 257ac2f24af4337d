"""A count of the SQL statements a benchmark process sends, by thread and statement.

Figure 11 (an idle worker's cost) reads transactions per second from PostgreSQL's
``pg_stat_database``; where ``pg_stat_statements`` is not loaded (it needs
``shared_preload_libraries`` and a server restart), this census says which
statements they are. A worker started with ``BENCH_STATEMENT_CENSUS=<file>`` in
its environment (settings ``tests.benchmarks.settings``: the benchmark app's
``ready()`` calls :func:`install`) counts every statement Django's connections
execute, keyed by the thread's name and the statement's text (lists of
parameters collapsed), and rewrites ``<file>`` every :data:`DUMP_SECONDS` with
the counts so far and the time they were taken::

    {"time": 1733490000.25, "counts": {"MainThread | SELECT ...": 12, ...},
     "backends": {"81234": "dbq-completer", ...}}

``backends`` maps the server process of each connection the process opened to the
thread that opened it (figure 13 reads which thread sent what from PostgreSQL's own
log). ``{pid}`` in ``<file>`` is replaced by the process id, so that the processes of
``worker --processes N`` (which share their environment) each write their own file
(figure 14); the file is written once more at exit.

Statements sent past Django's cursor (the listener's ``LISTEN``, ``BEGIN`` and
``COMMIT`` of a transaction) are not counted.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import threading
import time
from collections import Counter
from typing import Any

DUMP_SECONDS = 0.25
_PARAMETER_LIST = re.compile(r"\(\s*%s(?:\s*,\s*%s)+\s*\)")
_SPACES = re.compile(r"\s+")

_counts: Counter[str] = Counter()
_backends: dict[str, str] = {}
_lock = threading.Lock()
_installed = False


def normalise(sql: str) -> str:
    return _SPACES.sub(" ", _PARAMETER_LIST.sub("(%s, ...)", sql)).strip()


def _count(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    key = f"{threading.current_thread().name} | {normalise(str(sql))}"
    with _lock:
        _counts[key] += 1
    return execute(sql, params, many, context)


def _wrap(sender: Any, connection: Any, **kwargs: Any) -> None:
    if _count not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count)
    info = getattr(connection.connection, "info", None)  # psycopg 3; no query sent
    pid = getattr(info, "backend_pid", None)
    if pid:
        with _lock:
            _backends[str(pid)] = threading.current_thread().name


def _write(path: str) -> None:
    with _lock:
        snapshot = {"time": time.time(), "counts": dict(_counts), "backends": dict(_backends)}
    partial = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(partial, "w") as handle:
        json.dump(snapshot, handle)
    os.replace(partial, path)


def _dump(path: str) -> None:
    while True:
        _write(path)
        time.sleep(DUMP_SECONDS)


def install(path: str) -> None:
    """Count every statement of every connection from now on; dump to ``path``."""
    global _installed
    if _installed:
        return
    _installed = True
    from django.db.backends.signals import connection_created

    connection_created.connect(_wrap, dispatch_uid="dbq_bench_census")
    path = path.replace("{pid}", str(os.getpid()))
    atexit.register(_write, path)
    threading.Thread(target=_dump, args=(path,), name="bench-census", daemon=True).start()


def read(path: str) -> dict[str, Any]:
    with open(path) as handle:
        return json.load(handle)


def difference(before: dict[str, Any], after: dict[str, Any]) -> tuple[float, Counter[str]]:
    """(seconds between the two dumps, statements counted between them)."""
    counts = Counter(after["counts"])
    counts.subtract(before["counts"])
    return after["time"] - before["time"], +counts
