"""django_dbq.runtime.executor: one claimed job's chain step, hooks, retries, failures
and rescue."""

from __future__ import annotations

import datetime

import pytest
from django.test import override_settings
from django.utils import timezone

from django_dbq import signals, store
from django_dbq.models import Job
from django_dbq.runtime import executor
from tests import tasks

pytestmark = pytest.mark.django_db

OWNER = "test-worker"


def claim_one(**kwargs) -> Job:
    [job] = store.claim(OWNER, ["default"], 1, 30, **kwargs)
    return job


def run_claimed(**kwargs) -> store.Outcome:
    job = claim_one(**kwargs)
    outcome = executor.run(job, OWNER, executor.snapshot(job))
    if outcome.kind == "completed":
        store.complete(OWNER, [outcome])
    return outcome


def test_a_chain_runs_one_step_per_claim_and_passes_the_workspace_on():
    job = Job.objects.create(name="chain")
    kinds = []
    for _ in range(3):
        kinds.append(run_claimed().kind)
        job.refresh_from_db()
        if kinds[-1] == "advanced":
            assert job.state == Job.STATES.READY
            assert job.attempts == 0
            assert job.lease_expires_at is None
    assert kinds == ["advanced", "advanced", "completed"]
    assert job.state == Job.STATES.COMPLETED
    assert job.next_task == ""
    assert job.workspace == {"created_by_hook": True, "trail": ["one", "two", "three"]}
    assert job.finished_at is not None
    steps = [c for c in tasks.calls if c[0] in ("step_one", "step_two", "step_three")]
    assert [s[0] for s in steps] == ["step_one", "step_two", "step_three"]


def test_pre_and_post_hooks_wrap_every_step():
    Job.objects.create(name="chain")
    run_claimed()
    names = [c for c in tasks.calls if c[0] != "creation_hook"]
    assert names == [
        ("pre_task_hook", "tests.tasks.step_one"),
        ("step_one", names[1][1]),
        ("post_task_hook", "tests.tasks.step_one"),
    ]


def test_a_failing_task_fails_the_job_runs_the_failure_hook_and_the_post_hook():
    job = Job.objects.create(name="failing")
    outcome = run_claimed()
    job.refresh_from_db()
    assert outcome.kind == "failed"
    assert job.state == Job.STATES.FAILED
    [error] = job.errors
    assert error["type"] == "builtins.ValueError"
    assert error["message"] == "task failed on purpose"
    assert "Traceback" in error["traceback"] and "tests/tasks.py" in error["traceback"]
    assert error["worker"] == OWNER and error["attempt"] == 1
    # django-db-queue's order: the failure hook, then the post-task hook.
    assert tasks.calls == [
        ("failure_hook", "ValueError: task failed on purpose"),
        ("post_task_hook", "tests.tasks.fail"),
    ]


def test_a_failing_pre_task_hook_counts_as_a_task_failure():
    job = Job.objects.create(name="bad_pre_hook")
    assert run_claimed().kind == "failed"
    job.refresh_from_db()
    assert job.state == Job.STATES.FAILED
    assert ("failure_hook", "ValueError: task failed on purpose") in tasks.calls
    assert ("post_task_hook", "tests.tasks.noop") in tasks.calls


def test_a_failing_post_task_hook_is_only_logged(caplog):
    job = Job.objects.create(name="bad_post_hook")
    assert run_claimed().kind == "completed"
    job.refresh_from_db()
    assert job.state == Job.STATES.COMPLETED
    assert "Post-task hook" in caplog.text


def test_retries_back_off_and_the_failure_hook_runs_only_after_the_last_attempt():
    job = Job.objects.create(name="retry_later")
    start = timezone.now()
    assert run_claimed(now=start).kind == "retried"
    job.refresh_from_db()
    assert job.state == Job.STATES.READY and job.attempts == 1
    # backoff=600: the first retry waits between 300 and 600 seconds.
    delay = (job.run_after - start).total_seconds()
    assert 299 <= delay <= 601
    assert store.claim(OWNER, ["default"], 1, 30, now=start) == []
    assert not any(c[0] == "failure_hook" for c in tasks.calls)

    # A claim "later" (the controllable clock) takes it; the delay then doubles.
    failed_at = timezone.now()
    assert run_claimed(now=job.run_after + datetime.timedelta(seconds=1)).kind == "retried"
    job.refresh_from_db()
    assert job.attempts == 2
    assert 599 <= (job.run_after - failed_at).total_seconds() <= 1201

    assert run_claimed(now=job.run_after + datetime.timedelta(seconds=1)).kind == "failed"
    job.refresh_from_db()
    assert job.state == Job.STATES.FAILED
    assert [e["attempt"] for e in job.errors] == [1, 2, 3]
    assert [c[0] for c in tasks.calls].count("failure_hook") == 1


