"""Upgrading a django-db-queue 3.x database in place: ``migrate``, then a worker.

django-db-queue 3.3.0 (the package, from the package index) builds a database
with its own code and migrations, holding jobs in every state it knows
(tests/upgrade/old_project). The old package runs in a Python of its own
(``python -S`` with only it, Django and the drivers on the path: this project's
package cannot be imported there). Then this project migrates that database
and a worker runs it; every row, state, workspace and timestamp is checked. Once
for a database at django-db-queue's last migration, once for one stopped at its
0004 (no ``run_after``, no ``STOPPING`` yet).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_command

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

OLD_PACKAGE = "django-db-queue==3.3.0"
CACHE = Path(os.environ.get("DBQ_TEST_CACHE") or Path.home() / ".cache" / "dbq-tests")
OLD_PROJECT = ROOT / "tests" / "upgrade" / "old_project"


@pytest.fixture(scope="module")
def old_package() -> Path:
    """django-db-queue 3.3.0 installed into a folder of its own (once, then cached)."""
    target = CACHE / "django-db-queue-3.3.0"
    if not (target / "django_dbq" / "tasks.py").exists():
        # Installed beside, then renamed into place: test runs on several databases at
        # once (.ci/run) must not install into the same folder at the same time.
        staging = CACHE / f"django-db-queue-3.3.0.{os.getpid()}"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--target",
                str(staging),
                OLD_PACKAGE,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            pytest.skip(f"could not install {OLD_PACKAGE}: {result.stderr.strip()[-300:]}")
        try:
            staging.rename(target)
        except OSError:  # another run put it there first
            shutil.rmtree(staging, ignore_errors=True)
    return target


def build_old_database(old_package: Path, db_name: str, migration: str | None) -> dict:
    site = sysconfig.get_paths()["purelib"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(old_package), str(OLD_PROJECT), site]),
        "UPGRADE_DB_NAME": db_name,
        "DATABASE_URL": os.environ.get("DATABASE_URL", ""),
    }
    result = subprocess.run(
        [sys.executable, "-S", str(OLD_PROJECT / "build_old_db.py"), *filter(None, [migration])],
        capture_output=True,
        text=True,
        env=env,
        cwd=OLD_PROJECT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


ROWS = (
    "import json; from django_dbq.models import Job; print(json.dumps([dict(id=str(j.pk), "
    "name=j.name, state=j.state, next_task=j.next_task, workspace=j.workspace, "
    "attempts=j.attempts, created=j.created.isoformat(), errors=[e.get('type') for e in "
    "j.errors]) for j in Job.objects.order_by('created')]))"
)


def rows(db_name: str) -> dict[str, dict]:
    result = run_command("shell", "-v0", "-c", ROWS, DBQ_DATABASE_NAME=db_name)
    assert result.returncode == 0, result.stderr[-3000:]
    return {row["id"]: row for row in json.loads(result.stdout)}


@pytest.mark.parametrize("migration", [None, "0004_auto_20210818_0247"], ids=["3.3", "0004"])
def test_a_django_db_queue_database_upgrades_in_place_and_its_jobs_run(
    old_package, empty_database, migration
):
    built = build_old_database(old_package, empty_database, migration)
    old_jobs = built["jobs"]
    states = built["states"]
    assert ("STOPPING" in states) == (migration is None)

    migrated = run_command("migrate", "-v0", DBQ_DATABASE_NAME=empty_database)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    after = rows(empty_database)

    assert list(after) == old_jobs  # every row kept, in creation order
    by_state = dict(zip(states, old_jobs, strict=False))
    renamed = {"COMPLETE": "COMPLETED", "STOPPING": "READY"}
    for old_state, pk in by_state.items():
        assert after[pk]["state"] == renamed.get(old_state, old_state), old_state
        assert after[pk]["workspace"] == {"n": 1}
        assert after[pk]["attempts"] == 0 and after[pk]["errors"] == []
    chain, no_workspace = old_jobs[len(states)], old_jobs[len(states) + 1]
    assert after[chain]["state"] == "READY"
    assert after[chain]["next_task"] == "tests.tasks.step_two"
    assert after[no_workspace]["workspace"] == {}

    worker = run_command("worker", "--burst", DBQ_DATABASE_NAME=empty_database)
    assert worker.returncode == 0, worker.stderr[-3000:]
    done = rows(empty_database)

    expected = {pk: "COMPLETED" for pk in old_jobs}
    expected[by_state["FAILED"]] = "FAILED"
    assert {pk: row["state"] for pk, row in done.items()} == expected
    assert done[chain]["workspace"]["trail"] == ["one", "two", "three"]
    assert all(done[pk]["created"] == after[pk]["created"] for pk in old_jobs)
    # The old PROCESSING row had no lease: rescued as a lost job, not charged, then run.
    processing = done[by_state["PROCESSING"]]
    assert processing["errors"] == ["django_dbq.exceptions.WorkerLostError"]
    assert processing["attempts"] == 1
