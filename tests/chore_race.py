"""One of the racing processes of the chore race in tests/test_store.py: waits for
a common start time, then asks for the chore ``rounds`` times, once a second at the
same instants as the others; prints, for each time it won, the clock just before
and just after it asked."""

import os
import sys
import time

import django

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    from django_dbq import store

    owner, rounds, every, start_at = (
        sys.argv[1],
        int(sys.argv[2]),
        float(sys.argv[3]),
        float(sys.argv[4]),
    )
    for n in range(rounds):
        while time.time() < start_at + n:
            time.sleep(0.001)
        before = time.time()
        if store.take_chore("race", owner, every):
            print(before, time.time())
