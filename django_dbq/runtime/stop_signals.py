"""SIGTERM and SIGINT, handled safely for the worker and the supervisor."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable


def relay_stop_signals(act: Callable[[int], None]) -> None:
    """Call ``act(signum)`` on a thread of its own for each SIGTERM and SIGINT.

    The handler only writes the signal's number to a pipe. A handler runs in the
    main thread between two bytecodes, maybe while that thread holds an Event's lock
    (inside wait() or clear()): calling set() on that Event from the handler would
    wait for the lock forever, and the process would never stop.
    """
    read_fd, write_fd = os.pipe()

    def relay() -> None:
        while data := os.read(read_fd, 1):
            act(data[0])

    threading.Thread(target=relay, name="dbq-signals", daemon=True).start()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: os.write(write_fd, bytes([signum])))
