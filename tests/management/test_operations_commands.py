"""The operators' commands: ``queue`` (pause, resume, list), ``metrics`` (table, JSON,
Prometheus) and ``health`` (exit status and one line for probes)."""

from __future__ import annotations

import datetime
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from django_dbq.models import Job, QueuePause
from django_dbq.operations import registry
from tests.conftest import run_command

pytestmark = pytest.mark.django_db


def call(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_queue_pause_resume_and_list():
    assert "Paused queue 'emails'" in call("queue", "pause", "emails", "--by", "ops")
    assert QueuePause.objects.get().paused_by == "ops"
    assert "was already paused" in call("queue", "pause", "emails")
    assert call("queue", "list").startswith("emails: paused since ")
    assert "by ops" in call("queue", "list")
    assert "Resumed queue 'emails'" in call("queue", "resume", "emails")
    assert "was not paused" in call("queue", "resume", "emails")
    assert call("queue", "list") == "No queue is paused.\n"


def test_queue_pause_names_the_command_when_no_one_is_given():
    call("queue", "pause", "emails")
    assert QueuePause.objects.get().paused_by == "manage.py queue pause"


def test_queue_refuses_a_bad_name_and_pauses_nothing():
    with pytest.raises(CommandError, match="non-empty string"):
        call("queue", "pause", "ok", "")
    with pytest.raises(CommandError, match="the limit is 64"):
        call("queue", "pause", "x" * 65)
    assert not QueuePause.objects.exists()


def _fill() -> None:
    Job.objects.create(name="noop", queue_name="emails")
    Job.objects.create(name="noop", queue_name="emails")
    Job.objects.create(
        name="noop", queue_name="reports", run_after=timezone.now() + datetime.timedelta(hours=1)
    )


def test_metrics_table_shows_each_queue_and_the_totals():
    _fill()
    lines = call("metrics").splitlines()
    assert lines[0].split() == [
        "queue", "ready", "scheduled", "processing", "lag", "done", "24h", "failed", "24h",
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[1:4]}
    assert rows["emails"][1:4] == ["2", "0", "0"]
    assert rows["reports"][1:4] == ["0", "1", "0"]
    assert rows["(all)"][1:4] == ["2", "1", "0"]
    assert "Live workers: 0" in lines


def test_metrics_json_has_the_figures_and_the_workers():
    _fill()
    registry.register("host-1:7:abc", queues=["emails"], concurrency=2, interval=10)
    figures = json.loads(call("metrics", "--format", "json"))
    queues = {q["queue"]: q for q in figures["queues"]}
    assert queues["emails"]["ready"] == 2
    assert queues["emails"]["lag_seconds"] >= 0
    assert queues["reports"]["scheduled"] == 1
    assert figures["totals"]["ready"] == 2
    assert len(figures["per_minute"]) == 60 and len(figures["per_hour"]) == 24
    assert [w["owner"] for w in figures["workers"]] == ["host-1:7:abc"]


def test_metrics_prometheus_is_the_text_format():
    _fill()
    text = call("metrics", "--format", "prometheus")
    assert "# TYPE dbq_jobs_ready gauge" in text
    assert 'dbq_jobs_ready{queue="emails"} 2.0' in text
    assert 'dbq_jobs_scheduled{queue="reports"} 1.0' in text


def test_health_is_unhealthy_without_a_worker():
    with pytest.raises(CommandError, match="unhealthy: no worker is registered"):
        call("health")


def test_health_checks_the_newest_heartbeat():
    record = registry.register("host-1:7:abc", queues=["default"], concurrency=1, interval=10)
    assert call("health").startswith("ok: newest worker heartbeat")
    old = timezone.now() - datetime.timedelta(minutes=5)
    type(record).objects.filter(pk=record.pk).update(heartbeat_at=old)
    with pytest.raises(CommandError, match=r"no worker heartbeat within 60s \(newest 5 min ago\)"):
        call("health")
    assert call("health", "--max-heartbeat-age", "600").startswith("ok:")


def test_health_checks_the_lag_of_the_chosen_queues():
    Job.objects.create(
        name="noop", queue_name="emails", run_after=timezone.now() - datetime.timedelta(minutes=10)
    )
    with pytest.raises(CommandError, match="queue 'emails': the oldest ready job has waited"):
        call("health", "--max-heartbeat-age", "0", "--max-lag", "60")
    assert call("health", "--max-heartbeat-age", "0", "--max-lag", "60", "--queue", "other") == (
        "ok: no ready job waits\n"
    )
    assert call("health", "--max-heartbeat-age", "0", "--max-lag", "3600").startswith(
        "ok: oldest ready job waited"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-lag", "soon"], "--max-lag must be a number of seconds, not 'soon'"),
        (["--max-heartbeat-age", "-1"], "--max-heartbeat-age must be at least 0"),
        (["--queue", ""], "A queue name must be a non-empty string"),
    ],
)
def test_health_refuses_bad_options_with_one_line(args, message):
    with pytest.raises(CommandError, match=message):
        call("health", *args)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_health_exits_non_zero_with_one_line_for_a_probe():
    result = run_command("health", "--max-heartbeat-age", "30")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "CommandError: unhealthy: no worker is registered (none has started, or all stopped)"
    ]
    registry.register("host-1:7:abc", queues=["default"], concurrency=1, interval=10)
    result = run_command("health", "--max-heartbeat-age", "30")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: newest worker heartbeat")
