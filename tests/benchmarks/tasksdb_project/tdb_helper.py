"""Operations of the suite on the django-tasks-db peer; prints one JSON object.

    python tdb_helper.py migrate | clear | stats
    python tdb_helper.py fill N TASK          # bulk insert N ready rows (untimed)
    python tdb_helper.py enqueue N            # time N task.enqueue() (autocommit)
    python tdb_helper.py pickup N FILE        # enqueue one at a time, wait for start
"""

import json
import os
import random
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tdb_settings")

import django

django.setup()

import tdb_tasks  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Count, Max, Min  # noqa: E402
from django_tasks_db.models import DBTaskResult, get_date_max  # noqa: E402


def main(argv):
    command = argv[0]
    if command == "migrate":
        call_command("migrate", verbosity=0)
        return {"ok": True}
    if command == "clear":
        table = DBTaskResult._meta.db_table
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"TRUNCATE {table}")
            else:
                cursor.execute(f"DELETE FROM {table}")
        return {"ok": True}
    if command == "fill":
        n, name = int(argv[1]), argv[2]
        task = getattr(tdb_tasks, name)
        far = get_date_max()
        rows = [
            DBTaskResult(
                args_kwargs={"args": [], "kwargs": {}}, priority=task.priority,
                task_path=task.module_path, queue_name=task.queue_name,
                run_after=far, backend_name="default",
            )
            for _ in range(n)
        ]
        DBTaskResult.objects.bulk_create(rows, batch_size=1000)
        return {"ok": True}
    if command == "stats":
        counts = dict(
            DBTaskResult.objects.values_list("status").annotate(n=Count("pk")).order_by()
        )
        agg = DBTaskResult.objects.aggregate(first=Min("started_at"), last=Max("finished_at"))
        finished = sorted(t.timestamp() for t in DBTaskResult.objects.exclude(
            finished_at=None).values_list("finished_at", flat=True))
        steady = {}
        if len(finished) >= 20:
            lo, hi = finished[len(finished) // 10], finished[(len(finished) * 9) // 10]
            if hi > lo:
                count = (len(finished) * 9) // 10 - len(finished) // 10
                steady = {"steady_rate": count / (hi - lo)}
        return {
            **steady,
            "counts": counts,
            "first_start": agg["first"].timestamp() if agg["first"] else None,
            "last_finish": agg["last"].timestamp() if agg["last"] else None,
        }
    if command == "enqueue":
        n = int(argv[1])
        start = time.perf_counter()
        for _ in range(n):
            tdb_tasks.noop.enqueue()
        return {"seconds": time.perf_counter() - start}
    if command == "pickup":
        n, path = int(argv[1]), argv[2]
        return {"latencies": pickup(n, path)}
    raise SystemExit(f"unknown command {command}")


def pickup(n, path):
    """Enqueue ``n`` jobs one at a time; each latency is task start - time before enqueue."""
    open(path, "ab").close()
    latencies = []
    buffer = b""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        for k in range(n):
            sent = time.time()
            tdb_tasks.record_start.enqueue(k)
            deadline = time.monotonic() + 30
            started = None
            while started is None:
                buffer += handle.read()
                while started is None and b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    key, value = line.split()
                    if int(key) == k:
                        started = float(value)
                if started is None:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"job {k} did not start within 30 s")
                    time.sleep(0.0005)
            latencies.append(started - sent)
            time.sleep(random.uniform(0.05, 0.1))
    return latencies


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