def test_a_retried_job_can_succeed_and_keeps_its_past_errors():
    job = Job.objects.create(name="flaky", workspace={"succeed_on": 3})
    assert run_claimed().kind == "retried"
    assert run_claimed().kind == "retried"
    assert run_claimed().kind == "completed"
    job.refresh_from_db()
    assert job.state == Job.STATES.COMPLETED
    assert job.workspace["succeeded_on"] == 3
    assert [e["message"] for e in job.errors] == ["attempt 1 fails", "attempt 2 fails"]


def test_errors_kept_are_bounded(settings):
    settings.DBQ_MAX_ERRORS_KEPT = 2
    job = Job.objects.create(name="flaky", workspace={"succeed_on": 99})
    for _ in range(3):
        run_claimed()
    job.refresh_from_db()
    assert [e["attempt"] for e in job.errors] == [2, 3]


def test_a_workspace_left_unserialisable_fails_the_job_with_a_clear_error():
    job = Job.objects.create(name="unserialisable")
    assert run_claimed().kind == "failed"
    job.refresh_from_db()
    assert job.state == Job.STATES.FAILED
    assert "not JSON-serialisable" in job.errors[0]["message"]


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ({"name": "no_such_job"}, "Unknown job name 'no_such_job'"),
        ({"next_task": "tests.tasks.step_one"}, "not a task of job type 'noop'"),
        ({"next_task": "os.system"}, "not a task of job type 'noop'"),
        ({"workspace": [1, 2]}, "workspace of type list"),
    ],
)
def test_a_tampered_row_fails_without_importing_or_running_anything(tamper, message):
    job = Job.objects.create(name="noop")
    Job.objects.filter(pk=job.pk).update(**tamper)
    assert run_claimed().kind == "failed"
    job.refresh_from_db()
    assert job.state == Job.STATES.FAILED
    assert message in job.errors[0]["message"]
    assert tasks.calls == []


def test_a_write_by_a_worker_that_lost_its_lease_changes_nothing():
    job = Job.objects.create(name="failing")
    claimed = claim_one()
    Job.objects.filter(pk=job.pk).update(lease_owner="someone-else")
    outcome = executor.run(claimed, OWNER, executor.snapshot(claimed))
    assert outcome.kind == "lost"
    job.refresh_from_db()
    assert job.state == Job.STATES.PROCESSING
    assert job.lease_owner == "someone-else"
    assert job.errors == []
    assert not any(c[0] == "failure_hook" for c in tasks.calls)


def start_and_lose(job: Job) -> None:
    """Claim ``job``, mark its task started, then let its lease run out."""
    [claimed] = store.claim(OWNER, ["default"], 1, 30)
    assert claimed.pk == job.pk
    claimed.started_at = timezone.now()
    assert store.mark_started(OWNER, [claimed]) == 1
    Job.objects.filter(pk=job.pk).update(
        lease_expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )


def test_rescue_returns_an_expired_job_to_ready_with_the_attempt_counted():
    job = Job.objects.create(name="record")
    start_and_lose(job)
    assert executor.rescue_expired("rescuer") == 1
    job.refresh_from_db()
    assert job.state == Job.STATES.READY
    assert job.attempts == 1
    [error] = job.errors
    assert error["type"] == "django_dbq.exceptions.WorkerLostError"
    assert error["worker"] == OWNER and error["rescued_by"] == "rescuer"
    assert executor.rescue_expired("rescuer") == 0


def test_rescue_fails_the_job_when_attempts_are_used_up_and_runs_the_failure_hook():
    job = Job.objects.create(name="failing")  # max_attempts = 1
    start_and_lose(job)
    assert executor.rescue_expired("rescuer") == 1
    job.refresh_from_db()
    assert job.state == Job.STATES.FAILED
    assert any(c[0] == "failure_hook" and "WorkerLostError" in c[1] for c in tasks.calls)


