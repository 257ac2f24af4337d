"""Tasks and hooks of the failure-path tests (tests/test_failure_paths.py, issue #15).

Workers are separate processes: whatever a test must see from a task or hook is
written to a file whose path the job's workspace names.
"""

from __future__ import annotations

import datetime
import decimal
import json
import sys
import time

# --- hooks ------------------------------------------------------------------------------------


def type_name(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def record_failure(job, exception):
    """Failure hook: append {"job", "type"} of the exception it got to workspace["hook_log"]."""
    path = job.workspace.get("hook_log")
    if path:
        with open(path, "a") as handle:
            handle.write(json.dumps({"job": str(job.pk), "type": type_name(type(exception))}))
            handle.write("\n")


def backoff_none(attempt):
    """A backoff function that forgets to return a number."""
    return None


# --- outcomes that are hard to record ---------------------------------------------------------


class UnprintableError(Exception):
    """An exception whose ``str()`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("this exception cannot be turned into text")


def raise_unprintable(job):
    raise UnprintableError("the message that str() cannot reach")


def raise_value_error(job):
    raise ValueError("the task failed")


def call_sys_exit(job):
    sys.exit("the task called sys.exit()")


def raise_keyboard_interrupt(job):
    raise KeyboardInterrupt


HOSTILE_MESSAGES = {"nul": "bad \x00 byte", "surrogate": "bad \ud800 surrogate"}


def raise_hostile_message(job):
    """ValueError whose text a database may refuse (workspace["kind"]: nul or surrogate)."""
    raise ValueError(HOSTILE_MESSAGES[job.workspace["kind"]])


def finish(job):
    """An ordinary task that succeeds and changes its workspace."""
    job.workspace["finished"] = True


# --- workspaces a database may refuse ---------------------------------------------------------


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"d": value}
    return value


def poison_workspace(job):
    """Leave a workspace that passes the JSON checks but MariaDB will not store."""
    if job.workspace["kind"] == "deep":
        job.workspace["poison"] = nested(40)  # MariaDB's JSON depth limit is 32
    else:
        # 7 MB of UTF-8 (under the 8 MiB limit), but ~21 MB once escaped as \u00e9.
        job.workspace["poison"] = "é" * 3_500_000


def innocent(job):
    """Succeed after workspace["seconds"], changing the workspace (so it is written)."""
    time.sleep(float(job.workspace.get("seconds", 0)))
    job.workspace["done"] = True


# --- chains that name a task more than once ---------------------------------------------------


def count(job):
    job.workspace["n"] = job.workspace.get("n", 0) + 1


def _step(job, name: str) -> None:
    time.sleep(float(job.workspace.get("sleep", 0)))
    job.workspace["trail"] = [*job.workspace.get("trail", []), name]


def step_a(job):
    _step(job, "a")


def step_b(job):
    _step(job, "b")


def step_c(job):
    _step(job, "c")


# --- workspaces that are not JSON -------------------------------------------------------------

NON_JSON = {
    "datetime": lambda: datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
    "decimal": lambda: decimal.Decimal("1.5"),
    "set": lambda: {1, 2},
    "bytes": lambda: b"raw",
}


def leave_non_json(job):
    """Leave workspace["report"]["when"] = a value JSON cannot hold (workspace["kind"])."""
    job.workspace["report"] = {"when": NON_JSON[job.workspace["kind"]]()}


def save_progress(job):
    job.workspace["progress"] = "step one done"


# --- slow jobs that announce their start ------------------------------------------------------


def mark_then_sleep(job):
    """Append the job's id to workspace["marker"], then sleep workspace["seconds"]."""
    with open(job.workspace["marker"], "a") as handle:
        handle.write(f"{job.pk}\n")
    time.sleep(float(job.workspace.get("seconds", 0)))


# --- a long chain of distinct, instant steps -------------------------------------------------

LONG_CHAIN_STEPS = 300


def _make_step(number: int):
    def step(job):
        job.workspace["steps"] = [*job.workspace.get("steps", []), number]

    step.__name__ = step.__qualname__ = f"step_{number:03d}"
    return step


for _number in range(LONG_CHAIN_STEPS):
    globals()[f"step_{_number:03d}"] = _make_step(_number)
