"""The one validator of django_dbq's numeric options.

JOBS entries (:mod:`django_dbq.job_types`), the django.tasks backend's ``OPTIONS``
and per-task options (:mod:`django_dbq.integrations.tasks_backend`) and the
``DBQ_*`` settings (:mod:`django_dbq.checks`) all check their values with the
rules here, so a value is valid or invalid in the same way everywhere.

Durations must be finite and at most :data:`MAX_SECONDS`: a worker adds them to
the current time, and an infinite or huge one would overflow a datetime inside
one of its threads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: The longest duration any option may have: a year (366 days), in seconds.
MAX_SECONDS = 366 * 24 * 3600


@dataclass(frozen=True)
class Rule:
    """What a valid value is: ``valid(value)``, and ``expected`` to say so in a hint."""

    valid: Callable[[Any], bool]
    expected: str

    def problem(self, value: Any) -> str | None:
        """``None`` if ``value`` is valid, else the hint "use ..." for an error message."""
        return None if self.valid(value) else f"use {self.expected}"


def is_number(value: Any) -> bool:
    """An int or float (not a bool), finite: NaN and the infinities are not numbers here."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def seconds(minimum: float, *, exclusive: bool = False) -> Rule:
    """A duration: a finite number of seconds from ``minimum`` up to :data:`MAX_SECONDS`."""
    low = (lambda v: v > minimum) if exclusive else (lambda v: v >= minimum)
    return Rule(
        lambda v: is_number(v) and low(v) and v <= MAX_SECONDS,
        f"a number of seconds {'>' if exclusive else '>='} {minimum:g} "
        f"and at most {MAX_SECONDS} (a year)",
    )


def whole(minimum: int, maximum: int | None = None) -> Rule:
    """A whole number from ``minimum`` (up to ``maximum`` if given)."""
    expected = (
        f"a whole number from {minimum} to {maximum}"
        if maximum is not None
        else f"a whole number of at least {minimum}"
    )
    return Rule(
        lambda v: is_whole(v) and v >= minimum and (maximum is None or v <= maximum), expected
    )


def dotted_path_or(rule: Rule) -> Rule:
    """``rule``, or a non-empty string (the dotted path of a function)."""
    return Rule(
        lambda v: (isinstance(v, str) and bool(v)) or rule.valid(v),
        f"{rule.expected}, or the dotted path of a function",
    )


#: The retry, lease and time options of a job type (JOBS) and of a django.tasks task.
MAX_ATTEMPTS = whole(1)
BACKOFF = seconds(0)
BACKOFF_MAX = seconds(0)
LEASE_SECONDS = seconds(1)
TIMEOUT = seconds(0, exclusive=True)

#: Global flow control of a job type or queue (see django_dbq.limits).
MAX_RUNNING = whole(1, 100_000)
RATE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(value: Any) -> tuple[int, float] | None:
    """``"50/s"``, ``"10/m"``, ``"100/h"`` as (jobs, per seconds); ``None`` if invalid."""
    if not isinstance(value, str):
        return None
    count, _, unit = value.strip().partition("/")
    unit = unit.strip().lower()
    unit = {"sec": "s", "second": "s", "min": "m", "minute": "m", "hour": "h"}.get(unit, unit)
    try:
        jobs = int(count.strip())
    except ValueError:
        return None
    if unit not in RATE_UNITS or not 1 <= jobs <= 1_000_000:
        return None
    return jobs, RATE_UNITS[unit]


RATE = Rule(
    lambda v: parse_rate(v) is not None,
    'a rate such as "50/s", "10/m" or "100/h" (1 to 1000000 jobs per second, minute or hour)',
)
