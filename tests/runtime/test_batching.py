"""django_dbq.runtime, batch job types: claiming due batches, per-job outcomes, and
real workers."""

from __future__ import annotations

import datetime
import signal
import uuid
from collections import Counter

import pytest
from django.core import checks
from django.utils import timezone

from django_dbq import job_types, store
from django_dbq.exceptions import InvalidJobError
from django_dbq.integrations.synchronous import run_pending_jobs
from django_dbq.models import Job
from django_dbq.runtime import executor
from tests import tasks
from tests.conftest import wait_for
from tests.models import Execution

pytestmark = pytest.mark.django_db
OWNER = "test-worker"
BATCHES = {"count_clicks": job_types.Batch(size=5, wait=1.0)}


def clicks(count: int, **fields) -> list[Job]:
    return Job.objects.bulk_create_jobs([{"name": "count_clicks", **fields} for _ in range(count)])


def test_a_batch_job_gets_an_empty_batch_key_and_others_none():
    assert clicks(1)[0].batch_key == ""
    assert Job.objects.create(name="noop").batch_key is None
    assert Job.objects.create(name="count_clicks", batch_key="tenant-1").batch_key == "tenant-1"


def test_a_batch_key_on_a_job_type_that_does_not_batch_is_refused():
    with pytest.raises(InvalidJobError, match="not a batch job type"):
        Job.objects.create(name="noop", batch_key="x")
    assert not Job.objects.exists()


def test_batch_jobs_are_never_claimed_one_by_one():
    clicks(3)
    noop = Job.objects.create(name="noop")
    assert [j.pk for j in store.claim(OWNER, ["default"], 10, 30)] == [noop.pk]


def test_a_group_is_due_when_full_or_when_its_oldest_job_has_waited():
    now = timezone.now()
    clicks(4, created=now)
    assert store.ripe_batches(BATCHES, ["default"], now=now) == []
    later = now + datetime.timedelta(seconds=1)
    assert store.ripe_batches(BATCHES, ["default"], now=later) == [
        ("count_clicks", "default", "")
    ]
    clicks(1, created=now)
    assert store.ripe_batches(BATCHES, ["default"], now=now) == [("count_clicks", "default", "")]


def test_flush_makes_every_group_due():
    clicks(1)
    assert store.ripe_batches(BATCHES, ["default"], flush=True) == [
        ("count_clicks", "default", "")
    ]


def test_claim_batch_takes_one_group_oldest_first_up_to_the_size():
    now = timezone.now()
    wanted = [
        Job.objects.create(
            name="count_clicks", batch_key="a", created=now + datetime.timedelta(seconds=n)
        )
        for n in range(7)
    ]
    Job.objects.create(name="count_clicks", batch_key="b")
    Job.objects.create(name="count_clicks", batch_key="a", queue_name="other")
    batch = store.claim_batch(OWNER, "count_clicks", "default", "a", 5, 30)
    assert [j.pk for j in batch] == [j.pk for j in wanted[:5]]
    assert all(j.state == Job.STATES.PROCESSING and j.attempts == 1 for j in batch)
    rest = store.claim_batch(OWNER, "count_clicks", "default", "a", 5, 30)
    assert [j.pk for j in rest] == [j.pk for j in wanted[5:]]


def test_run_pending_jobs_runs_full_batches_then_flushes_the_rest():
    clicks(12)
    assert run_pending_jobs() == 12
    assert sorted(len(b) for b in tasks.batches) == [2, 5, 5]
    assert set(Job.objects.values_list("state", flat=True)) == {Job.STATES.COMPLETED}
    sizes = Counter(Job.objects.values_list("workspace__batch_size", flat=True))
    assert sizes == {5: 10, 2: 2}


def test_a_batch_key_keeps_batches_homogeneous():
    for key in ("a", "b", "a", "b", "a"):
        Job.objects.create(name="count_clicks", batch_key=key)
    run_pending_jobs()
    keys = dict(Job.objects.values_list("pk", "batch_key"))
    for batch in tasks.batches:
        assert len({keys[uuid.UUID(pk)] for pk in batch}) == 1
    assert sorted(len(b) for b in tasks.batches) == [2, 3]


