"""Build a django-db-queue 3.x database: its migrations, then jobs in every state.

Run with django-db-queue first on ``PYTHONPATH`` (see tests/test_upgrade.py)::

    build_old_db.py [MIGRATION]

migrates ``django_dbq`` to MIGRATION (default: its last), writes one job per
state that migration knows, with the old package's own code where its model
matches the schema and the historical model where it does not, and prints the
rows as JSON.
"""

import json
import os
import sys

os.environ["DJANGO_SETTINGS_MODULE"] = "old_settings"

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.migrations.loader import MigrationLoader  # noqa: E402

import django_dbq  # noqa: E402

target = sys.argv[1] if len(sys.argv) > 1 else None
assert os.path.exists(os.path.join(os.path.dirname(django_dbq.__file__), "tasks.py")), (
    f"not django-db-queue: {django_dbq.__file__}"
)
call_command("migrate", "django_dbq", *([target] if target else []), verbosity=0)

loader = MigrationLoader(connection)
last = target or max(name for app, name in loader.graph.leaf_nodes() if app == "django_dbq")
if target is None:
    from django_dbq.models import Job  # the old package's own model
else:  # its model has columns a database stopped at an older migration lacks
    Job = loader.project_state(("django_dbq", last)).apps.get_model("django_dbq", "Job")
states = [choice for choice, _ in Job._meta.get_field("state").choices]

rows = []


def make(state, name="noop", **fields):
    """A job created by the old code, then set to ``state`` and ``fields`` as a worker
    of the old package would have left it (its ``save`` picks the first step)."""
    job = Job.objects.create(name=name)
    Job.objects.filter(pk=job.pk).update(state=state, **fields)
    rows.append(str(job.pk))


fields = {"next_task": "tests.tasks.noop", "workspace": {"n": 1}}
for state in states:
    make(state, **fields)
# A chain stopped between its steps, and a job without a workspace.
make(
    "READY",
    name="chain",
    next_task="tests.tasks.step_two",
    workspace={"trail": ["one"]},
)
make("NEW", next_task="tests.tasks.noop", workspace=None)
print(json.dumps({"migration": last, "states": states, "jobs": rows}))
