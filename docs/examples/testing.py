"""The examples of docs/testing.rst: tests of the batching and tracking examples,
written with pytest-django. Run them with::

    python -m pytest -o pythonpath=docs docs/examples/testing.py
"""

import pytest
from django.utils import timezone
from examples.batching import add_player, count_click
from examples.tracking import schedule_new_post_email

from django_dbq.integrations.synchronous import run_job, run_pending_jobs
from django_dbq.models import Job
from tests.models import Game, Player, Tag

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def example_jobs(settings):
    settings.JOBS = {
        "count_clicks": {
            "tasks": ["examples.batching.count_clicks"],
            "batch": {"size": 100, "wait": 10},
        },
        "add_players": {
            "tasks": ["examples.batching.add_players"],
            "batch": {"size": 500, "wait": 5},
            "max_attempts": 3,
        },
        "new_post_email": ["examples.tracking.send_new_post_email"],
    }


@pytest.fixture
def run_jobs_synchronously(settings):
    settings.DBQ_RUN_SYNCHRONOUSLY = True


def test_a_player_is_added_when_the_transaction_commits(
    run_jobs_synchronously, django_capture_on_commit_callbacks
):
    game = Game.objects.create(name="chess")
    with django_capture_on_commit_callbacks(execute=True):
        job = add_player(game, "Ada")
        assert not Player.objects.exists()  # nothing runs before the commit
    job.refresh_from_db()
    assert job.state == Job.STATES.COMPLETED
    assert Player.objects.get(operation=job).name == "Ada"


def test_an_invalid_name_fails_its_attempt(
    run_jobs_synchronously, django_capture_on_commit_callbacks
):
    game = Game.objects.create(name="chess")
    with django_capture_on_commit_callbacks(execute=True):
        job = add_player(game, "")
    job.refresh_from_db()
    assert job.state == Job.STATES.READY  # attempt 1 of 3 failed; the retry is not due yet
    assert job.run_after > timezone.now()
    assert job.errors[0]["message"] == "invalid player name ''"


def test_clicks_are_counted_in_one_batch():
    for url in ["/a", "/b", "/a"]:
        count_click(url)
    assert run_pending_jobs() == 3  # one batch, although its wait has not passed
    counts = {job.workspace["url"]: job.workspace["clicks_in_batch"] for job in Job.objects.all()}
    assert counts == {"/a": 2, "/b": 1}


def test_the_email_is_sent_once_due(mailoutbox):
    post = Tag.objects.create(code="hello-world")  # any model instance will do
    job = schedule_new_post_email(post)
    assert run_pending_jobs() == 0  # not due for 15 minutes
    Job.objects.filter(pk=job.pk).update(run_after=timezone.now())
    assert run_job(job).state == Job.STATES.COMPLETED
    assert [mail.subject for mail in mailoutbox] == ["New post: Tag object (hello-world)"]
