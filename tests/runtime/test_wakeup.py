"""Waking the worker's main thread (django_dbq.runtime.wakeup): the Wake flag, and
LISTEN on the main thread's own connection with its start-up check."""

from __future__ import annotations

import os
import threading
import time

import pytest
from django.db import connection, connections

from django_dbq.db import backend_for
from django_dbq.runtime.wakeup import Listening, Wake


def test_wake_is_an_event_that_wait_returns_from_when_set_from_another_thread():
    wake = Wake()
    assert not wake.wait(0.01)
    threading.Timer(0.05, wake.set).start()
    assert wake.wait(10)
    assert wake.is_set()
    wake.clear()
    assert not wake.is_set()
    assert not wake.wait(0.01)


def test_a_set_before_clear_is_gone_and_a_set_after_it_stays():
    wake = Wake()
    wake.set()
    wake.set()  # a second set while set writes nothing more
    wake.clear()
    assert not wake.wait(0)
    wake.set()
    assert wake.wait(0)


def test_wake_also_returns_when_the_other_descriptor_is_readable():
    wake = Wake()
    read, write = os.pipe()
    try:
        started = time.monotonic()
        threading.Timer(0.05, os.write, (write, b"x")).start()
        assert wake.wait(30, also=read) is False  # returned for the descriptor, not set
        assert time.monotonic() - started < 25
    finally:
        os.close(read)
        os.close(write)


def notify_from_another_connection(queue: str) -> None:
    """As a process enqueueing a job of ``queue`` would (its own session)."""

    def send() -> None:
        backend_for("default").notify([queue])
        connections.close_all()

    thread = threading.Thread(target=send)
    thread.start()
    thread.join()


def woken(wake: Wake, listening: Listening, timeout: float = 10) -> bool:
    """Wait, as the worker's main thread does, until a notification sets ``wake``."""
    deadline = time.monotonic() + timeout
    while not wake.is_set() and time.monotonic() < deadline:
        wake.wait(0.5, also=listening.fileno())
        listening.read()
    return wake.is_set()


postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql" or bool(os.environ.get("DBQ_TEST_PGBOUNCER")),
    reason="LISTEN/NOTIFY is PostgreSQL's, and cannot work through a transaction pooler "
    "(tests/runtime/test_pgbouncer.py covers that)",
)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_listening_passes_its_start_up_check_on_a_direct_connection_and_is_woken():
    wake = Wake()
    listening = Listening("default", "default", ["mail"], wake)
    try:
        assert listening.start()
        assert not wake.is_set()  # the check's own notification wakes nobody
        notify_from_another_connection("mail")
        assert woken(wake, listening)
    finally:
        listening.close()


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_lost_listen_connection_is_noticed_and_listening_starts_again():
    wake = Wake()
    listening = Listening("default", "default", ["mail"], wake)
    try:
        assert listening.start()
        pid = connection.connection.info.backend_pid
        other = connections.create_connection("default")
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        other.close()
        deadline = time.monotonic() + 10
        while listening.refresh() is False and time.monotonic() < deadline:
            wake.wait(0.05)  # it backs off after the loss, then listens again
        assert listening.fileno() is not None
        notify_from_another_connection("mail")
        assert woken(wake, listening)
    finally:
        listening.close()
