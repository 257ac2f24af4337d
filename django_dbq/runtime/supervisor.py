"""``worker --processes P``: run P worker processes from one command.

The supervisor starts P copies of the same ``worker`` command (each a full worker
with its own threads and connections, so P processes use P cores), restarts a
child that dies unexpectedly (with backoff, so a crash loop does not spin), and
forwards SIGTERM/SIGINT to every child. It exits once all children have exited:
with status 0 after a signal, or, in ``--burst`` mode, when every child is done.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

from .stop_signals import relay_stop_signals

logger = logging.getLogger("django_dbq.worker")

RESTART_BACKOFF_MAX = 30.0


def child_argv(argv: Sequence[str]) -> list[str]:
    """The command line of one child: ours, without ``--processes``."""
    args = list(argv)
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in ("--processes", "-p"):
            skip = True
            continue
        if arg.startswith("--processes="):
            continue
        out.append(arg)
    return [sys.executable, *out]


class Supervisor:
    """Starts, watches and stops ``processes`` worker children."""

    def __init__(self, processes: int, argv: Sequence[str], *, burst: bool = False) -> None:
        self.processes = processes
        self.argv = child_argv(argv)
        self.burst = burst
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self._stopping = threading.Event()
        self._signals = 0

    def run(self) -> int:
        relay_stop_signals(lambda signum: self._forward(signum, None))
        logger.info("Supervisor %d starting %d worker processes", os.getpid(), self.processes)
        backoff = {slot: 0.5 for slot in range(self.processes)}
        slots: dict[int, subprocess.Popen[bytes] | None] = {}
        for slot in range(self.processes):
            slots[slot] = self._start()
        while True:
            alive = 0
            for slot, child in list(slots.items()):
                if child is None:
                    continue
                code = child.poll()
                if code is None:
                    alive += 1
                    continue
                slots[slot] = None
                if self._stopping.is_set() or (self.burst and code == 0):
                    continue
                logger.warning(
                    "Worker process %d exited with status %s; restarting in %.1fs",
                    child.pid,
                    code,
                    backoff[slot],
                )
                self._stopping.wait(backoff[slot])
                backoff[slot] = min(backoff[slot] * 2, RESTART_BACKOFF_MAX)
                if not self._stopping.is_set():
                    slots[slot] = self._start()
                    alive += 1
            if not alive:
                return 0
            self._stopping.wait(0.2)

    def _start(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "DBQ_SUPERVISED": "1"}
        # Own session: a Ctrl-C in a terminal reaches the supervisor only, which forwards it.
        child = subprocess.Popen(self.argv, env=env, start_new_session=True)
        logger.info("Started worker process %d", child.pid)
        self.children[child.pid] = child
        return child

    def _forward(self, signum: int, frame: Any) -> None:
        self._signals += 1
        self._stopping.set()
        for child in list(self.children.values()):  # the main thread may add one
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signum)
