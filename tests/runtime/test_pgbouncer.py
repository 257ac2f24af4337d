"""Workers and enqueueing through a real PgBouncer in transaction-pooling mode
(docs/scaling.rst), started for this module on a free loopback port in front of
the test PostgreSQL.

Its pool is smaller than the number of connections the worker opens, so clients
take turns on the same server connections: anything that relied on session state
(a prepared statement, an advisory lock, a ``SET``, a ``LISTEN``) would break or
leak here. ``.ci/run`` also sends the worker, chaos and latency tests through a
PgBouncer (``DBQ_TEST_PGBOUNCER``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from django.db import connection

from django_dbq.models import Job
from tests import pgbouncer
from tests.conftest import run_command, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.worker,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PgBouncer is PostgreSQL's"),
    pytest.mark.skipif(
        bool(os.environ.get("DBQ_TEST_PGBOUNCER")),
        reason="this run is behind PgBouncer already; the module puts its own in front of "
        "the PostgreSQL server",
    ),
]


@pytest.fixture(scope="module")
def bouncer():
    problem = pgbouncer.available()
    if problem:
        pytest.skip(problem)
    server = connection.settings_dict
    # Not under pytest's own temporary folder: PgBouncer may run as another user.
    directory = Path(tempfile.mkdtemp(prefix="dbq-pgbouncer-"))
    instance = pgbouncer.PgBouncer(
        directory,
        server_host=server["HOST"] or "127.0.0.1",
        server_port=int(server["PORT"] or 5432),
        pool_size=2,
    )
    yield instance
    instance.stop()
    shutil.rmtree(directory, ignore_errors=True)


def _through(bouncer, **extra: str) -> dict[str, str]:
    """Environment of a subprocess whose default database is reached through PgBouncer."""
    return {"DATABASE_URL": bouncer.url(), "DBQ_TEST_PGBOUNCER": "1", **extra}


def _direct_url() -> str:
    server = connection.settings_dict
    return (
        f"postgres://{server['USER']}@{server['HOST'] or '127.0.0.1'}:{server['PORT'] or 5432}/"
        f"{server['NAME']}"
    )


@pytest.fixture(autouse=True)
def _no_listen_alias(monkeypatch):
    # Each test says itself whether the worker gets a direct LISTEN connection.
    monkeypatch.delenv("DBQ_TEST_LISTEN_URL", raising=False)


def test_a_worker_behind_pgbouncer_notices_that_listen_cannot_reach_it_and_polls(
    bouncer, start_worker
):
    worker = start_worker("--concurrency", "4", "--poll-interval", "0.2", **_through(bouncer))
    wait_for(lambda: "starting:" in worker.output(), message="the worker to start")
    assert "wake=polling" in worker.output()
    assert "did not reach this worker's LISTEN" in worker.output()
    jobs = Job.objects.bulk_create_jobs([{"name": "chain"} for _ in range(20)])
    wait_for(
        lambda: (
            Job.objects.filter(pk__in=[j.pk for j in jobs], state=Job.STATES.COMPLETED).count()
            == 20
        ),
        timeout=60,
        message="20 chains run by 4 runners through a pool of 2 server connections",
    )
    assert "Traceback" not in worker.output(), worker.output()


def test_a_direct_listen_connection_wakes_a_worker_behind_pgbouncer_at_once(bouncer, start_worker):
    worker = start_worker(
        "--poll-interval", "300", **_through(bouncer, DBQ_TEST_LISTEN_URL=_direct_url())
    )
    wait_for(lambda: "starting:" in worker.output(), message="the worker to start")
    assert "wake=LISTEN/NOTIFY@listen" in worker.output(), worker.output()
    # Enqueued through PgBouncer too: its NOTIFY goes out when the transaction commits.
    result = run_command("create_job", "noop", **_through(bouncer))
    assert result.returncode == 0, result.stderr
    job = Job.objects.get()
    # The poll is 300 s away: only the NOTIFY can explain a pickup.
    wait_for(
        lambda: Job.objects.get(pk=job.pk).state == Job.STATES.COMPLETED,
        timeout=15,
        message="the NOTIFY pickup",
    )


def test_enqueueing_through_pgbouncer_one_by_one_in_bulk_and_with_keys(bouncer):
    script = (
        "from django_dbq.models import Job\n"
        "for n in range(30):\n"
        "    Job.objects.create(name='noop', workspace={'n': n})\n"
        "Job.objects.bulk_create_jobs([{'name': 'noop'} for _ in range(500)])\n"
        "for _ in range(10):\n"
        "    Job.objects.create(name='noop', unique_key='k1')\n"
        "print(Job.objects.count())\n"
    )
    result = run_command("shell", "-c", script, **_through(bouncer))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "531"
    assert Job.objects.filter(unique_key="k1").count() == 1


def test_server_side_binding_works_through_pgbouncer(bouncer, start_worker):
    """Django's server_side_binding sends parameters apart from the SQL; with no
    prepare_threshold (Django's default) psycopg uses the unnamed statement, which
    lives within one round trip, so it is safe behind a transaction pooler."""
    env = _through(bouncer, DBQ_TEST_SERVER_SIDE_BINDING="1")
    worker = start_worker("--concurrency", "4", "--poll-interval", "0.2", **env)
    wait_for(lambda: "starting:" in worker.output(), message="the worker to start")
    result = run_command(
        "shell",
        "-c",
        "from django_dbq.models import Job\n"
        "for n in range(20):\n"
        "    Job.objects.create(name='chain', workspace={'n': n})\n",
        **env,
    )
    assert result.returncode == 0, result.stderr
    wait_for(
        lambda: Job.objects.filter(state=Job.STATES.COMPLETED).count() == 20,
        timeout=60,
        message="20 chains run with server-side binding through a pool of 2",
    )
    assert "Traceback" not in worker.output(), worker.output()