def test_each_job_of_a_batch_gets_its_own_outcome():
    good = [Job.objects.create(name="fail_some") for _ in range(3)]
    bad = Job.objects.create(name="fail_some", workspace={"bad": True})
    run_pending_jobs()
    assert len(tasks.batches) == 1
    for job in good:
        job.refresh_from_db()
        assert job.state == Job.STATES.COMPLETED
        assert job.workspace == {"ok": True}
    bad.refresh_from_db()
    assert bad.state == Job.STATES.FAILED
    assert bad.errors[0]["message"] == "bad input"
    assert [c for c in tasks.calls if c[0] == "failure_hook"] == [
        ("failure_hook", "Exception: bad input")
    ]


def test_an_exception_retries_the_whole_batch_then_fails_it():
    batch = [Job.objects.create(name="explode_batch") for _ in range(3)]
    run_pending_jobs()
    for job in batch:
        job.refresh_from_db()
        assert job.state == Job.STATES.READY
        assert job.run_after > timezone.now() + datetime.timedelta(seconds=250)
        assert job.errors[0]["message"] == "the whole batch failed"
    assert not any(c[0] == "failure_hook" for c in tasks.calls)
    Job.objects.update(run_after=None)
    run_pending_jobs()
    assert set(Job.objects.values_list("state", flat=True)) == {Job.STATES.FAILED}
    assert [c[0] for c in tasks.calls].count("failure_hook") == 3


def test_a_tampered_row_in_a_batch_fails_alone():
    jobs_ = clicks(3)
    Job.objects.filter(pk=jobs_[0].pk).update(next_task="os.system")
    run_pending_jobs()
    states = dict(Job.objects.values_list("pk", "state"))
    assert states[jobs_[0].pk] == Job.STATES.FAILED
    assert states[jobs_[1].pk] == states[jobs_[2].pk] == Job.STATES.COMPLETED


def test_a_batch_job_claimed_singly_runs_as_a_batch_of_one():
    job = clicks(1)[0]
    Job.objects.filter(pk=job.pk).update(batch_key=None)  # e.g. made before the type batched
    [claimed] = store.claim(OWNER, ["default"], 1, 30)
    outcome = executor.run(claimed, OWNER, executor.snapshot(claimed))
    assert outcome.kind == "completed"
    assert tasks.batches == [[str(job.pk)]]


@pytest.mark.parametrize(
    ("batch", "fragment"),
    [
        ({"size": 0}, "['size'] = 0"),
        ({"size": "10"}, "['size'] = '10'"),
        ({"size": 10, "wait": -1}, "['wait'] = -1"),
        ({"size": 10, "flush_every": 3}, "is invalid"),
        ([10, 5], "is invalid"),
    ],
)
def test_bad_batch_settings_are_reported_by_check_e011(settings, batch, fragment):
    settings.JOBS = {"b": {"tasks": ["tests.tasks.count_clicks"], "batch": batch}}
    [message] = [m for m in checks.run_checks() if m.id.startswith("django_dbq")]
    assert message.id == "django_dbq.E011"
    assert fragment in message.msg


def test_a_batch_type_with_a_chain_or_per_task_hooks_is_reported(settings):
    settings.JOBS = {
        "b": {
            "tasks": ["tests.tasks.count_clicks", "tests.tasks.noop"],
            "pre_task_hook": "tests.tasks.noop",
            "batch": {"size": 2},
        }
    }
    ids = [m.id for m in checks.run_checks() if m.id.startswith("django_dbq")]
    assert ids == ["django_dbq.E011", "django_dbq.E011"]


