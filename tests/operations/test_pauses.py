"""django_dbq.operations.pauses: a paused queue is a row; pausing and resuming say
whether they changed anything, and bad queue names are refused before any write."""

from __future__ import annotations

import pytest
from django.utils import timezone

from django_dbq.operations import pauses
from django_dbq.records import QUEUE_NAME_MAX_LENGTH, QueuePause

pytestmark = pytest.mark.django_db

BAD_NAMES = [
    pytest.param("", id="empty"),
    pytest.param("   ", id="blank"),
    pytest.param("q" * (QUEUE_NAME_MAX_LENGTH + 1), id="too-long"),
    pytest.param(None, id="none"),
    pytest.param(42, id="int"),
    pytest.param(b"default", id="bytes"),
]


def test_pause_returns_true_the_first_time_and_false_when_already_paused():
    assert pauses.pause("mail") is True
    assert pauses.pause("mail") is False

    assert QueuePause.objects.count() == 1


def test_pause_records_who_paused_the_queue_and_when():
    before = timezone.now()
    pauses.pause("mail", by="alice")

    row = QueuePause.objects.get()
    assert (row.queue_name, row.paused_by) == ("mail", "alice")
    assert before <= row.paused_at <= timezone.now()


def test_pausing_an_already_paused_queue_keeps_the_first_pause():
    pauses.pause("mail", by="alice")
    first = QueuePause.objects.get()

    pauses.pause("mail", by="bob")

    row = QueuePause.objects.get()
    assert (row.paused_by, row.paused_at) == ("alice", first.paused_at)


def test_paused_by_is_cut_to_its_column():
    pauses.pause("mail", by="x" * 300)

    assert QueuePause.objects.get().paused_by == "x" * 255


def test_resume_returns_true_when_it_resumed_and_false_when_not_paused():
    pauses.pause("mail")

    assert pauses.resume("mail") is True
    assert pauses.resume("mail") is False
    assert pauses.resume("never-paused") is False
    assert not QueuePause.objects.exists()


def test_resume_leaves_other_pauses_alone():
    pauses.pause("mail")
    pauses.pause("sms")

    pauses.resume("mail")

    assert pauses.paused_queues() == {"sms"}


def test_paused_queues_lists_the_names_of_the_paused_queues():
    assert pauses.paused_queues() == set()
    pauses.pause("sms")
    pauses.pause("mail")

    assert pauses.paused_queues() == {"mail", "sms"}
    assert [p.queue_name for p in pauses.paused()] == ["mail", "sms"]


def test_a_name_of_the_full_length_is_accepted():
    name = "q" * QUEUE_NAME_MAX_LENGTH

    assert pauses.pause(name) is True
    assert pauses.paused_queues() == {name}


@pytest.mark.parametrize("name", BAD_NAMES)
def test_pause_refuses_a_bad_queue_name_and_writes_nothing(name):
    with pytest.raises(ValueError):
        pauses.pause(name)

    assert not QueuePause.objects.exists()


@pytest.mark.parametrize("name", BAD_NAMES)
def test_resume_refuses_a_bad_queue_name_and_deletes_nothing(name):
    pauses.pause("mail")

    with pytest.raises(ValueError):
        pauses.resume(name)

    assert pauses.paused_queues() == {"mail"}
