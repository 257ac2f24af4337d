"""A real PgBouncer in transaction-pooling mode, in front of the test PostgreSQL.

Used by the PgBouncer tests (tests/runtime/test_pgbouncer.py), which start one on
a free loopback port for a module, and by ``.ci/run``, which starts one on port
6432 for the test runs it sends through PgBouncer::

    python -m tests.pgbouncer --port 6432 --dir .ci/work/pgbouncer

PgBouncer refuses to run as root: started by root, it runs as the ``postgres`` user.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
RUN_AS = "postgres"

CONFIG = """\
[databases]
* = host={server_host} port={server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {dir}/users.txt
admin_users = postgres
pool_mode = transaction
max_client_conn = 900
default_pool_size = {pool_size}
max_db_connections = 0
logfile = {dir}/pgbouncer.log
pidfile = {dir}/pgbouncer.pid
"""


def available() -> str | None:
    """Why PgBouncer cannot run here, or ``None`` if it can."""
    if not Path(BINARY).exists():
        return "PgBouncer is not installed (Debian: apt-get install pgbouncer)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            return f"running as root with no {RUN_AS!r} user: PgBouncer refuses to run as root"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class PgBouncer:
    """One PgBouncer process; :meth:`stop` ends it (and its server connections)."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        server_host: str = "127.0.0.1",
        server_port: int = 5432,
        pool_size: int = 60,
    ) -> None:
        self.dir = Path(directory)
        self.port = port or free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "users.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            CONFIG.format(
                server_host=server_host,
                server_port=server_port,
                port=self.port,
                dir=self.dir,
                pool_size=pool_size,
            )
        )
        user = None
        if os.geteuid() == 0:
            user = RUN_AS
            shutil.chown(self.dir, RUN_AS)
            for path in self.dir.iterdir():
                shutil.chown(path, RUN_AS)
        self.process = subprocess.Popen(
            [BINARY, str(self.dir / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            user=user,
            group=user,
            start_new_session=True,  # a Ctrl-C of the test run does not reach it
        )
        deadline = time.monotonic() + 15
        while not answers(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"PgBouncer did not start: {self.log()[-2000:]}")
            time.sleep(0.05)

    def url(self, database: str = "test") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        path = self.dir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # PgBouncer: SIGINT is a safe shutdown
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=6432)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    problem = available()
    if problem:
        print(f"cannot start PgBouncer: {problem}", file=sys.stderr)
        return 1
    if answers(args.port):
        print(f"PgBouncer: port {args.port} already answers; leaving it")
        return 0
    bouncer = PgBouncer(args.dir, port=args.port)
    print(f"PgBouncer (pid {bouncer.process.pid}) on 127.0.0.1:{bouncer.port}, transaction pooling")
    return 0


if __name__ == "__main__":
    sys.exit(main())
