"""Health checks for liveness and readiness probes and cron alerts."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db.models import Max
from django.utils import timezone

from .. import conf
from ..records import WorkerRecord
from . import pauses, stats


@dataclass
class Health:
    """The outcome of :func:`check`: healthy when ``problems`` is empty."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        """One line for a probe's log: what is wrong, or what was checked."""
        if self.problems:
            return "unhealthy: " + "; ".join(self.problems)
        return "ok: " + "; ".join(self.notes or ["nothing to check"])


def _ago(seconds: float) -> str:
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def check(
    *,
    max_heartbeat_age: float | None = None,
    max_lag: float | None = None,
    queues: Sequence[str] = (),
    using: str | None = None,
    now: datetime.datetime | None = None,
) -> Health:
    """Check that a worker heartbeated within ``max_heartbeat_age`` seconds and that no
    ready job of ``queues`` (every queue if empty; paused queues are left out) has
    waited longer than ``max_lag`` seconds. ``None`` skips a check."""
    using = using or conf.database()
    now = now or timezone.now()
    health = Health()
    if max_heartbeat_age is not None:
        newest = WorkerRecord.objects.using(using).aggregate(newest=Max("heartbeat_at"))["newest"]
        if newest is None:
            health.problems.append("no worker is registered (none has started, or all stopped)")
        else:
            age = max(0.0, (now - newest).total_seconds())
            if age > max_heartbeat_age:
                health.problems.append(
                    f"no worker heartbeat within {max_heartbeat_age:g}s (newest {_ago(age)})"
                )
            else:
                health.notes.append(f"newest worker heartbeat {_ago(age)}")
    if max_lag is not None:
        figures = stats.waiting(using=using, now=now)
        paused = pauses.paused_queues(using=using)
        checked = [
            figures.get(name) or stats.QueueFigures(queue=name)
            for name in (queues or sorted(figures))
            if name not in paused
        ]
        worst = None
        for item in checked:
            lag = item.lag(now)
            if lag is not None and lag > max_lag:
                health.problems.append(
                    f"queue {item.queue!r}: the oldest ready job has waited {lag:.0f}s "
                    f"(over {max_lag:g}s)"
                )
            if lag is not None and (worst is None or lag > worst[1]):
                worst = (item.queue, lag)
        if worst is None:
            health.notes.append("no ready job waits")
        elif not health.problems:
            health.notes.append(f"oldest ready job waited {worst[1]:.1f}s (queue {worst[0]!r})")
    return health
