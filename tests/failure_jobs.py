"""JOBS entries of the failure-path tests (tests/test_failure_paths.py, issue #15).

``failure_tunable`` takes options from the environment, so that a worker or
``manage.py check`` subprocess can be given a bad value without breaking the
settings every other test (and the test process itself) uses:

- ``DBQ_TEST_BAD_LEASE``: its ``lease_seconds`` (e.g. ``inf``);
- ``DBQ_TEST_BAD_BACKOFF``: its ``backoff`` (e.g. ``inf``).
"""

import os

from tests.failure_tasks import LONG_CHAIN_STEPS

T = "tests.failure_tasks."
HOOK = T + "record_failure"

FAILURE_JOBS = {
    "failure_unprintable": {"tasks": [T + "raise_unprintable"], "failure_hook": HOOK},
    "failure_backoff_none": {
        "tasks": [T + "raise_value_error"],
        "max_attempts": 2,
        "backoff": T + "backoff_none",
        "failure_hook": HOOK,
    },
    "failure_sys_exit": {"tasks": [T + "call_sys_exit"], "failure_hook": HOOK},
    "failure_keyboard_interrupt": {"tasks": [T + "raise_keyboard_interrupt"], "failure_hook": HOOK},
    "failure_hostile_message": {"tasks": [T + "raise_hostile_message"], "failure_hook": HOOK},
    "failure_finish": {"tasks": [T + "finish"], "failure_hook": HOOK},
    "failure_poison": {"tasks": [T + "poison_workspace"], "failure_hook": HOOK},
    "failure_innocent": {"tasks": [T + "innocent"], "failure_hook": HOOK},
    "failure_repeat": [T + "count", T + "count"],
    "failure_revisit": [T + "step_a", T + "step_b", T + "step_a", T + "step_c"],
    "failure_three_steps": [T + "step_a", T + "step_b", T + "step_c"],
    "failure_long_chain": [T + f"step_{i:03d}" for i in range(LONG_CHAIN_STEPS)],
    "failure_non_json": [T + "leave_non_json"],
    "failure_non_json_chain": [T + "save_progress", T + "leave_non_json"],
    "failure_marked_sleep": {"tasks": [T + "mark_then_sleep"], "max_attempts": 1},
    "failure_tunable": {"tasks": [T + "innocent"]},
}

if os.environ.get("DBQ_TEST_BAD_LEASE"):
    FAILURE_JOBS["failure_tunable"]["lease_seconds"] = float(os.environ["DBQ_TEST_BAD_LEASE"])
if os.environ.get("DBQ_TEST_BAD_BACKOFF"):
    FAILURE_JOBS["failure_tunable"]["backoff"] = float(os.environ["DBQ_TEST_BAD_BACKOFF"])
