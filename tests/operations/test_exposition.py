"""django_dbq.operations.exposition: a snapshot in Prometheus' text format."""

from __future__ import annotations

import datetime
import sys

import pytest
from prometheus_client import exposition as prometheus_exposition
from prometheus_client.parser import text_string_to_metric_families

from django_dbq.operations import exposition, pauses, registry, stats
from django_dbq.records import WorkerRecord
from django_dbq.states import JobStates

from .factories import NOW, at, finished, job

pytestmark = pytest.mark.django_db

SECOND = datetime.timedelta(seconds=1)


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition: (name, labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def worker(owner: str, *, held: int, heartbeat_ago: float) -> None:
    record = registry.register(owner, queues=["mail"], concurrency=4, interval=5)
    WorkerRecord.objects.filter(pk=record.pk).update(
        jobs_held=held, heartbeat_at=NOW - heartbeat_ago * SECOND
    )


@pytest.fixture
def rendered() -> bytes:
    for seconds in (42, 7, 1):
        job("mail", state=JobStates.READY, created=NOW - seconds * SECOND)
    job("mail", state=JobStates.READY, run_after=NOW + 60 * SECOND)
    job("mail", state=JobStates.PROCESSING)
    job("sms", state=JobStates.READY, created=NOW - 3 * SECOND)
    pauses.pause("sms")
    finished(at(11, 59, 10), "mail")  # the last whole minute at NOW (12:00:05)
    finished(at(11, 59, 20), "mail")
    finished(at(11, 59, 30), "mail", failed=True)
    finished(at(12, 0, 1), "mail")  # the current minute
    finished(at(10, 30), "mail", failed=True)
    worker("w1", held=3, heartbeat_ago=2)
    worker("w2", held=0, heartbeat_ago=7)
    return exposition.render(stats.snapshot(now=NOW))


def test_render_gives_the_waiting_jobs_per_queue(rendered):
    text = rendered.decode()
    assert 'dbq_jobs_ready{queue="mail"} 3.0' in text
    values = samples(rendered)
    assert values[("dbq_jobs_ready", (("queue", "mail"),))] == 3
    assert values[("dbq_jobs_ready", (("queue", "sms"),))] == 1
    assert values[("dbq_jobs_scheduled", (("queue", "mail"),))] == 1
    assert values[("dbq_jobs_processing", (("queue", "mail"),))] == 1


def test_render_gives_the_lag_and_pause_of_each_queue(rendered):
    values = samples(rendered)
    assert values[("dbq_queue_lag_seconds", (("queue", "mail"),))] == 42.0
    assert values[("dbq_queue_lag_seconds", (("queue", "sms"),))] == 3.0
    assert values[("dbq_queue_paused", (("queue", "mail"),))] == 0
    assert values[("dbq_queue_paused", (("queue", "sms"),))] == 1


def test_render_gives_the_finished_jobs(rendered):
    values = samples(rendered)
    assert values[("dbq_jobs_completed_24h", (("queue", "mail"),))] == 3
    assert values[("dbq_jobs_failed_24h", (("queue", "mail"),))] == 2
    assert values[("dbq_jobs_completed_last_minute", ())] == 2
    assert values[("dbq_jobs_failed_last_minute", ())] == 1


def test_render_gives_the_live_workers(rendered):
    values = samples(rendered)
    assert values[("dbq_workers", ())] == 2
    assert values[("dbq_worker_jobs_held", (("worker", "w1"),))] == 3
    assert values[("dbq_worker_jobs_held", (("worker", "w2"),))] == 0
    assert values[("dbq_worker_heartbeat_age_seconds", (("worker", "w1"),))] == 2.0
    assert values[("dbq_worker_heartbeat_age_seconds", (("worker", "w2"),))] == 7.0


def test_a_queue_where_nothing_waits_has_a_lag_of_zero():
    registry.register("w1", queues=["idle"], concurrency=1, interval=5)

    values = samples(exposition.render(stats.snapshot(now=NOW)))

    assert values[("dbq_queue_lag_seconds", (("queue", "idle"),))] == 0
    assert values[("dbq_jobs_ready", (("queue", "idle"),))] == 0


def test_content_type_is_the_prometheus_text_format():
    assert exposition.content_type() == prometheus_exposition.CONTENT_TYPE_LATEST
    assert exposition.content_type().startswith("text/plain; version=")


def test_without_prometheus_client_render_says_what_to_install(monkeypatch):
    snapshot = stats.snapshot(now=NOW)
    for name in [m for m in sys.modules if m.split(".")[0] == "prometheus_client"]:
        monkeypatch.setitem(sys.modules, name, None)

    with pytest.raises(exposition.MetricsUnavailable, match="django-dbq\\[prometheus\\]"):
        exposition.render(snapshot)
    with pytest.raises(exposition.MetricsUnavailable):
        exposition.content_type()
