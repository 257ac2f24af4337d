"""django_dbq.store: writes of a held job's state outside the executor's run (completing
many at once, releasing, renewing leases), each only where the lease is still held."""

from __future__ import annotations

import datetime

import pytest

from django_dbq import store
from django_dbq.models import Job

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
