"""The task of the property-based worker test (tests/runtime/test_properties.py).

A job's workspace carries its ``plan``: for each step of its chain, one action
per attempt. The task looks up what to do for the current step and attempt and
does it: return (optionally leaving a value in the workspace), raise an
exception of a given kind with a hostile message, call ``sys.exit()``, raise
``KeyboardInterrupt``, leave an unstorable workspace (a datetime, a nesting too
deep, too many bytes), sleep a little. Every execution is recorded (start and
end) so that the test can check no job ran twice at once.
"""

from __future__ import annotations

import datetime
import os
import sys
import threading
import time

from tests.models import Execution


class HostileError(Exception):
    """An exception whose ``str()`` and ``repr()`` both raise."""

    def __str__(self) -> str:
        raise RuntimeError("str() of this exception raises")

    def __repr__(self) -> str:
        raise RuntimeError("repr() of this exception raises")


MESSAGES = {
    "plain": "the task failed",
    "nul": "bad \x00 byte",
    "surrogate": "lone \ud800 surrogate",
    "long": "x" * 5000,
    "lines": "first line\nsecond line\n",
}
EXCEPTIONS = {"ValueError": ValueError, "KeyError": KeyError, "RuntimeError": RuntimeError}


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"d": value}
    return value


def act(job) -> None:
    step = job.step if job.step is not None else 0
    attempt = job.attempts
    actions = job.workspace["plan"][step]
    action = actions[min(attempt, len(actions)) - 1]
    started = time.time()
    record = Execution.objects.create(
        job_id=job.pk,
        pid=os.getpid(),
        thread=threading.current_thread().name,
        started=started,
        finished=0,
    )
    try:
        _do(job, step, action)
    finally:
        Execution.objects.filter(pk=record.pk).update(finished=time.time())


def _do(job, step: int, action: dict) -> None:
    kind = action["do"]
    if action.get("sleep_ms"):
        time.sleep(action["sleep_ms"] / 1000)
    if kind == "return":
        if "value" in action:
            job.workspace[f"out{step}"] = action["value"]
    elif kind == "raise":
        if action["exc"] == "HostileError":
            raise HostileError()
        raise EXCEPTIONS[action["exc"]](MESSAGES[action["message"]])
    elif kind == "exit":
        sys.exit(3)
    elif kind == "interrupt":
        raise KeyboardInterrupt
    elif kind == "nonjson":
        job.workspace[f"out{step}"] = datetime.datetime(2026, 1, 1)
    elif kind == "deep":
        job.workspace[f"out{step}"] = _nested(40)
    elif kind == "oversize":
        job.workspace[f"out{step}"] = "é" * 20_000  # 120,000 bytes as the JSON sent
    else:
        raise AssertionError(f"unknown action {kind!r}")
