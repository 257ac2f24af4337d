"""django_dbq.integrations.tracking and the context-object helpers: operations recorded
as jobs."""

from __future__ import annotations

import datetime
import signal
import subprocess
import sys
import uuid

import pytest
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from django_dbq.exceptions import InvalidWorkspaceError
from django_dbq.models import Job
from django_dbq.runtime import executor
from tests.conftest import ROOT, wait_for, worker_env
from tests.models import Card, Document, Game, Player, Tag

pytestmark = pytest.mark.django_db


def test_a_tracked_block_is_processing_while_it_runs_and_completed_after():
    game = Game.objects.create(name="chess")
    with Job.objects.track("import_players", context_object=game, workspace={"in": 1}) as op:
        row = Job.objects.get(pk=op.pk)
        assert row.state == Job.STATES.PROCESSING
        assert row.lease_owner.startswith("track:")
        assert row.lease_expires_at is not None
        op.workspace["out"] = 2
    row = Job.objects.get(pk=op.pk)
    assert row.state == Job.STATES.COMPLETED
    assert row.workspace == {"in": 1, "out": 2}
    assert row.finished_at is not None
    assert row.context_object == game


def test_a_tracked_block_that_raises_is_failed_and_the_error_propagates():
    with pytest.raises(KeyError), Job.objects.track("import_players") as op:
        raise KeyError("missing column")
    row = Job.objects.get(pk=op.pk)
    assert row.state == Job.STATES.FAILED
    assert row.errors[0]["type"] == "builtins.KeyError"
    assert "missing column" in row.errors[0]["message"]


def test_the_game_player_card_import_takes_five_queries(django_assert_num_queries):
    game = Game.objects.create(name="chess")
    ContentType.objects.get_for_model(Game)  # the content type cache is per process
    with (
        django_assert_num_queries(5),
        Job.objects.track("import_players", context_object=game) as op,
    ):
        Player.objects.bulk_create(
            [Player(game=game, name=f"player {n}", operation=op) for n in range(300)]
        )
        players = list(Player.objects.filter(operation=op))
        Card.objects.bulk_create([Card(player=player) for player in players])
        op.workspace["players"] = len(players)
    assert Card.objects.filter(player__operation=op).count() == 300
    assert Job.objects.get(pk=op.pk).workspace == {"players": 300}


@pytest.mark.parametrize(
    "make",
    [
        lambda: Game.objects.create(name="int key"),
        lambda: Document.objects.create(id=uuid.uuid4()),
        lambda: Tag.objects.create(code="text-key"),
    ],
    ids=["integer", "uuid", "string"],
)
def test_jobs_are_found_by_their_context_object_whatever_its_key(make):
    target = make()
    first = Job.objects.create(name="noop", context_object=target)
    second = Job.objects.create(name="noop", context_object=target)
    Job.objects.create(name="chain", context_object=target)
    Job.objects.create(name="noop")
    assert set(Job.objects.for_object(target).values_list("pk", flat=True)) >= {
        first.pk,
        second.pk,
    }
    assert Job.objects.for_object(target).count() == 3
    assert Job.objects.latest_for(target, "noop") == second
    assert Job.objects.latest_for(target, "failing") is None


def test_cancel_pending_deletes_only_jobs_that_have_not_started():
    game = Game.objects.create(name="go")
    waiting = Job.objects.create(name="noop", context_object=game)
    running = Job.objects.create(name="noop", context_object=game)
    Job.objects.filter(pk=running.pk).update(state=Job.STATES.PROCESSING)
    elsewhere = Job.objects.create(name="noop")
    assert Job.objects.for_object(game).cancel_pending() == 1
    assert not Job.objects.filter(pk=waiting.pk).exists()
    assert Job.objects.filter(pk__in=[running.pk, elsewhere.pk]).count() == 2


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_an_operation_whose_process_died_is_failed_by_the_rescue(tmp_path):
    marker = tmp_path / "inside"
    code = (
        "import time, pathlib\n"
        "from django_dbq.models import Job\n"
        "with Job.objects.track('import_players'):\n"
        f"    pathlib.Path({str(marker)!r}).write_text('in')\n"
        "    time.sleep(120)\n"
    )
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "shell", "-c", code],
        cwd=ROOT,
        env=worker_env(DBQ_LEASE_SECONDS="1"),
    )
    try:
        wait_for(marker.exists, message="the tracked block to start")
        op = Job.objects.get(name="import_players")
        assert op.state == Job.STATES.PROCESSING
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    wait_for(
        lambda: executor.rescue_expired("rescuer") == 1, timeout=10, message="the lease to expire"
    )
    op.refresh_from_db()
    assert op.state == Job.STATES.FAILED
    assert op.errors[0]["type"] == "django_dbq.exceptions.WorkerLostError"


@pytest.mark.django_db(transaction=True)
def test_the_renewer_keeps_a_long_operation_alive(settings):
    settings.DBQ_LEASE_SECONDS = 1.0
    with Job.objects.track("import_players") as op:
        first = Job.objects.get(pk=op.pk).lease_expires_at
        wait_for(
            lambda: Job.objects.get(pk=op.pk).lease_expires_at > first,
            timeout=5,
            message="a renewal",
        )
        assert executor.rescue_expired("rescuer") == 0
    assert Job.objects.get(pk=op.pk).state == Job.STATES.COMPLETED


def test_an_unstorable_output_fails_the_operation_at_once():
    with pytest.raises(InvalidWorkspaceError), Job.objects.track("import_players") as op:
        op.workspace["when"] = object()
    row = Job.objects.get(pk=op.pk)
    assert row.state == Job.STATES.FAILED
    assert "not JSON-serialisable" in row.errors[0]["message"]


def test_a_lost_operation_named_like_a_retried_job_type_is_failed_not_requeued(settings):
    settings.DBQ_LEASE_SECONDS = 1.0
    with Job.objects.track("flaky") as op:  # "flaky" allows 3 attempts in JOBS
        Job.objects.filter(pk=op.pk).update(
            lease_expires_at=timezone.now() - datetime.timedelta(seconds=1)
        )
        assert executor.rescue_expired("rescuer") == 1
    row = Job.objects.get(pk=op.pk)
    assert row.state == Job.STATES.FAILED
    assert row.errors[0]["type"] == "django_dbq.exceptions.WorkerLostError"
