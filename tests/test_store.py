"""django_dbq.store: writes of a held job's state outside the executor's run (completing
many at once, releasing, renewing leases), each only where the lease is still held."""

from __future__ import annotations

import datetime
import itertools
import sqlite3
import time

import pytest
from django.db import DatabaseError, connection
from django.utils import timezone

from django_dbq import store
from django_dbq.models import Chore, Job
from tests.conftest import race

pytestmark = pytest.mark.django_db

OWNER = "test-worker"


def test_completions_are_written_in_one_statement_and_only_where_still_held(
    django_assert_max_num_queries,
):
    Job.objects.bulk_create_jobs([{"name": "noop"} for _ in range(20)])
    claimed = store.claim(OWNER, ["default"], 20, 30)
    stolen = claimed[0]
    Job.objects.filter(pk=stolen.pk).update(lease_owner="thief")
    with django_assert_max_num_queries(1):
        written = store.complete(OWNER, [store.Outcome(j, "completed", 0.0) for j in claimed])
    assert written == 19
    assert Job.objects.filter(state=Job.STATES.COMPLETED).count() == 19
    assert Job.objects.get(pk=stolen.pk).state == Job.STATES.PROCESSING


def test_release_hands_jobs_back_without_spending_an_attempt():
    job = Job.objects.create(name="record")
    [_] = store.claim(OWNER, ["default"], 1, 30)
    assert store.release(OWNER, [job.pk]) == 1
    job.refresh_from_db()
    assert job.state == Job.STATES.READY
    assert job.attempts == 0
    assert store.release(OWNER, [job.pk]) == 0


def test_renewing_leases_pushes_expiry_only_for_held_jobs():
    mine = Job.objects.create(name="record")
    [_] = store.claim(OWNER, ["default"], 1, 30)
    old = Job.objects.get(pk=mine.pk).lease_expires_at
    assert store.renew_leases(OWNER, {120.0: [mine.pk]}) == 1
    assert Job.objects.get(pk=mine.pk).lease_expires_at > old + datetime.timedelta(seconds=60)
    assert store.renew_leases("another", {120.0: [mine.pk]}) == 0


def _lose(job_pk) -> None:
    Job.objects.filter(pk=job_pk).update(
        lease_expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )


def test_a_lost_job_whose_task_never_started_goes_back_uncharged():
    job = Job.objects.create(name="failing")  # max_attempts = 1
    store.claim(OWNER, ["default"], 1, 30)
    _lose(job.pk)

    [rescued] = store.rescue_expired("rescuer")

    job.refresh_from_db()
    assert not rescued.failed
    assert (job.state, job.attempts) == (Job.STATES.READY, 0)
    assert job.errors[-1]["charged"] is False


def test_a_lost_job_whose_task_started_is_charged():
    job = Job.objects.create(name="failing")  # max_attempts = 1
    [claimed] = store.claim(OWNER, ["default"], 1, 30)
    claimed.started_at = timezone.now()
    assert store.mark_started(OWNER, [claimed]) == 1
    _lose(job.pk)

    [rescued] = store.rescue_expired("rescuer")

    job.refresh_from_db()
    assert rescued.failed
    assert (job.state, job.attempts) == (Job.STATES.FAILED, 1)
    assert "charged" not in job.errors[-1]


def test_a_job_lost_before_its_start_was_seen_is_charged_after_a_few_rescues():
    """A task that kills its worker at once must not loop uncharged forever."""
    job = Job.objects.create(name="failing")  # max_attempts = 1
    states = []
    for _ in range(store.UNCHARGED_RESCUES_MAX + 1):
        store.claim(OWNER, ["default"], 1, 30)
        _lose(job.pk)
        store.rescue_expired("rescuer")
        job.refresh_from_db()
        states.append(job.state)
    assert states == [Job.STATES.READY] * store.UNCHARGED_RESCUES_MAX + [Job.STATES.FAILED]


def test_a_processing_row_without_a_lease_is_rescued():
    job = Job.objects.create(name="record")
    Job.objects.filter(pk=job.pk).update(
        state=Job.STATES.PROCESSING, lease_owner="by-hand", lease_expires_at=None
    )

    [rescued] = store.rescue_expired("rescuer")

    job.refresh_from_db()
    assert rescued.job.pk == job.pk
    assert job.state == Job.STATES.READY
    assert "without a lease" in job.errors[-1]["message"]


@pytest.mark.parametrize(
    "message", ["bad \x00 byte", "lone \ud800 surrogate"], ids=["nul", "surrogate"]
)
def test_an_error_record_is_storable_whatever_the_message(message):
    job = Job.objects.create(name="failing")
    [claimed] = store.claim(OWNER, ["default"], 1, 30)

    record = store.error_record(ValueError(message), claimed, "t", OWNER)
    assert store.fail(claimed, OWNER, record)

    job.refresh_from_db()
    assert job.state == Job.STATES.FAILED
    assert job.errors[-1]["type"] == "builtins.ValueError"
    assert "\x00" not in job.errors[-1]["message"]
    job.errors[-1]["message"].encode("utf-8")


def test_an_error_record_of_an_exception_whose_str_raises_falls_back_to_repr_or_the_type():
    class Hostile(Exception):
        def __str__(self):
            raise RuntimeError("no")

        def __repr__(self):
            raise RuntimeError("no either")

    job = Job(name="failing")
    record = store.error_record(Hostile(), job, "t", OWNER)
    assert record["type"].endswith("Hostile")
    assert record["message"] == "Hostile"


