"""Waking an idle worker as soon as a job for it is enqueued (where the database can)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from django.db import connections

from ..db import backend_for

logger = logging.getLogger("django_dbq.worker")


class Listener(threading.Thread):
    """A thread that listens on its own connection (PostgreSQL's LISTEN) and sets
    ``wake`` when a job of one of ``queues`` is enqueued; it reconnects with backoff."""

    def __init__(
        self, queues: Sequence[str], wake: threading.Event, stop: threading.Event, using: str
    ) -> None:
        super().__init__(name="dbq-listener", daemon=True)
        self.queues = set(queues)
        self.wake = wake
        self.stop = stop
        self.using = using
        self.listening = threading.Event()

    def _on_queue(self, queue: str | None) -> None:
        if queue is None or queue in self.queues:
            self.wake.set()

    def run(self) -> None:
        delay = 0.5
        while not self.stop.is_set():
            connection = connections[self.using]
            try:
                backend_for(connection).listen(self._on_queue, self.stop, self.listening)
            except Exception as exc:
                if self.listening.is_set():
                    delay = 0.5  # it had worked: this is a new outage
                self.listening.clear()
                logger.warning("LISTEN connection lost (%s); reconnecting in %.1fs", exc, delay)
                try:
                    connection.close()
                except Exception:
                    logger.debug("closing a broken listener connection failed", exc_info=True)
                self.stop.wait(delay)
                delay = min(delay * 2, 10.0)
        connections[self.using].close()
