"""Flow control without worker processes: the options and settings (E009, E018),
the limited claim (max_running, the token bucket) at explicit times, and the
cancel API (Job.cancel, checkpoint)."""

from __future__ import annotations

import datetime

import pytest
from django.core import checks
from django.test import override_settings
from django.utils import timezone

from django_dbq import limits, options, store
from django_dbq.exceptions import JobCancelledError
from django_dbq.models import CancelRequest, FlowLimit, Job
from django_dbq.states import JobStates

pytestmark = pytest.mark.django_db

OWNER = "host-1:1:abc"
T0 = datetime.datetime(2026, 12, 6, 12, 0, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("50/s", (50, 1.0)), ("10/m", (10, 60.0)), ("100/h", (100, 3600.0)), (" 5 / min ", (5, 60.0))],
)
def test_rates_parse(text, parsed):
    assert options.parse_rate(text) == parsed


@pytest.mark.parametrize("text", ["50", "0/s", "x/s", "5/d", 50, None, "2000000/s"])
def test_bad_rates_do_not_parse(text):
    assert options.parse_rate(text) is None


@pytest.mark.parametrize(
    ("option", "value"),
    [("max_running", 0), ("max_running", "3"), ("rate", "50"), ("timeout", 0), ("timeout", -1)],
)
def test_a_bad_flow_option_is_e009(option, value):
    jobs = {"noop": ["tests.tasks.noop"], "bad": {"tasks": ["tests.tasks.noop"], option: value}}
    with override_settings(JOBS=jobs):
        found = [m for m in checks.run_checks() if m.id == "django_dbq.E009"]
    assert [m.msg for m in found] == [f"JOBS['bad'][{option!r}] = {value!r} is invalid."]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ([], "is a list, not a dict"),
        ({"q": 5}, "DBQ_QUEUE_LIMITS['q'] = 5 is invalid."),
        ({"q": {"max_runing": 5}}, "DBQ_QUEUE_LIMITS['q'] = {'max_runing': 5} is invalid."),
        ({"q": {"max_running": 0}}, "DBQ_QUEUE_LIMITS['q']['max_running'] = 0 is invalid."),
        ({"q": {"rate": "fast"}}, "DBQ_QUEUE_LIMITS['q']['rate'] = 'fast' is invalid."),
    ],
)
def test_a_bad_queue_limit_is_e018(setting, message):
    with override_settings(DBQ_QUEUE_LIMITS=setting):
        found = [m for m in checks.run_checks() if m.id == "django_dbq.E018"]
    assert len(found) == 1 and message in found[0].msg


def test_limit_groups_come_from_jobs_and_the_queue_setting():
    with override_settings(DBQ_QUEUE_LIMITS={"partner": {"max_running": 2, "rate": "10/m"}}):
        assert limits.job_groups()["limited"].max_running == 3
        assert limits.job_groups()["rated"].rate == (50, 1.0)
        partner = limits.queue_groups()["partner"]
        assert (partner.max_running, partner.rate, partner.key) == (2, (10, 60.0), "queue:partner")
    assert limits.queue_groups() == {}


def claim(group, room=10, *, now=T0, name="limited"):
    return store.claim_limited(OWNER, [group], ["default"], room, 30, only_name=name, now=now)


def test_max_running_counts_the_running_jobs_of_every_worker():
    group = limits.job_groups()["limited"]
    Job.objects.bulk_enqueue("limited", [{}] * 5)
    first = claim(group)
    assert len(first.jobs) == 3
    assert claim(group).reason == "capped"  # another worker, the same count
    store.fail(first.jobs[0], OWNER, {"message": "x"})
    assert len(claim(group).jobs) == 1  # a slot came back


def test_a_limited_claim_says_when_nothing_waits():
    group = limits.job_groups()["limited"]
    assert claim(group).reason == "empty"


