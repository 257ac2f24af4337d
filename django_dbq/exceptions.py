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
    """Recorded on a waiting job that an operator cancelled (it ends FAILED without
    running; see :func:`django_dbq.store.cancel_waiting`)."""


class NotMigratedError(DbqError):
    """django_dbq's tables are missing or behind its migrations: run ``migrate``."""


class DatabaseUnavailableError(DbqError):
    """The database cannot be reached (a command says so in one line)."""
