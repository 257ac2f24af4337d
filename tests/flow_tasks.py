"""Tasks of the flow-control tests (tests/runtime/test_flow.py): each appends a line
to the file named by ``workspace["log"]``, so that tests read what happened in the
worker processes."""

from __future__ import annotations

import os
import socket
import time


def _log(job, *fields) -> None:
    with open(job.workspace["log"], "a") as handle:
        handle.write(" ".join(str(f) for f in [job.pk, os.getpid(), *fields]) + "\n")


def span(job):
    """Run for ``workspace["seconds"]``; log the start and end times."""
    start = time.time()
    time.sleep(float(job.workspace.get("seconds", 0)))
    _log(job, "span", f"{start:.6f}", f"{time.time():.6f}")


def start(job):
    """Log the start time and the time its rate limit's token allowed (the rate tests)."""
    now = time.time()
    _log(job, "start", f"{getattr(job, '_token_at', now):.6f}", f"{now:.6f}")


def sleep_forever(job):
    """Log the start, then sleep for an hour: only a timeout or a cancel ends it."""
    _log(job, "start", job.attempts)
    time.sleep(3600)
    _log(job, "woke")


def read_forever(job):
    """Log the start, then block reading a socket that never sends."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname())
    _log(job, "start", job.attempts)
    client.recv(1)  # blocks: the listener never accepts nor sends
    _log(job, "woke")


def cooperative(job):
    """Work in small steps, stopping at a checkpoint when asked to."""
    _log(job, "start", job.attempts)
    for _ in range(3000):
        job.checkpoint()
        time.sleep(0.02)
    _log(job, "finished")
