"""django_dbq.store.claim on each database backend: what a claim takes, in what order,
and that no job is claimed twice; the claim index and PostgreSQL's NOTIFY trigger."""

from __future__ import annotations

import datetime
import threading

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from django_dbq import store
from django_dbq.db.postgresql import NOTIFY_CHANNEL, ClaimCursor
from django_dbq.models import Job

pytestmark = pytest.mark.django_db


def make(name: str = "noop", **fields) -> Job:
    return Job.objects.create(name=name, **fields)


def test_claim_marks_jobs_processing_with_lease_and_counts_the_attempt():
    job = make()
    before = timezone.now()
    [claimed] = store.claim("me", ["default"], 10, 30)
    assert claimed.pk == job.pk
    job.refresh_from_db()
    assert job.state == Job.STATES.PROCESSING
    assert job.lease_owner == "me"
    assert job.attempts == 1
    assert job.started_at is None  # set when a runner starts its task
    assert before + datetime.timedelta(seconds=29) < job.lease_expires_at
    assert job.lease_expires_at <= timezone.now() + datetime.timedelta(seconds=30)


def test_claim_takes_priority_first_then_oldest():
    now = timezone.now()
    low_old = make(priority=0, created=now - datetime.timedelta(minutes=5))
    low_new = make(priority=0, created=now)
    high = make(priority=10, created=now)
    claimed = store.claim("me", ["default"], 10, 30)
    assert [j.pk for j in claimed] == [high.pk, low_old.pk, low_new.pk]


def test_claim_respects_limit_queue_state_and_run_after():
    now = timezone.now()
    wanted = make(queue_name="emails")
    make(queue_name="other")
    make(queue_name="emails", run_after=now + datetime.timedelta(hours=1))
    done = make(queue_name="emails")
    Job.objects.filter(pk=done.pk).update(state=Job.STATES.COMPLETED)
    extra = make(queue_name="emails")
    claimed = store.claim("me", ["emails"], 1, 30)
    assert [j.pk for j in claimed] == [wanted.pk]
    claimed = store.claim("me", ["emails"], 10, 30)
    assert [j.pk for j in claimed] == [extra.pk]
    assert store.claim("me", ["emails"], 10, 30) == []


def test_a_deferred_job_is_claimed_once_its_time_has_come():
    now = timezone.now()
    job = make(run_after=now + datetime.timedelta(minutes=10))
    assert store.claim("me", ["default"], 10, 30, now=now) == []
    later = now + datetime.timedelta(minutes=10, seconds=1)
    assert [j.pk for j in store.claim("me", ["default"], 10, 30, now=later)] == [job.pk]


def test_claim_serves_several_queues():
    a = make(queue_name="a")
    b = make(queue_name="b")
    make(queue_name="c")
    claimed = store.claim("me", ["a", "b"], 10, 30)
    assert {j.pk for j in claimed} == {a.pk, b.pk}


def test_claimed_instances_carry_their_fields():
    make("chain", workspace={"x": [1, 2]}, priority=3)
    [job] = store.claim("me", ["default"], 1, 30)
    assert job.workspace == {"x": [1, 2], "created_by_hook": True}
    assert job.priority == 3
    assert job.next_task == "tests.tasks.step_one"
    assert job.errors == []
    assert timezone.is_aware(job.created)


@pytest.mark.django_db(transaction=True)
def test_concurrent_claimers_never_take_the_same_job():
    Job.objects.bulk_create_jobs([{"name": "noop"} for _ in range(600)])
    taken: dict[int, list] = {}
    errors: list[BaseException] = []

    def claimer(number: int) -> None:
        mine = taken.setdefault(number, [])
        try:
            while True:
                batch = store.claim(f"claimer-{number}", ["default"], 7, 30)
                if not batch:
                    return
                mine.extend(j.pk for j in batch)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    everything = [pk for pks in taken.values() for pk in pks]
    assert len(everything) == 600
    assert len(set(everything)) == 600
    owners = dict(Job.objects.values_list("pk", "lease_owner"))
    for number, pks in taken.items():
        assert all(owners[pk] == f"claimer-{number}" for pk in pks)


