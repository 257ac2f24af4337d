"""The figures of :func:`django_dbq.operations.stats.snapshot` in Prometheus' text
format, written by the official ``prometheus-client`` (an optional extra:
``pip install "django-dbq[prometheus]"``)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .stats import Snapshot

INSTALL_HINT = (
    'Prometheus metrics need the prometheus-client package: pip install "django-dbq[prometheus]"'
)


class MetricsUnavailable(ImproperlyConfigured):
    """prometheus-client is not installed."""


def _client() -> Any:
    try:
        import prometheus_client  # noqa: F401
        from prometheus_client import core, exposition
    except ImportError:
        raise MetricsUnavailable(INSTALL_HINT) from None
    return core, exposition


def content_type() -> str:
    """The Content-Type of :func:`render`'s output."""
    return str(_client()[1].CONTENT_TYPE_LATEST)


def render(snapshot: Snapshot) -> bytes:
    """The snapshot as a Prometheus text exposition."""
    core, exposition = _client()

    class Collector:
        def collect(self) -> Any:
            return list(_families(core, snapshot))

    registry = core.CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return bytes(exposition.generate_latest(registry))


def _families(core: Any, snapshot: Snapshot) -> Any:
    gauge = core.GaugeMetricFamily
    per_queue = [
        ("dbq_jobs_ready", "Jobs ready to run now.", "ready"),
        ("dbq_jobs_scheduled", "Jobs waiting for a later run_after.", "scheduled"),
        ("dbq_jobs_processing", "Jobs a worker holds.", "processing"),
        ("dbq_jobs_completed_24h", "Jobs completed in the last 24 hours.", "completed_24h"),
        ("dbq_jobs_failed_24h", "Jobs failed in the last 24 hours.", "failed_24h"),
    ]
    for name, documentation, attribute in per_queue:
        family = gauge(name, documentation, labels=["queue"])
        for item in snapshot.queues:
            family.add_metric([item.queue], getattr(item, attribute))
        yield family
    lag = gauge(
        "dbq_queue_lag_seconds",
        "How long the oldest ready job has waited (0: none waits).",
        labels=["queue"],
    )
    paused = gauge("dbq_queue_paused", "1 if the queue is paused.", labels=["queue"])
    for item in snapshot.queues:
        lag.add_metric([item.queue], item.lag(snapshot.taken_at) or 0.0)
        paused.add_metric([item.queue], 1.0 if item.paused else 0.0)
    yield lag
    yield paused
    last = snapshot.per_minute[-2] if len(snapshot.per_minute) > 1 else None
    for outcome in ("completed", "failed"):
        family = gauge(
            f"dbq_jobs_{outcome}_last_minute",
            f"Jobs {outcome} in the last whole minute.",
        )
        family.add_metric([], getattr(last, outcome) if last else 0)
        yield family
    workers = gauge("dbq_workers", "Live worker processes.")
    workers.add_metric([], len(snapshot.workers))
    yield workers
    held = gauge("dbq_worker_jobs_held", "Jobs each live worker holds.", labels=["worker"])
    age = gauge(
        "dbq_worker_heartbeat_age_seconds",
        "Seconds since each live worker's heartbeat.",
        labels=["worker"],
    )
    for worker in snapshot.workers:
        held.add_metric([worker.owner], worker.jobs_held)
        age.add_metric(
            [worker.owner], max(0.0, (snapshot.taken_at - worker.heartbeat_at).total_seconds())
        )
    yield held
    yield age
