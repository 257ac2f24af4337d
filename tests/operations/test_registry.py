"""django_dbq.operations.registry: a running worker's row, written at start, renewed at
each heartbeat, deleted when it stops, and pruned when its expiry passed."""

from __future__ import annotations

import datetime
import os
import socket

import pytest
from django.utils import timezone

from django_dbq.operations import registry
from django_dbq.records import WorkerRecord

pytestmark = pytest.mark.django_db

INTERVAL = 2.0
#: How long a row outlives its last heartbeat.
LIFETIME = datetime.timedelta(
    seconds=registry.MISSED_BEATS * INTERVAL + registry.EXPIRY_SLACK_SECONDS
)


def start(owner: str = "host-1:100:abc", **kwargs) -> WorkerRecord:
    options = {"queues": ["default", "mail"], "concurrency": 4, "interval": INTERVAL}
    return registry.register(owner, **{**options, **kwargs})


def expire(owner: str) -> None:
    """Make ``owner``'s row look like that of a worker that died a minute ago."""
    gone = timezone.now() - datetime.timedelta(minutes=1)
    WorkerRecord.objects.filter(owner=owner).update(heartbeat_at=gone, expires_at=gone)


def test_register_writes_a_row_with_host_pid_queues_and_concurrency():
    before = timezone.now()
    start("w1", queues=["default", "mail"], concurrency=4)
    after = timezone.now()

    row = WorkerRecord.objects.get()
    assert row.owner == "w1"
    assert (row.host, row.pid) == (socket.gethostname()[:255], os.getpid())
    assert (row.queues, row.concurrency) == (["default", "mail"], 4)
    assert before <= row.started_at <= after
    assert row.heartbeat_at == row.started_at
    assert row.expires_at == row.heartbeat_at + LIFETIME
    assert (row.jobs_held, row.jobs_done) == (0, 0)


def test_register_again_with_the_same_owner_replaces_the_row():
    first = start("w1", queues=["default"], concurrency=1)
    start("other")

    second = start("w1", queues=["mail", "sms"], concurrency=8)

    rows = {row.owner: row for row in WorkerRecord.objects.all()}
    assert sorted(rows) == ["other", "w1"]
    assert rows["w1"].pk == second.pk != first.pk
    assert (rows["w1"].queues, rows["w1"].concurrency) == (["mail", "sms"], 8)


def test_beat_updates_heartbeat_expiry_and_counts():
    record = start("w1")
    WorkerRecord.objects.filter(pk=record.pk).update(
        heartbeat_at=record.heartbeat_at - datetime.timedelta(seconds=30)
    )
    before = timezone.now()

    registry.beat(record, jobs_held=3, jobs_done=17, interval=INTERVAL)

    row = WorkerRecord.objects.get()
    assert row.pk == record.pk
    assert row.heartbeat_at >= before
    assert row.expires_at == row.heartbeat_at + LIFETIME
    assert (row.jobs_held, row.jobs_done) == (3, 17)


def test_beat_writes_the_row_again_when_it_was_pruned():
    record = start("w1", queues=["mail"], concurrency=2)
    expire("w1")
    assert registry.prune_dead() == 1
    assert not WorkerRecord.objects.exists()

    registry.beat(record, jobs_held=1, jobs_done=5, interval=INTERVAL)

    row = WorkerRecord.objects.get()
    assert (row.owner, row.queues, row.concurrency) == ("w1", ["mail"], 2)
    assert (row.jobs_held, row.jobs_done) == (1, 5)
    assert row.expires_at > timezone.now()
    assert registry.live_workers() == [row]


def test_unregister_deletes_only_that_workers_row():
    start("w1")
    start("w2")

    registry.unregister("w1")

    assert list(WorkerRecord.objects.values_list("owner", flat=True)) == ["w2"]


def test_unregister_of_an_unknown_owner_deletes_nothing():
    start("w1")

    registry.unregister("nobody")

    assert WorkerRecord.objects.count() == 1


def test_prune_dead_deletes_only_expired_rows():
    start("alive")
    start("dead-1")
    start("dead-2")
    expire("dead-1")
    expire("dead-2")

    assert registry.prune_dead() == 2

    assert list(WorkerRecord.objects.values_list("owner", flat=True)) == ["alive"]
    assert registry.prune_dead() == 0


def test_live_workers_excludes_expired_rows_without_deleting_them():
    start("alive")
    start("dead")
    expire("dead")

    assert [w.owner for w in registry.live_workers()] == ["alive"]
    assert WorkerRecord.objects.count() == 2


def test_live_workers_are_ordered_by_host_and_pid():
    for owner, host, pid in [("c", "b-host", 1), ("a", "a-host", 9), ("b", "a-host", 2)]:
        start(owner)
        WorkerRecord.objects.filter(owner=owner).update(host=host, pid=pid)

    assert [w.owner for w in registry.live_workers()] == ["b", "a", "c"]
