"""A CHECK constraint: a job's state is one of NEW, READY, PROCESSING, COMPLETED, FAILED.

A row with any other state would never be claimed, rescued or pruned. Rows that
already have one are first marked FAILED, with an error saying what the state was.

SQLite adds (and drops) a constraint by rebuilding the table, which loses the
indexes migration 0002 created: they are created again around it.
"""

from django.db import migrations, models
from django.utils import timezone

import importlib

# The statements of migration 0002 (its module name starts with a digit).
_0002 = importlib.import_module("django_dbq.migrations.0002_indexes_and_notify")

STATES = ["NEW", "READY", "PROCESSING", "COMPLETED", "FAILED"]


def fail_unknown_states(apps, schema_editor):
    Job = apps.get_model("django_dbq", "Job")
    jobs = Job.objects.using(schema_editor.connection.alias)
    now = timezone.now()
    for job in jobs.exclude(state__in=STATES).iterator():
        message = (
            f"The job's state {job.state!r} is not one of {', '.join(STATES)}; "
            "marked FAILED by migration django_dbq 0003."
        )
        record = {
            "attempt": job.attempts,
            "task": job.next_task,
            "type": "django_dbq.exceptions.InvalidJobError",
            "message": message,
            "message_line": message[:200],
            "traceback": "",
            "worker": "",
            "at": now.isoformat(),
        }
        errors = job.errors if isinstance(job.errors, list) else []
        jobs.filter(pk=job.pk).update(
            state="FAILED",
            errors=[*errors, record],
            finished_at=now,
            lease_expires_at=None,
            modified=now,
        )


def reinstall_sqlite_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        _0002.remove(apps, schema_editor)  # DROP INDEX IF EXISTS
        _0002.install(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("django_dbq", "0002_indexes_and_notify")]

    operations = [
        migrations.RunPython(fail_unknown_states, migrations.RunPython.noop, elidable=True),
        # Unapplying: after the constraint is dropped (and the SQLite table rebuilt).
        migrations.RunPython(migrations.RunPython.noop, reinstall_sqlite_indexes),
        migrations.AddConstraint(
            model_name="job",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("state__in", ["NEW", "READY", "PROCESSING", "COMPLETED", "FAILED"])
                ),
                name="django_dbq_job_state_known",
            ),
        ),
        migrations.RunPython(reinstall_sqlite_indexes, migrations.RunPython.noop),
    ]
