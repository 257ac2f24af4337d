"""Exceptions raised by django_dbq's public API."""

from __future__ import annotations


class DbqError(Exception):
    """Base class of every error django_dbq raises on purpose."""


class UnknownJobError(DbqError, ValueError):
    """A job name that the ``JOBS`` setting does not define."""

    def __init__(self, name: object, known: list[str]) -> None:
        self.name = name
        self.known = known
        listed = ", ".join(sorted(known)) if known else "(none: JOBS is empty)"
        super().__init__(
            f"Unknown job name {name!r}. Known job names: {listed}. "
            "Add it to the JOBS setting or fix the name."
        )


class InvalidWorkspaceError(DbqError, ValueError):
    """A workspace that is not a JSON-serialisable dict."""


class InvalidJobError(DbqError, ValueError):
    """A job field (queue name, priority, run_after, ...) with a bad value."""


class JobConfigurationError(DbqError):
    """The ``JOBS`` setting (or a ``DBQ_*`` setting) is wrong."""


class PermanentJobError(DbqError):
    """A job that can never run as stored (unknown name, a step JOBS does not list, a
    workspace that is not an object): it fails at once, without retries."""


class WorkerLostError(DbqError):
    """Recorded on a job whose worker stopped renewing its lease (killed, frozen, lost)."""


class JobCancelledError(DbqError):
    """Recorded on a job that was cancelled: a waiting one ends FAILED without running
    (:func:`django_dbq.store.cancel_waiting`); a running one when its task stops at
    ``job.checkpoint()`` (which raises this) or when it did not stop within
    ``DBQ_CANCEL_GRACE`` seconds. A cancelled job is never retried."""


class JobTimeoutError(DbqError):
    """Recorded on an attempt whose task ran longer than its job type's ``timeout``;
    the attempt fails (and is retried if attempts are left)."""


class NotMigratedError(DbqError):
    """django_dbq's tables are missing or behind its migrations: run ``migrate``."""


class DatabaseUnavailableError(DbqError):
    """The database cannot be reached (a command says so in one line)."""