def test_rescue_leaves_live_leases_alone():
    job = Job.objects.create(name="record")
    claim_one()
    assert executor.rescue_expired("rescuer") == 0
    job.refresh_from_db()
    assert job.state == Job.STATES.PROCESSING


def test_signals_are_sent_for_start_finish_retry_and_failure():
    seen = []

    def receiver(signal, **kwargs):
        seen.append((signal, kwargs["job"].name))

    for signal in (
        signals.job_started,
        signals.job_finished,
        signals.job_retried,
        signals.job_failed,
    ):
        signal.connect(receiver, weak=False)
    try:
        Job.objects.create(name="noop")
        run_claimed()
        Job.objects.create(name="flaky", workspace={"succeed_on": 99})
        run_claimed()
        run_claimed()
        run_claimed()
    finally:
        for signal in (
            signals.job_started,
            signals.job_finished,
            signals.job_retried,
            signals.job_failed,
        ):
            signal.disconnect(receiver)
    assert seen == [
        (signals.job_started, "noop"),
        (signals.job_finished, "noop"),
        (signals.job_started, "flaky"),
        (signals.job_retried, "flaky"),
        (signals.job_started, "flaky"),
        (signals.job_retried, "flaky"),
        (signals.job_started, "flaky"),
        (signals.job_failed, "flaky"),
    ]


def test_a_receiver_that_raises_does_not_fail_the_job():
    def boom(**kwargs):
        raise RuntimeError("receiver bug")

    signals.job_started.connect(boom, weak=False)
    try:
        job = Job.objects.create(name="noop")
        assert run_claimed().kind == "completed"
    finally:
        signals.job_started.disconnect(boom)
    job.refresh_from_db()
    assert job.state == Job.STATES.COMPLETED


# --- hooks write to the workspace, and it is saved (as in django-db-queue 3.x) -----------


def test_the_failure_and_post_task_hooks_workspace_is_saved_with_the_failure():
    job = Job.objects.create(name="hooks_note", workspace={"in": 1})
    assert run_claimed().kind == "failed"
    job.refresh_from_db()
    assert job.state == Job.STATES.FAILED
    assert job.workspace == {
        "in": 1,
        "failure_hook": "ValueError: task failed on purpose",
        "post_task_hook": 1,
    }


def test_the_post_task_hooks_workspace_is_saved_with_a_retry():
    job = Job.objects.create(name="hooks_note_retry")
    assert run_claimed().kind == "retried"
    job.refresh_from_db()
    assert job.state == Job.STATES.READY
    assert job.workspace == {"post_task_hook": 1}  # no failure hook before the last attempt


def test_the_failure_hooks_workspace_is_saved_for_each_job_of_a_failed_batch():
    jobs = [Job.objects.create(name="hooks_note_batch", workspace={"n": n}) for n in range(2)]
    claimed = store.claim_batch(OWNER, "hooks_note_batch", "default", "", 2, 30)
    outcomes = executor.run_batch(claimed, OWNER, [executor.snapshot(j) for j in claimed])
    assert [o.kind for o in outcomes] == ["failed", "failed"]
    for n, job in enumerate(jobs):
        job.refresh_from_db()
        assert job.workspace == {"n": n, "failure_hook": "ValueError: the whole batch failed"}


def test_the_failure_hooks_workspace_is_saved_when_the_rescue_fails_a_lost_job():
    job = Job.objects.create(name="hooks_note", workspace={"in": 1})
    start_and_lose(job)
    assert executor.rescue_expired("rescuer") == 1
    job.refresh_from_db()
    assert job.state == Job.STATES.FAILED
    assert job.workspace["failure_hook"].startswith("WorkerLostError: ")
    assert job.workspace["in"] == 1


def test_a_failure_hook_that_raises_does_not_lose_the_outcome():
    job = Job.objects.create(name="failing")
    with override_settings(
        JOBS={"failing": {"tasks": ["tests.tasks.fail"], "failure_hook": "tests.tasks.fail"}}
    ):
        assert run_claimed().kind == "failed"
    job.refresh_from_db()
    assert job.state == Job.STATES.FAILED
    assert job.errors[-1]["type"] == "builtins.ValueError"
