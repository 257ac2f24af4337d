"""Lazy, typed access to django_dbq's settings.

Nothing here is read at import time: every value is looked up on the settings
object when it is needed, so ``override_settings`` in tests just works.

=============================  =======  =========================================
setting                        default  meaning
=============================  =======  =========================================
``DBQ_LEASE_SECONDS``          30       how long a claimed job's lease lasts; the
                                        worker renews it every third of that
``DBQ_RESCUE_INTERVAL``        5        seconds between a worker's scans for
                                        jobs whose lease has expired
``DBQ_MAX_ERRORS_KEPT``        20       attempt errors kept on a job (oldest go)
``DBQ_CLAIM_BATCH``            100      most jobs one worker claims per query
``DBQ_RUN_SYNCHRONOUSLY``      False    run every new job's chain in the creating
                                        process when its transaction commits
``DBQ_SQLITE_BUSY_TIMEOUT``    30       SQLite only: seconds a worker's statement
                                        waits for another process's write lock
``DBQ_MAX_WORKSPACE_BYTES``    8 MiB    largest workspace (as UTF-8 JSON) a job
                                        may be created with or a task may leave;
                                        ``None``: no limit
``DBQ_CANCEL_GRACE``           30       seconds a running job asked to stop has
                                        before its worker ends it
``DBQ_METRICS_TOKEN``          None     a bearer token that opens the metrics
                                        view to a scraper (staff login always
                                        does); at least 16 characters
``DBQ_LISTEN_DATABASE``        (queue)  PostgreSQL: the database alias a worker
                                        LISTENs on for new jobs (one that
                                        bypasses a transaction-pooling PgBouncer);
                                        ``None``: do not LISTEN, poll
``DBQ_DATABASE``               default  the alias (a key of ``DATABASES``) that
                                        holds the queue's tables; another alias
                                        needs ``django_dbq.routers.QueueRouter``
=============================  =======  =========================================
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "DBQ_LEASE_SECONDS": 30.0,
    "DBQ_RESCUE_INTERVAL": 5.0,
    "DBQ_MAX_ERRORS_KEPT": 20,
    "DBQ_CLAIM_BATCH": 100,
    "DBQ_RUN_SYNCHRONOUSLY": False,
    "DBQ_SQLITE_BUSY_TIMEOUT": 30.0,
    "DBQ_MAX_WORKSPACE_BYTES": 8 * 1024 * 1024,
    "DBQ_METRICS_TOKEN": None,
    "DBQ_CANCEL_GRACE": 30.0,
    # Unset: the alias the worker's jobs live in (see listen_database()).
    "DBQ_LISTEN_DATABASE": "default",
    "DBQ_DATABASE": "default",
}

#: The shortest DBQ_METRICS_TOKEN accepted.
METRICS_TOKEN_MIN_LENGTH = 16

# Largest traceback text kept for one attempt, in characters.
MAX_TRACEBACK_CHARS = 8000


def get(name: str) -> Any:
    """Return the value of the ``DBQ_*`` setting ``name`` or its default."""
    return getattr(settings, name, DEFAULTS[name])


def listen_database(queue_alias: str) -> str | None:
    """The alias a worker LISTENs on for new jobs in ``queue_alias``, or ``None`` to
    poll only (``DBQ_LISTEN_DATABASE``; unset: ``queue_alias`` itself)."""
    return getattr(settings, "DBQ_LISTEN_DATABASE", queue_alias) or None


def lease_seconds() -> float:
    return float(get("DBQ_LEASE_SECONDS"))


def rescue_interval() -> float:
    return float(get("DBQ_RESCUE_INTERVAL"))


def max_errors_kept() -> int:
    return int(get("DBQ_MAX_ERRORS_KEPT"))


def claim_batch() -> int:
    return int(get("DBQ_CLAIM_BATCH"))


def raw_jobs() -> Any:
    """The raw ``JOBS`` setting, or ``None`` when it is not defined."""
    return getattr(settings, "JOBS", None)


def run_synchronously() -> bool:
    return bool(get("DBQ_RUN_SYNCHRONOUSLY"))


def sqlite_busy_timeout() -> float:
    return float(get("DBQ_SQLITE_BUSY_TIMEOUT"))


def max_workspace_bytes() -> int | None:
    value = get("DBQ_MAX_WORKSPACE_BYTES")
    return None if value is None else int(value)


def metrics_token() -> str | None:
    value = get("DBQ_METRICS_TOKEN")
    return value or None


def cancel_grace() -> float:
    return float(get("DBQ_CANCEL_GRACE"))


def database() -> str:
    """The alias of the database that holds the queue's tables (``DBQ_DATABASE``).

    Read at every call, so that ``override_settings`` works and a default argument
    ``using=None`` follows the setting rather than the value it had at import time.
    """
    return str(get("DBQ_DATABASE"))