def test_batch_settings_parse_into_the_job_type():
    assert job_types.get_job_type("count_clicks").batch == job_types.Batch(size=5, wait=1.0)
    assert job_types.get_job_type("fail_some").batch == job_types.Batch(size=10, wait=0.0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_worker_takes_a_full_batch_before_its_wait(start_worker):
    Job.objects.bulk_create_jobs([{"name": "full_batches_only"} for _ in range(10)])
    worker = start_worker("--poll-interval", "0.1")
    # wait is 300 s: only the batch being full can explain this.
    wait_for(
        lambda: Job.objects.filter(state=Job.STATES.COMPLETED).count() == 10,
        timeout=30,
        message="two full batches",
    )
    groups = Counter(Execution.objects.values_list("thread", flat=True))
    assert sorted(groups.values()) == [5, 5]
    assert "Batch finished: name=full_batches_only jobs=5" in worker.output()


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_worker_takes_a_partial_batch_once_its_oldest_job_has_waited(start_worker):
    start_worker("--poll-interval", "0.1")
    created = clicks(2)
    wait_for(
        lambda: Job.objects.filter(state=Job.STATES.COMPLETED).count() == 2,
        timeout=30,
        message="the partial batch",
    )
    started = Job.objects.get(pk=created[0].pk).started_at
    assert (started - min(j.created for j in created)).total_seconds() >= 1.0
    assert Counter(Execution.objects.values_list("thread", flat=True)).most_common()[0][1] == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_burst_worker_flushes_batches_of_many_types_and_keys(start_worker):
    Job.objects.bulk_create_jobs(
        [{"name": "count_clicks", "batch_key": f"k{n % 3}"} for n in range(23)]
        + [{"name": "noop"} for _ in range(5)]
    )
    worker = start_worker("--burst", "--concurrency", "2")
    assert worker.wait() == 0, worker.output()
    assert set(Job.objects.values_list("state", flat=True)) == {Job.STATES.COMPLETED}
    runs = Execution.objects.values_list("job_id", "thread")
    assert Counter(job_id for job_id, _ in runs).most_common(1)[0][1] == 1
    assert max(Counter(thread for _, thread in runs).values()) <= 5
    keys = dict(Job.objects.values_list("pk", "batch_key"))
    batches: dict[str, set] = {}
    for job_id, thread in runs:
        batches.setdefault(thread, set()).add(keys[job_id])
    assert all(len(k) == 1 for k in batches.values())


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_batch_of_a_killed_worker_is_rescued_job_by_job(start_worker, tmp_path):
    marker = tmp_path / "started"
    batch = Job.objects.bulk_create_jobs(
        [{"name": "slow_batch", "workspace": {"started_marker": str(marker)}} for _ in range(3)]
    )
    fast = {"DBQ_LEASE_SECONDS": "2", "DBQ_RESCUE_INTERVAL": "0.3"}
    doomed = start_worker(**fast)
    wait_for(marker.exists, message="the batch to start")
    wait_for(  # the worker has recorded that the batch started: it will be charged
        lambda: Job.objects.filter(started_at__isnull=False).count() == 3,
        message="the batch's start to be marked",
    )
    doomed.signal(signal.SIGKILL)
    doomed.wait()
    start_worker("--poll-interval", "0.2", **fast)
    wait_for(
        lambda: Job.objects.filter(state=Job.STATES.COMPLETED).count() == 3,
        timeout=60,
        message="the rescued batch",
    )
    for job in batch:
        job.refresh_from_db()
        assert job.attempts == 2
        assert job.errors[0]["type"] == "django_dbq.exceptions.WorkerLostError"
    assert Execution.objects.count() == 3


def test_completed_batches_write_workspaces_in_one_statement(django_assert_max_num_queries):
    batch = clicks(5)
    claimed = store.claim_batch(OWNER, "count_clicks", "default", "", 5, 30)
    outcomes = executor.run_batch(claimed, OWNER, [executor.snapshot(j) for j in claimed])
    with django_assert_max_num_queries(1):
        store.complete(OWNER, outcomes)
    assert {
        j.workspace["batch_size"] for j in Job.objects.filter(pk__in=[b.pk for b in batch])
    } == {5}
