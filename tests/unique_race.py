"""One of the racing processes of tests/test_unique_jobs.py: waits for a common start
time, then creates the same unique job ``count`` times; prints how many rows it
inserted (``duplicate`` False)."""

import os
import sys
import time

import django

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    from django_dbq.models import Job

    key, count, start_at = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    while time.time() < start_at:
        time.sleep(0.001)
    inserted = sum(
        not Job.objects.create(name="noop", unique_key=key).duplicate for _ in range(count)
    )
    print(inserted)
