"""The connection budget of a worker process: ``--concurrency C`` holds at most C + 2
connections to its database (the main thread, the completer, C runners), opened
as the threads start and kept, none per job; ``--processes P`` is P such workers
(docs/scaling.rst). Counted from the operating system's view of the process."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from django.db import connection

from django_dbq.models import Job
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def held_connections(pid: int) -> set[str]:
    """What identifies each database connection of process ``pid``: the inode of its
    TCP socket to the database's port, or (SQLite) of its descriptor of the file."""
    if connection.vendor == "sqlite":
        database = os.path.realpath(connection.settings_dict["NAME"])
        held = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == database:
                    held.add(str(os.stat(fd).st_ino) + ":" + fd.name)
            except OSError:
                continue
        return held
    port = int(connection.settings_dict["PORT"] or DEFAULT_PORTS[connection.vendor])
    inodes = _socket_inodes(pid)
    held = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                held.add(fields[9])  # ESTABLISHED, to the database, ours
    return held


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()]


def _run_jobs(count: int) -> None:
    jobs = Job.objects.bulk_create_jobs([{"name": "noop"} for _ in range(count)])
    ids = [job.pk for job in jobs]
    wait_for(
        lambda: Job.objects.filter(pk__in=ids, state=Job.STATES.COMPLETED).count() == count,
        timeout=60,
        message=f"{count} jobs to complete",
    )


def test_a_worker_holds_at_most_concurrency_plus_two_connections_and_opens_none_per_job(
    start_worker,
):
    worker = start_worker("--concurrency", "3", "--poll-interval", "0.2")
    wait_for(lambda: "starting:" in worker.output(), message="the worker to start")
    _run_jobs(60)
    first = held_connections(worker.pid)
    assert 1 <= len(first) <= 3 + 2, (first, worker.output())
    _run_jobs(60)
    second = held_connections(worker.pid)
    # Every connection held after the first jobs is still the same one: none was closed
    # and opened again for a job.
    assert first <= second, (first, second)
    assert len(second) <= 3 + 2, second


def test_each_process_of_a_supervised_worker_holds_its_own_budget(start_worker):
    supervisor = start_worker("--processes", "2", "--concurrency", "2", "--poll-interval", "0.2")
    wait_for(lambda: supervisor.output().count("starting:") == 2, message="two workers")
    _run_jobs(80)
    assert held_connections(supervisor.pid) == set()  # the supervisor holds none
    pids = children(supervisor.pid)
    assert len(pids) == 2
    for pid in pids:
        assert 1 <= len(held_connections(pid)) <= 2 + 2
    supervisor.signal(signal.SIGTERM)  # its children stop with it
    assert supervisor.wait() == 0, supervisor.output()
