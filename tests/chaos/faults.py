"""Database faults a chaos run can inject while the workers run.

Each fault is a function of the run's database connection (the controller's,
which the fault must spare) that returns a short description of what it did.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.db import connection

# Which faults each database supports (the --fault choices of ``python -m tests.chaos``).
FAULTS = {
    "postgres": ("pg-terminate", "pg-restart"),
    "mariadb": ("mariadb-kill",),
    "sqlite": ("sqlite-lock",),
}


def terminate_backends() -> str:
    """PostgreSQL: ``pg_terminate_backend`` every other session on the run's database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
        count = len(cursor.fetchall())
    return f"terminated {count} backends"


def postgres_version() -> str:
    versions = sorted(Path("/etc/postgresql").iterdir(), key=lambda p: float(p.name))
    return versions[-1].name


def restart_postgres() -> str:
    """PostgreSQL: restart the server (every session on it is cut, for everyone)."""
    version = postgres_version()
    started = time.monotonic()
    connection.close()
    result = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pg_ctlcluster restart failed: {result.stderr.strip()}")
    return f"restarted PostgreSQL {version} in {time.monotonic() - started:.1f}s"


def kill_mariadb_connections() -> str:
    """MariaDB/MySQL: ``KILL`` every other connection to the run's database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM information_schema.processlist "
            "WHERE db = DATABASE() AND id <> CONNECTION_ID() AND command <> 'Killed'"
        )
        ids = [row[0] for row in cursor.fetchall()]
        killed = 0
        for pid in ids:
            try:
                cursor.execute(f"KILL {int(pid)}")
                killed += 1
            except Exception:  # gone in the meantime
                pass
    return f"killed {killed} connections"


class SqliteLock:
    """SQLite: a second process that takes the write lock (``BEGIN IMMEDIATE``) and
    holds it for ``hold`` seconds, longer than the workers' busy timeout."""

    SCRIPT = (
        "import sqlite3, sys, time\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)\n"
        "db.execute('BEGIN IMMEDIATE')\n"
        "print('locked', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
        "db.execute('COMMIT')\n"
        "print('released', flush=True)\n"
    )

    def __init__(self, path: str, hold: float) -> None:
        self.path = path
        self.hold = hold
        self.proc: subprocess.Popen[str] | None = None

    def __call__(self) -> str:
        self.wait()  # one holder at a time
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, self.path, str(self.hold)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "locked":
            raise RuntimeError(f"the lock holder did not take the lock: {line!r}")
        return f"holding the SQLite write lock for {self.hold:g}s (pid {self.proc.pid})"

    def wait(self) -> None:
        if self.proc is not None:
            self.proc.wait(timeout=self.hold + 60)
            assert self.proc.stdout is not None
            self.proc.stdout.close()
            self.proc = None


def injector(name: str, *, sqlite_path: str = "", hold: float = 5.0) -> Any:
    """The callable for fault ``name``."""
    if name == "pg-terminate":
        return terminate_backends
    if name == "pg-restart":
        return restart_postgres
    if name == "mariadb-kill":
        return kill_mariadb_connections
    if name == "sqlite-lock":
        return SqliteLock(sqlite_path, hold)
    raise ValueError(f"unknown fault {name!r}")