def test_claim_index_exists():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Job._meta.db_table)
    assert "django_dbq_claim" in constraints


def _notifications_of(insert):
    """The payloads listeners get for what ``insert()`` writes and commits."""
    import psycopg

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        insert()
        return sorted(n.payload for n in listener.notifies(timeout=0.5))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_insert_notifies_listeners_at_commit_once_per_queue():
    def insert():
        Job.objects.bulk_create_jobs(
            [{"name": "noop"} for _ in range(50)] + [{"name": "noop", "queue_name": "b"}]
        )

    assert _notifications_of(insert) == ["b", "default"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_inserting_finished_jobs_notifies_nobody():
    def insert():
        with transaction.atomic():
            make(state=Job.STATES.COMPLETED)
            make(state=Job.STATES.FAILED, queue_name="b")
        make(queue_name="c")  # runnable: the listener does hear this one

    assert _notifications_of(insert) == ["c"]


@pytest.mark.django_db(transaction=True)
def test_migration_0010_removes_and_installs_the_indexes_and_trigger():
    from importlib import import_module

    from django.apps import apps

    migration = import_module("django_dbq.migrations.0010_indexes_and_notify")
    editor = connection.schema_editor(atomic=False)

    def present():
        with connection.cursor() as cursor:
            names = set(connection.introspection.get_constraints(cursor, Job._meta.db_table))
            if connection.vendor == "postgresql":
                cursor.execute(
                    "SELECT tgname FROM pg_trigger WHERE tgname = 'django_dbq_job_notify'"
                )
                names |= {row[0] for row in cursor.fetchall()}
        return names & {*migration.INDEXES, migration.CONTEXT_INDEX, "django_dbq_job_notify"}

    expected = {*migration.INDEXES, migration.CONTEXT_INDEX}
    if connection.vendor == "postgresql":
        expected.add("django_dbq_job_notify")
    assert present() == expected
    try:
        migration.remove(apps, editor)
        assert present() == set()
    finally:
        migration.install(apps, editor)
    assert present() == expected
    if connection.vendor == "postgresql":
        assert _notifications_of(lambda: make(queue_name="b")) == ["b"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the claim cursor is PostgreSQL's")
def test_a_claim_cursor_resumes_where_the_last_claim_stopped_and_rescans_from_the_start():
    now = timezone.now()
    first = [make(created=now + datetime.timedelta(seconds=n)) for n in range(3)]
    cursor = ClaimCursor()
    claimed = store.claim("me", ["default"], 2, 30, cursor=cursor)
    assert [j.pk for j in claimed] == [first[0].pk, first[1].pk]
    assert cursor.positions == {"default": (0, first[1].created)}
    # A job that is runnable again behind the cursor (say, a retry) ...
    behind = make(created=now - datetime.timedelta(hours=1))
    newer = make(created=now + datetime.timedelta(seconds=10))
    # ... is not seen while the cursor is fresh and finds enough work after it,
    assert [j.pk for j in store.claim("me", ["default"], 1, 30, cursor=cursor)] == [first[2].pk]
    # but a claim that finds too little after the cursor rescans from the start.
    claimed = store.claim("me", ["default"], 5, 30, cursor=cursor)
    assert [j.pk for j in claimed] == [behind.pk, newer.pk]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the claim cursor is PostgreSQL's")
def test_a_claim_cursor_still_sees_higher_priorities_and_goes_stale():
    now = timezone.now()
    make(created=now)
    make(created=now + datetime.timedelta(seconds=1))
    cursor = ClaimCursor()
    store.claim("me", ["default"], 1, 30, cursor=cursor)
    urgent = make(priority=5, created=now - datetime.timedelta(hours=1))
    assert [j.pk for j in store.claim("me", ["default"], 1, 30, cursor=cursor)] == [urgent.pk]
    behind = make(created=now - datetime.timedelta(hours=1))
    cursor.full_scan_at -= ClaimCursor.FULL_SCAN_EVERY
    assert not cursor.usable(["default"])
    assert [j.pk for j in store.claim("me", ["default"], 1, 30, cursor=cursor)] == [behind.pk]
