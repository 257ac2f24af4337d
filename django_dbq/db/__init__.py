"""One backend per database, behind the small interface of :class:`base.Backend`.

:func:`backend_for` is the only place in django_dbq that branches on the
database vendor; a new database is a new module here and one line in
:data:`BACKENDS`.
"""

from __future__ import annotations

import weakref

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from .base import Backend
from .mysql import MySQLBackend
from .postgresql import PostgreSQLBackend
from .sqlite import SQLiteBackend

BACKENDS: dict[str, type[Backend]] = {
    "postgresql": PostgreSQLBackend,
    "sqlite": SQLiteBackend,
    "mysql": MySQLBackend,
}


def backend_for(connection: BaseDatabaseWrapper | str) -> Backend:
    """The backend of ``connection`` (a connection or a database alias)."""
    if isinstance(connection, str):
        connection = connections[connection]
    elif not isinstance(connection, BaseDatabaseWrapper):  # django.db.connection, a proxy
        connection = connections[connection.alias]
    backend = _made.get(connection)
    if backend is None:
        try:
            kind = BACKENDS[connection.vendor]
        except KeyError:
            raise NotImplementedError(
                f"django_dbq does not support the {connection.vendor!r} database "
                f"(supported: {', '.join(BACKENDS)})."
            ) from None
        backend = _made[connection] = kind(connection)
    return backend


def forget_broken_connections() -> None:
    """Close this thread's connections that a failed statement (or a failed task)
    left unusable; Django opens a new one on the next query. A connection inside
    ``atomic`` is left to the block that owns it."""
    for connection in connections.all(initialized_only=True):
        if connection.errors_occurred and not connection.in_atomic_block:
            connection.errors_occurred = False
            if not connection.is_usable():
                connection.close()


# One backend per connection object (connections are per thread), made on first use.
_made: weakref.WeakKeyDictionary[BaseDatabaseWrapper, Backend] = weakref.WeakKeyDictionary()


__all__ = ["BACKENDS", "Backend", "backend_for", "forget_broken_connections"]
