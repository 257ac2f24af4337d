"""Waking a worker's main thread: by its own threads, or when a job is enqueued.

:class:`Wake` is the flag the worker's threads set to have the main thread claim
now; it can be waited on together with a database socket. :class:`Listening` is
PostgreSQL's ``LISTEN`` for new jobs, done by the main thread itself while it is
idle, on its own connection (``DBQ_LISTEN_DATABASE`` unset) or on a connection to
the alias that setting names (one that bypasses a transaction-pooling PgBouncer).
So listening costs no thread, and no connection beyond the main thread's own
unless a separate alias is named.

A transaction-pooling PgBouncer hands each transaction to whichever server
connection is free: a ``LISTEN`` made through it stays on a server connection the
worker no longer has, and the worker would never hear a ``NOTIFY``. So a worker
checks at start-up that a ``NOTIFY`` sent through its queue database reaches its
``LISTEN`` (:meth:`Listening.start`); if none arrives within
:data:`PROBE_SECONDS`, it stops listening and polls, and says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import select
import threading
import time
from collections.abc import Sequence
from typing import Any

from django.db import DatabaseError, InterfaceError, connections

from ..db import backend_for

logger = logging.getLogger("django_dbq.worker")

#: Seconds a worker waits at start-up for its own test NOTIFY before it polls.
PROBE_SECONDS = 2.0
#: Longest wait before a lost LISTEN connection is tried again.
RETRY_MAX_SECONDS = 10.0


class Wake:
    """A flag like :class:`threading.Event` whose :meth:`wait` can also return when a
    socket becomes readable (a pipe carries :meth:`set` to ``select``).

    :meth:`set` takes no lock, so it is safe in a signal handler."""

    def __init__(self) -> None:
        self._flag = threading.Event()
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def set(self) -> None:
        if not self._flag.is_set():
            self._flag.set()
            with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending anyway
                os.write(self._write, b"!")

    def is_set(self) -> bool:
        return self._flag.is_set()

    def clear(self) -> None:
        # Clear before draining: a set() between the two leaves the flag set.
        self._flag.clear()
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 512):
                pass

    def wait(self, timeout: float | None = None, also: int | None = None) -> bool:
        """Wait until set, ``timeout`` seconds pass, or the file descriptor ``also`` is
        readable; returns whether the flag is set."""
        if self._flag.is_set():
            return True
        watched = [self._read] if also is None else [self._read, also]
        select.select(watched, [], [], None if timeout is None else max(0.0, timeout))
        return self._flag.is_set()

    def close(self) -> None:
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)


class Listening:
    """``LISTEN`` for new jobs of ``queues`` on the calling thread's connection to
    ``alias``; a notification for one of them sets ``wake``.

    Every method is called from the worker's main thread only.
    """

    def __init__(self, alias: str, queue_alias: str, queues: Sequence[str], wake: Wake) -> None:
        self.alias = alias
        self.queue_alias = queue_alias
        self.queues = set(queues)
        self.wake = wake
        self.active = False  # False once the probe showed that LISTEN does not reach us
        self._raw: Any = None  # the driver connection LISTENed on
        self._handler: Any = None
        self._probe: str | None = None
        self._probe_seen = False
        self._retry_at = 0.0
        self._retry_delay = 0.5

    def _on_payload(self, payload: str) -> None:
        if payload == self._probe:
            self._probe_seen = True
        elif payload in self.queues:
            self.wake.set()

    # --- start-up -------------------------------------------------------------------

    def start(self) -> bool:
        """LISTEN, then check that a NOTIFY sent through the queue database arrives.
        Returns whether the worker is now listening; if not, it polls."""
        self.active = True
        try:
            self.ensure()
            self._probe = f"~probe~{secrets.token_hex(6)}"
            sender = threading.Thread(
                target=_send_probe, args=(self.queue_alias, self._probe), name="dbq-probe"
            )
            sender.start()
            sender.join()
            deadline = time.monotonic() + PROBE_SECONDS
            while not self._probe_seen and time.monotonic() < deadline:
                select.select([self._raw.fileno()], [], [], deadline - time.monotonic())
                self.read()
        except (DatabaseError, InterfaceError) as exc:
            # The database is not reachable now: listen anyway; the loop reconnects.
            logger.warning("Could not check LISTEN at start-up (%s)", exc)
            return True
        if self._probe_seen:
            return True
        self.active = False
        with contextlib.suppress(DatabaseError, InterfaceError):
            backend_for(self.alias).stop_listening(self._raw, self._handler)
        self._raw = None
        return False

    # --- main loop ------------------------------------------------------------------

    def ensure(self) -> bool:
        """LISTEN on the current connection if this thread has not yet (the first
        time, or after the connection was lost and reopened). Returns True when it
        just started: jobs enqueued before then were not announced, so the caller
        claims once more before it waits."""
        connection = connections[self.alias]
        connection.ensure_connection()
        raw = connection.connection
        if raw is self._raw:
            return False
        self._handler = backend_for(self.alias).start_listening(raw, self._on_payload)
        self._raw = raw
        self._retry_delay = 0.5
        logger.info("Listening for new jobs on database %r", self.alias)
        return True

    def fileno(self) -> int | None:
        """The socket to wait on, or ``None`` while not listening."""
        if self._raw is None or time.monotonic() < self._retry_at:
            return None
        try:
            return self._raw.fileno()
        except Exception:
            return None

    def read(self) -> None:
        """Take the notifications waiting on the socket, without blocking."""
        if self._raw is None:
            return
        backend_for(self.alias).read_notifications(self._raw, self._on_payload)

    def refresh(self) -> bool:
        """Between claims: read what arrived and make sure we are listening. Returns
        True if listening (re)started (the caller claims before it waits). A broken
        connection is logged and tried again later, with backoff."""
        if not self.active or time.monotonic() < self._retry_at:
            return False
        try:
            self.read()
            return self.ensure()
        except (DatabaseError, InterfaceError, OSError) as exc:
            logger.warning(
                "LISTEN connection lost (%s); polling, trying again in %.1fs",
                exc,
                self._retry_delay,
            )
            self._raw = None
            with contextlib.suppress(Exception):
                connections[self.alias].close()
            self._retry_at = time.monotonic() + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, RETRY_MAX_SECONDS)
            return False

    def close(self) -> None:
        if self._raw is not None:
            with contextlib.suppress(Exception):
                backend_for(self.alias).stop_listening(self._raw, self._handler)
            self._raw = None


def _send_probe(alias: str, payload: str) -> None:
    """Send the start-up test NOTIFY from a connection of another thread (as the
    processes that enqueue jobs do), then close it."""
    try:
        backend_for(alias).notify_payload(payload)
    except (DatabaseError, InterfaceError) as exc:
        logger.warning("Could not send the LISTEN test notification (%s)", exc)
    finally:
        connections.close_all()
