"""Shared fixtures: real worker processes against the test database, and waiting
on conditions with a deadline (never sleep-and-hope)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests import tasks

ROOT = Path(__file__).resolve().parent.parent


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, message: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for: {message or condition}")
        time.sleep(0.02)


def worker_env(**extra: str) -> dict[str, str]:
    """Environment for a subprocess that must use this test run's database."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["DBQ_DATABASE_NAME"] = str(connection.settings_dict["NAME"])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class WorkerProcess:
    """A real ``manage.py worker`` subprocess whose output goes to a file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "worker", *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {self.pid} did not exit in {timeout}s:\n{self.output()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._log.close()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``manage.py worker`` subprocesses; any still running are killed at the end."""
    started: list[WorkerProcess] = []

    def start(*args: str, **env: str) -> WorkerProcess:
        worker = WorkerProcess(
            list(args), tmp_path / f"worker-{len(started)}.log", worker_env(**env)
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(autouse=True)
def _reset_task_calls() -> None:
    tasks.calls.clear()
    tasks.batches.clear()


def run_command(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py <args>`` as a real subprocess against the test database."""
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=worker_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def race(module: str, argvs: list[list[str]]) -> list[str]:
    """Run ``python -m module *argv`` once per argv, all at once, against the test
    database; return their outputs once all exited 0 (the racers wait for a common
    start time they are given)."""
    racers = [
        subprocess.Popen(
            [sys.executable, "-m", module, *argv],
            cwd=ROOT,
            env=worker_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    outputs = [racer.communicate(timeout=120) for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * len(racers), [e for _, e in outputs]
    return [out for out, _ in outputs]


def release_pooled_connections(database: str) -> None:
    """Behind PgBouncer (``DBQ_TEST_PGBOUNCER``), its idle server connections to
    ``database`` would keep DROP DATABASE from running: close them (KILL), and let
    later runs in (RESUME)."""
    if not os.environ.get("DBQ_TEST_PGBOUNCER"):
        return
    import psycopg

    config = connection.settings_dict
    with psycopg.connect(
        host=config["HOST"],
        port=config["PORT"],
        dbname="pgbouncer",
        user=config["USER"],
        autocommit=True,
    ) as admin:
        for command in (f"KILL {database}", f"RESUME {database}"):
            admin.pgconn.exec_(command.encode())  # the console speaks simple queries only


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """pytest-django's hook before it creates the test database: behind PgBouncer,
    a run stopped before its teardown leaves the pooler's server connections to the
    test database open, and they would keep it from being dropped and made again."""
    release_pooled_connections(connection.creation._get_test_db_name())


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None) -> Iterator[None]:
    """pytest-django's, and behind PgBouncer its server connections to the test
    database closed before pytest-django drops it."""
    yield
    release_pooled_connections(str(connection.settings_dict["NAME"]))


@pytest.fixture
def empty_database(tmp_path: Path) -> Iterator[str]:
    """A new, empty database on the server of this test run: its name (a file on
    SQLite), for ``DBQ_DATABASE_NAME`` of a subprocess. Dropped at the end."""
    if connection.vendor == "sqlite":
        yield str(tmp_path / "empty.sqlite3")
        return
    name = f"dbq_empty{os.environ.get('DBQ_TEST_SUFFIX', '')}"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        cursor.execute(f"CREATE DATABASE {name}")
    yield name
    connection.close()
    release_pooled_connections(name)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name}")
