"""The raw-SQL ceiling: a bare psycopg queue on a minimal PostgreSQL table.

No Django. A worker loop claims ``--batch`` jobs with one statement::

    UPDATE raw_job SET state = 'running', started_at = clock_timestamp()
    WHERE id IN (SELECT id FROM raw_job WHERE state = 'ready' ORDER BY id
                 FOR UPDATE SKIP LOCKED LIMIT n)
    RETURNING id

runs them (nothing, or ``--sleep`` seconds each) and completes them with one
``UPDATE ... WHERE id = ANY(...)`` per claim, in autocommit. It exits when a
claim comes back empty. ``python -m tests.benchmarks.rawq worker --dsn ...``.
"""

from __future__ import annotations

import argparse
import io
import time

import psycopg

SCHEMA = """
DROP TABLE IF EXISTS raw_job;
CREATE TABLE raw_job (
    id bigserial PRIMARY KEY,
    state text NOT NULL DEFAULT 'ready',
    payload jsonb NOT NULL DEFAULT '{}',
    created timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at timestamptz,
    finished_at timestamptz
);
CREATE INDEX raw_job_ready ON raw_job (id) WHERE state = 'ready';
"""

CLAIM = (
    "UPDATE raw_job SET state = 'running', started_at = clock_timestamp() "
    "WHERE id IN (SELECT id FROM raw_job WHERE state = 'ready' ORDER BY id "
    "FOR UPDATE SKIP LOCKED LIMIT %s) RETURNING id"
)
COMPLETE = "UPDATE raw_job SET state = 'done', finished_at = clock_timestamp() WHERE id = ANY(%s)"


def create_schema(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)


def clear(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE raw_job RESTART IDENTITY")


def fill(dsn: str, n: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO raw_job (state) SELECT 'ready' FROM generate_series(1, %s)", [n])
        conn.execute("ANALYZE raw_job")


def stats(dsn: str) -> dict:
    with psycopg.connect(dsn, autocommit=True) as conn:
        done, first, last = conn.execute(
            "SELECT count(*) FILTER (WHERE state = 'done'), "
            "extract(epoch FROM min(started_at)), extract(epoch FROM max(finished_at)) "
            "FROM raw_job"
        ).fetchone()
        total = conn.execute("SELECT count(*) FROM raw_job").fetchone()[0]
        finished = [float(row[0]) for row in conn.execute(
            "SELECT extract(epoch FROM finished_at) FROM raw_job WHERE finished_at IS NOT NULL "
            "ORDER BY finished_at")]
    steady = {}
    if len(finished) >= 20:
        lo, hi = finished[len(finished) // 10], finished[(len(finished) * 9) // 10]
        if hi > lo:
            steady = {"steady_rate": ((len(finished) * 9) // 10 - len(finished) // 10) / (hi - lo)}
    return {"done": done, "total": total, **steady,
            "first_start": float(first) if first is not None else None,
            "last_finish": float(last) if last is not None else None}


def enqueue_single(dsn: str, n: int) -> float:
    """Seconds for ``n`` one-row INSERTs, each its own transaction (autocommit)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        start = time.perf_counter()
        for _ in range(n):
            conn.execute("INSERT INTO raw_job (payload) VALUES (%s)", ['{}'])
        return time.perf_counter() - start


def enqueue_copy(dsn: str, n: int) -> float:
    """Seconds to COPY ``n`` rows in one transaction (the rows built in Python)."""
    with psycopg.connect(dsn) as conn:
        start = time.perf_counter()
        buf = io.StringIO("".join("ready\t{}\n" for _ in range(n)))
        with conn.cursor() as cur, cur.copy("COPY raw_job (state, payload) FROM STDIN") as copy:
            copy.write(buf.getvalue())
        conn.commit()
        return time.perf_counter() - start


def work(dsn: str, batch: int, sleep: float) -> int:
    done = 0
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as conn:
        while True:
            ids = [row[0] for row in conn.execute(CLAIM, [batch]).fetchall()]
            if not ids:
                return done
            if batch == 1:
                if sleep:
                    time.sleep(sleep)
                conn.execute(COMPLETE, [ids])
            else:
                for _ in ids:
                    if sleep:
                        time.sleep(sleep)
                conn.execute(COMPLETE, [ids])
            done += len(ids)


def listen(dsn: str, path: str) -> None:
    """An idle worker woken by LISTEN/NOTIFY: claim one job at a time, record its start.

    Runs until killed. The "task" appends "<payload k> <time.time()>" to ``path``,
    as the pickup task of the other systems does.
    """
    claim = CLAIM.replace("RETURNING id", "RETURNING id, payload")
    with psycopg.connect(dsn, autocommit=True) as conn, open(path, "a") as out:
        conn.execute("LISTEN raw_job")
        while True:
            for _ in conn.notifies(timeout=1.0, stop_after=1):
                pass
            while True:
                rows = conn.execute(claim, [1]).fetchall()
                if not rows:
                    break
                for job_id, payload in rows:
                    out.write(f"{payload['k']} {time.time()!r}\n")
                    out.flush()
                    conn.execute(COMPLETE, [[job_id]])


def enqueue_notify(conn: psycopg.Connection, k: int) -> None:
    """Insert one job and NOTIFY in one transaction (delivered at commit)."""
    with conn.transaction():
        conn.execute("INSERT INTO raw_job (payload) VALUES (%s)", [f'{{"k": {k}}}'])
        conn.execute("NOTIFY raw_job")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["worker", "listen"])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--file", help="listen: where the started jobs are recorded")
    args = parser.parse_args()
    if args.command == "listen":
        listen(args.dsn, args.file)
    else:
        work(args.dsn, args.batch, args.sleep)


if __name__ == "__main__":
    main()