@pytest.mark.django_db(transaction=True)
def test_a_completion_the_database_refuses_fails_only_its_own_job():
    Job.objects.bulk_create_jobs([{"name": "noop", "workspace": {"n": n}} for n in range(4)])
    claimed = store.claim(OWNER, ["default"], 4, 30)
    for job in claimed:
        job.workspace = {"done": True}
    poisoned = claimed[1]
    # NaN passes json.dumps but no database takes it as JSON (SQLite's JSON_VALID
    # check, MySQL's JSON type and PostgreSQL's jsonb all refuse the token).
    poisoned.workspace = {"x": float("nan")}
    outcomes = [store.Outcome(j, "completed", 0.0, workspace_changed=True) for j in claimed]

    written = store.complete(OWNER, outcomes)

    assert written == 3
    states = dict(Job.objects.values_list("pk", "state"))
    assert states[poisoned.pk] == Job.STATES.FAILED
    assert [states[j.pk] for j in claimed if j is not poisoned] == [Job.STATES.COMPLETED] * 3
    failed = Job.objects.get(pk=poisoned.pk)
    assert failed.workspace == {"n": claimed.index(poisoned)}  # the last saved one
    assert failed.errors[-1]["type"].startswith("django.db.")
    assert all(o.written is not None for o in outcomes)


def test_a_chore_is_taken_by_one_worker_per_interval():
    assert store.take_chore("rescue", "w1", 60)  # creates the row
    assert not store.take_chore("rescue", "w2", 60)
    assert not store.take_chore("rescue", "w1", 60)
    Chore.objects.filter(name="rescue").update(
        due_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    assert store.take_chore("rescue", "w2", 60)
    assert Chore.objects.get(name="rescue").taken_by == "w2"
    assert not store.take_chore("rescue", "w1", 60)
    # Each chore has its own row.
    assert store.take_chore("other", "w1", 60)


def test_a_taken_chore_is_due_again_a_little_before_its_interval_is_over():
    before = timezone.now()
    assert store.take_chore("rescue", "w1", 10)
    due = Chore.objects.get(name="rescue").due_at
    # So that a worker asking every 10 s, give or take its jitter, finds it due each time.
    assert (
        before + datetime.timedelta(seconds=7)
        <= due
        <= timezone.now() + datetime.timedelta(seconds=9)
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_racing_workers_never_take_a_chore_twice_within_its_interval():
    """8 processes ask at the same instants, 6 times: between two takes there are
    always at least 0.8 x the interval (take_chore's promise), whoever won."""
    every = 0.9
    start_at = time.time() + 3
    outputs = race(
        "tests.chore_race", [[f"w{n}", "6", str(every), str(start_at)] for n in range(8)]
    )
    takes = sorted(tuple(map(float, line.split())) for out in outputs for line in out.splitlines())
    assert 1 <= len(takes) <= 6
    for (before, _), (_, after) in itertools.pairwise(takes):
        assert after - before >= 0.8 * every, takes


@pytest.mark.skipif(
    connection.vendor != "sqlite", reason="a lock that makes writes fail, not wait, is SQLite's"
)
@pytest.mark.django_db(transaction=True)
def test_a_completion_that_meets_a_locked_database_is_not_a_refusal():
    """The chaos suite saw a job end FAILED because its completion met another
    process's write lock twice, and the lock was gone when the failure was written:
    a database that takes no write just then is not one that refuses the row."""
    Job.objects.bulk_create_jobs([{"name": "noop"}])
    [job] = store.claim(OWNER, ["default"], 1, 30)
    job.workspace = {"done": True}
    outcome = store.Outcome(job, "completed", 0.0, workspace_changed=True)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout = 50")
    locker = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    failed_updates = []

    def unlock_after_two_failed_updates(execute, sql, params, many, context):
        try:
            return execute(sql, params, many, context)
        except DatabaseError:
            if sql.startswith("UPDATE") and " CASE " not in sql:  # not the batch's
                failed_updates.append(sql)
                if len(failed_updates) == 2:  # the job's own completion, twice
                    locker.execute("ROLLBACK")
            raise

    try:
        with connection.execute_wrapper(unlock_after_two_failed_updates):
            written = store.complete(OWNER, [outcome])
    finally:
        locker.close()
    assert len(failed_updates) == 2
    assert written == 1
    assert outcome.written is True
    assert Job.objects.get(pk=job.pk).state == Job.STATES.COMPLETED


@pytest.mark.skipif(
    connection.vendor != "sqlite", reason="a lock that makes writes fail, not wait, is SQLite's"
)
@pytest.mark.django_db(transaction=True)
def test_a_completion_that_meets_a_database_locked_throughout_raises_and_fails_no_job():
    Job.objects.bulk_create_jobs([{"name": "noop"}])
    [job] = store.claim(OWNER, ["default"], 1, 30)
    outcome = store.Outcome(job, "completed", 0.0, workspace_changed=True)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout = 50")
    locker = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseError):
            store.complete(OWNER, [outcome])
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert outcome.written is None  # not handled: the completer tries again
    assert Job.objects.get(pk=job.pk).state == Job.STATES.PROCESSING
    assert store.complete(OWNER, [outcome]) == 1