def test_the_token_bucket_paces_starts_at_the_rate_half_a_second_ahead_at_most():
    group = limits.job_groups()["rated"]  # 50/s: holds at most 2.5, 25 more ahead
    Job.objects.bulk_enqueue("rated", [{}] * 100)
    first = claim(group, 40, name="rated")
    assert len(first.jobs) == 27  # 2.5 tokens now + 0.5 s x 50 ahead
    # The first two start now, then one every 20 ms at its token's time.
    assert first.delays[:3] == [0.0, 0.0, pytest.approx(0.5 / 50)]
    assert first.delays[-1] == pytest.approx((27 - 2.5) / 50)
    empty = claim(group, name="rated")
    assert (empty.jobs, empty.reason) == ([], "rate")
    assert empty.wait == pytest.approx(0.5 / 50)  # until a whole job fits again
    later = claim(group, name="rated", now=T0 + datetime.timedelta(seconds=0.1))
    assert len(later.jobs) == 5  # 0.1 s x 50 tokens came back
    # Its first token: 19.5 of debt left after 0.1 s, so due in (1 + 19.5) / 50 s.
    assert later.delays[0] == pytest.approx(20.5 / 50)
    much_later = claim(group, 100, name="rated", now=T0 + datetime.timedelta(seconds=60))
    assert len(much_later.jobs) == 27  # never more than the bucket holds, plus ahead
    assert FlowLimit.objects.get(key="job:rated").tokens == pytest.approx(2.5 - 27)


def test_a_claim_that_waited_for_the_lock_does_not_move_the_bucket_back():
    group = limits.job_groups()["rated"]
    Job.objects.bulk_enqueue("rated", [{}] * 10)
    claim(group, name="rated", now=T0 + datetime.timedelta(seconds=1))
    claim(group, name="rated", now=T0)  # an older clock reading
    assert FlowLimit.objects.get(key="job:rated").refilled_at == T0 + datetime.timedelta(seconds=1)


def test_the_plain_claim_leaves_limited_job_types_to_the_limited_claim():
    limited = Job.objects.create(name="limited")
    plain = Job.objects.create(name="noop")
    claimed = store.claim(OWNER, ["default"], 10, 30, exclude_names=["limited"])
    assert [job.pk for job in claimed] == [plain.pk]
    assert Job.objects.get(pk=limited.pk).state == JobStates.NEW


def test_cancel_ends_a_waiting_job_at_once_and_asks_a_running_one_to_stop():
    waiting = Job.objects.create(name="noop")
    running = Job.objects.create(name="noop", queue_name="busy")
    [held] = store.claim(OWNER, ["busy"], 1, 30)
    done = Job.objects.create(name="noop", queue_name="other")
    store.cancel_waiting([done.pk], "earlier")  # already FAILED: left alone below
    result = Job.objects.filter(pk__in=[waiting.pk, running.pk, done.pk]).cancel(by="ada")
    assert (result.ended, result.requested, result.skipped) == ([waiting.pk], [running.pk], 1)
    assert Job.objects.get(pk=waiting.pk).state == JobStates.FAILED
    assert CancelRequest.objects.get(job_id=running.pk).requested_by == "ada"
    assert held.cancel_requested()
    with pytest.raises(JobCancelledError, match="Cancelled by ada while it ran"):
        held.checkpoint()
    assert store.end_cancelled(held, OWNER, "ada", True)
    held.refresh_from_db()
    assert held.state == JobStates.FAILED and held.errors[-1]["cancelled_by"] == "ada"
    assert not CancelRequest.objects.exists()


def test_cancelling_a_job_as_it_completes_leaves_it_completed():
    job = Job.objects.create(name="noop")
    [held] = store.claim(OWNER, ["default"], 1, 30)
    Job.objects.get(pk=job.pk).cancel(by="ada")
    outcome = store.Outcome(held, "completed", 0.0, "tests.tasks.noop")
    assert store.complete(OWNER, [outcome]) == 1
    assert not store.end_cancelled(held, OWNER, "ada", False)  # too late: nothing written
    assert Job.objects.get(pk=job.pk).state == JobStates.COMPLETED
    assert store.forget_stale_cancel_requests() == 0  # end_cancelled forgot it already


def test_a_job_never_asked_to_stop_passes_its_checkpoints():
    job = Job.objects.create(name="noop")
    job.checkpoint()
    assert not job.cancel_requested()


def test_stale_cancel_requests_are_forgotten():
    job = Job.objects.create(name="noop")
    CancelRequest.objects.create(job_id=job.pk, requested_at=timezone.now(), requested_by="x")
    assert store.forget_stale_cancel_requests() == 1
